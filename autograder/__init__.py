"""The course's autograder: nbgrader, extended with a sandboxed, trusted grading step."""
