"""The class's one nbgrader course under ``OUT``: made once, merged into by one process.

``OUT`` holds ``nbgrader_config.py``, ``gradebook.db``, ``source/``, ``release/``,
``submitted/``, ``autograded/`` and ``feedback/``, laid out as nbgrader lays out a course,
so ``nbgrader formgrader`` and ``nbgrader export`` started in ``OUT`` work on it. Workers
never open this gradebook: they return records, and :func:`merge` (called only by the
process that runs the class) files each one. SQLite has one writer, and this is it.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from .course import CONFIG_FILE, nbgrader_config, source_notebook
from .release import generate

warnings.filterwarnings("ignore", category=SAWarning)

COURSE_ID = "speech-sequence-models"
NBGRADER_EXPORT = "nbgrader_grades.csv"   # `nbgrader export` in OUT writes here, never over grades.csv

CONFIG_TEXT = '''"""nbgrader configuration of this graded class, written by `python -m autograder grade`.

Start nbgrader's own commands in this folder (the venv's bin on PATH):
`make formgrader OUT=<this folder>` and `make export OUT=<this folder>` do it for you.
"""
c = get_config()  # noqa: F821

c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.ignore = {ignore!r}
# `nbgrader export` would otherwise write grades.csv, the autograder's own file.
c.ExportPlugin.to = {export!r}
c.GenerateFeedback.preprocessors = {feedback!r}
'''


def _course_config():
    return nbgrader_config(Path("."))   # only the course-wide settings are read from it


def prepare_course(out: Path, labs: list[str]) -> dict[str, Path]:
    """Create or update the course in ``out`` for ``labs``; returns each lab's release notebook."""
    out.mkdir(parents=True, exist_ok=True)
    base = _course_config()
    (out / "nbgrader_config.py").write_text(CONFIG_TEXT.format(
        course_id=base.CourseDirectory.course_id, ignore=list(base.CourseDirectory.ignore),
        export=NBGRADER_EXPORT, feedback=list(base.GenerateFeedback.preprocessors)))
    releases = {}
    for lab in labs:
        source = out / "source" / lab / f"{lab}.ipynb"
        release = out / "release" / lab / f"{lab}.ipynb"
        current = source_notebook(lab).read_bytes()
        if not (source.is_file() and release.is_file() and source.read_bytes() == current
                and (out / "gradebook.db").is_file()):
            generate(lab, out)
        releases[lab] = release
    return releases


def _open(out: Path) -> Gradebook:
    return Gradebook(f"sqlite:///{out / 'gradebook.db'}", _course_config().CourseDirectory.course_id)


def add_students(out: Path, students: list[str]) -> None:
    with _open(out) as gradebook:
        for student in students:
            gradebook.update_or_create_student(student)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


class CourseWriter:
    """The one writer of ``out``'s gradebook during a run: open once, one transaction per record."""

    def __init__(self, out: Path):
        self.out = out
        self.gradebook: Gradebook | None = None

    def __enter__(self) -> "CourseWriter":
        self.gradebook = _open(self.out).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.gradebook.__exit__(*exc)

    def merge(self, record: dict, submitted: str | None) -> None:
        """File one task's record: its notebooks and feedback under ``out``, its scores in the gradebook.

        Mirrors nbgrader's own ``SaveAutoGrades``: a manual score already given is kept, and such a
        cell is flagged for review again.
        """
        out, student, lab = self.out, record["student"], record["lab"]
        if submitted is not None:
            _write(out / "submitted" / student / lab / f"{lab}.ipynb", submitted)
        if record.get("feedback") is not None:
            _write(out / "feedback" / student / lab / f"{lab}.html", record["feedback"])
        if record.get("autograded") is None:
            return
        _write(out / "autograded" / student / lab / f"{lab}.ipynb", record["autograded"])
        notebook = nbformat.reads(record["autograded"], as_version=4)
        gradebook = self.gradebook
        try:
            gradebook.update_or_create_student(student)
            gradebook.update_or_create_submission(lab, student)
            graded = gradebook.find_submission_notebook(lab, lab, student)
            grades = {grade.name: grade for grade in graded.grades}
            comments = {comment.name: comment for comment in graded.comments}
            for cell in notebook.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if utils.is_grade(cell) and grade_id in grades:
                    grade = grades[grade_id]
                    grade.auto_score, _ = utils.determine_grade(cell)
                    grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
                if (utils.is_solution(cell) or utils.is_task(cell)) and grade_id in comments:
                    untouched = cell.metadata.nbgrader.get("checksum") == utils.compute_checksum(cell)
                    comments[grade_id].auto_comment = ("No response." if untouched and not utils.is_task(cell)
                                                       else None)
            gradebook.db.commit()
        except Exception:
            gradebook.db.rollback()
            raise


def merge(out: Path, record: dict, submitted: str | None) -> None:
    """:meth:`CourseWriter.merge` for one record."""
    with CourseWriter(out) as writer:
        writer.merge(record, submitted)


def gradebook_scores(out: Path) -> dict[tuple[str, str], float]:
    """(student, lab) -> total score (autograded and manual) as nbgrader computes it."""
    scores = {}
    with _open(out) as gradebook:
        for assignment in gradebook.assignments:
            for submission in assignment.submissions:
                scores[(submission.student.id, assignment.name)] = float(submission.score or 0)
    return scores


def gradebook_snapshot(out: Path) -> dict:
    """Every grade in the gradebook as plain data, to compare two runs."""
    grades = {}
    with _open(out) as gradebook:
        for assignment in gradebook.assignments:
            for submission in assignment.submissions:
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        grades[f"{submission.student.id}/{assignment.name}/{grade.name}"] = (
                            grade.auto_score, grade.manual_score, grade.max_score)
        students = sorted(student.id for student in gradebook.students)
    return {"students": students, "grades": grades}


def set_manual_score(out: Path, student: str, lab: str, grade_id: str, score: float) -> None:
    """What the formgrader does when a grader types a mark, through nbgrader's API."""
    with _open(out) as gradebook:
        grade = gradebook.find_grade(grade_id, lab, lab, student)
        grade.manual_score = score
        grade.needs_manual_grade = False
        gradebook.db.commit()


def save_students(out: Path, names: dict[str, str]) -> None:
    """``students.json``: internal id -> the student's folder name as shown."""
    path = out / "students.json"
    known = {}
    if path.is_file():
        try:
            known = json.loads(path.read_text())
        except ValueError:
            known = {}
    known.update(names)
    _write(path, json.dumps(known, indent=1, sort_keys=True, ensure_ascii=False))


__all__ = ["prepare_course", "merge", "add_students", "gradebook_scores", "gradebook_snapshot",
           "set_manual_score", "save_students", "MissingEntry", "CONFIG_FILE", "NBGRADER_EXPORT"]
