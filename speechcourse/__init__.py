"""The course's student package: corpus loading, the audio front end, plots, checks, gradient
checks and the labs' visible self-checks. Each page and lab imports only what it needs from
here, so the page itself shows only the idea it teaches.

Students receive this package (the student edition and every lab's zip) and the grader's
sandbox mounts it, so nothing in it computes a lab's answer: the models the book runs live
in `speechmodels`, which never ships. `tests/test_student_release.py` holds it to that.
"""
