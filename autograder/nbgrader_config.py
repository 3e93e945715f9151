"""nbgrader configuration for the course.

Paths are relative to the course root. `python -m autograder` loads this file and
adds the run's own paths (a scratch gradebook, a scratch course folder when grading).
An instructor can also point nbgrader's own commands at it.
"""
c = get_config()  # noqa: F821 (provided by traitlets when the file is loaded)

c.CourseDirectory.course_id = "speech-sequence-models"
c.CourseDirectory.source_directory = "solutions"   # instructor notebooks: nbgrader source
c.CourseDirectory.release_directory = "labs"       # student notebooks: generated, committed
# Never copy the reference implementation or the hidden tests next to a student notebook.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "reference.py",
                            "hidden_tests.py", "*.db"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading: nbgrader's own sanitising steps, then the course's trusted step in place of
# nbgrader's Execute: the student's cells run in a sandbox and every test cell's outcome
# comes from a hidden test run here, outside the student's kernel.
c.Autograde.autograde_preprocessors = [
    "autograder.preprocessors.TrustedExecute",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
    "autograder.preprocessors.RestoreEdition",         # a Korean submission's instructions, back in Korean
    "autograder.preprocessors.SanitiseForFormgrader",   # last: the formgrader renders raw HTML
]
# Feedback shows each test's outcome, not the hidden part of the test cell.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
