"""``make grade``: grade a folder of submissions into a grades CSV and feedback pages.

The folder is laid out ``<student_id>/<lab>/<lab>.ipynb``. For each student and lab:
intake (find, read, repair: :mod:`autograder.intake`), then real ``nbgrader autograde``
with the course's trusted step (:mod:`autograder.preprocessors`), then ``nbgrader
generate_feedback``. Each submission is graded in its own scratch course folder whose
gradebook is a copy of one made per lab, so no submission can touch another's.

Each result is saved as soon as it exists (``<out>/results/<student>/<lab>.json``), keyed
by a fingerprint of the submission and of the grader's inputs, so an interrupted run
picks up where it stopped and a second run over the same folder changes nothing.
"""
from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning
from tqdm import tqdm

from .course import SOLUTIONS, lab_names, nbgrader_config, source_notebook
from .intake import prepare
from .release import generate
from .sandbox import Limits

# nbgrader 0.9.6's gradebook trips SQLAlchemy 2's autoflush warnings; they are about nbgrader, not us.
warnings.filterwarnings("ignore", category=SAWarning)

CSV_COLUMNS = ["student_id", "lab", "score", "max_score", "manual_max_score", "status", "notes"]
GRADER_FILES = [Path(__file__).parent / name for name in
                ("grade.py", "intake.py", "preprocessors.py", "sandbox.py", "harness.py", "wire.py", "hidden.py")]


class GradingError(Exception):
    """A problem with the grading run itself (not with one submission)."""


@dataclass
class TestResult:
    grade_id: str
    score: float
    max_score: float
    message: str


@dataclass
class Result:
    student_id: str
    lab: str
    score: float
    max_score: float
    manual_max_score: float
    status: str                 # graded | needs manual grading | not graded | grader error
    notes: list[str] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    fingerprint: str = ""

    def row(self) -> dict:
        return {"student_id": self.student_id, "lab": self.lab, "score": _points(self.score),
                "max_score": _points(self.max_score), "manual_max_score": _points(self.manual_max_score),
                "status": self.status, "notes": " | ".join(self.notes)}


def _points(value: float) -> str:
    return f"{value:g}"


@dataclass
class LabPlan:
    """What grading one lab needs, made once per run: points and a template course."""
    lab: str
    template: Path
    student_version: nbformat.NotebookNode
    auto_max: float
    manual_max: float
    grader_fingerprint: str


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def plan_lab(lab: str, scratch: Path) -> LabPlan:
    template = scratch / f"template-{lab}"
    release = generate(lab, template)
    student_version = nbformat.read(release, as_version=4)
    auto_max = manual_max = 0.0
    for cell in student_version.cells:
        if utils.is_grade(cell):
            points = float(cell.metadata.nbgrader["points"])
            if utils.is_solution(cell):
                manual_max += points
            else:
                auto_max += points
    inputs = [source_notebook(lab), SOLUTIONS / lab / "hidden_tests.py", SOLUTIONS / lab / "reference.py"]
    fingerprint = _sha256(*(path.read_bytes() for path in inputs + GRADER_FILES if path.exists()))
    return LabPlan(lab, template, student_version, auto_max, manual_max, fingerprint)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _feedback_page(result: Result, reason: str) -> str:
    """A plain page for when nbgrader's own feedback cannot be made."""
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in result.notes)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{result.lab}: feedback</title></head>"
            f"<body><h1>{html.escape(result.lab)}: {html.escape(result.status)}</h1><p>{html.escape(reason)}</p>"
            f"<p>Score: {_points(result.score)} / {_points(result.max_score)}</p><ul>{notes}</ul></body></html>")


def grade_one(submissions: Path, student: str, plan: LabPlan, out: Path, fingerprint: str,
              limits: Limits = Limits()) -> Result:
    """Grade one student's one lab; never raises for a problem in the submission."""
    result = Result(student, plan.lab, 0.0, plan.auto_max, plan.manual_max, "not graded",
                    fingerprint=fingerprint)
    feedback = out / "feedback" / student / plan.lab / f"{plan.lab}.html"
    intake = prepare(submissions / student / plan.lab, plan.lab, plan.student_version)
    result.notes = list(intake.notes)
    if intake.reason:
        result.notes.insert(0, intake.reason)
        _write_atomically(feedback, _feedback_page(result, intake.reason))
        return result
    with tempfile.TemporaryDirectory(prefix="course-") as scratch:
        course = Path(scratch) / "course"
        shutil.copytree(plan.template, course)
        submitted = course / "submitted" / student / plan.lab / f"{plan.lab}.ipynb"
        submitted.parent.mkdir(parents=True)
        nbformat.write(intake.notebook, submitted)
        config = nbgrader_config(course, source_directory="source", release_directory="release")
        config.TrustedExecute.cell_timeout = limits.cell_timeout
        config.TrustedExecute.call_timeout = limits.call_timeout
        config.TrustedExecute.notebook_budget = limits.notebook_budget
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        outcome = api.autograde(plan.lab, student, force=True, create=True)
        if not outcome["success"]:
            detail = (outcome.get("error") or outcome.get("log") or "").strip().splitlines()
            result.status = "grader error"
            result.notes.insert(0, "nbgrader could not grade this notebook: " + (detail[-1] if detail else "?"))
            _write_atomically(feedback, _feedback_page(result, result.notes[0]))
            return result
        autograded = nbformat.read(course / "autograded" / student / plan.lab / f"{plan.lab}.ipynb",
                                   as_version=4)
        result.notes = list(autograded.metadata.get("autograder", {}).get("notes", []))
        messages = _test_messages(autograded)
        with Gradebook(config.CourseDirectory.db_url, config.CourseDirectory.course_id) as gradebook:
            notebook = gradebook.find_submission_notebook(plan.lab, plan.lab, student)
            for grade in sorted(notebook.grades, key=lambda g: g.name):
                if grade.cell_type == "code" and not grade.needs_manual_grade:
                    score = float(grade.score or 0)
                    result.tests.append(TestResult(grade.name, score, float(grade.max_score),
                                                   messages.get(grade.name, "")))
            result.score = sum(test.score for test in result.tests)
            result.status = "needs manual grading" if notebook.needs_manual_grade else "graded"
        generated = course / "feedback" / student / plan.lab / f"{plan.lab}.html"
        if api.generate_feedback(plan.lab, student, force=True)["success"] and generated.exists():
            feedback.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(generated, feedback)
        else:
            _write_atomically(feedback, _feedback_page(result, "nbgrader could not write the feedback page; "
                                                              "ask your instructor for your results"))
    return result


def _test_messages(notebook) -> dict[str, str]:
    messages = {}
    for cell in notebook.cells:
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            texts = [output.get("evalue") or output.get("text", "") for output in cell.outputs]
            messages[cell.metadata.nbgrader["grade_id"]] = " ".join(t.strip() for t in texts)
    return messages


def _submission_fingerprint(submissions: Path, student: str, lab: str, plan: LabPlan) -> str:
    folder = submissions / student / lab
    files = sorted(folder.rglob("*.ipynb")) if folder.is_dir() else []
    parts = [plan.grader_fingerprint.encode(), str(folder.is_dir()).encode()]
    for path in files:
        parts += [str(path.relative_to(folder)).encode(), path.read_bytes()]
    return _sha256(*parts)


def _load_result(path: Path) -> Result | None:
    try:
        data = json.loads(path.read_text())
        data["tests"] = [TestResult(**test) for test in data["tests"]]
        return Result(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None   # unreadable or from another version: grade again


def students_and_labs(submissions: Path, labs: list[str] | None) -> tuple[list[str], list[str]]:
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder of submissions")
    students = sorted(path.name for path in submissions.iterdir()
                      if path.is_dir() and not path.name.startswith("."))
    if not students:
        raise GradingError(f"{submissions} holds no student folders (expected <student_id>/<lab>/<lab>.ipynb)")
    known = lab_names()
    if labs:
        unknown = sorted(set(labs) - set(known))
        if unknown:
            raise GradingError(f"unknown lab {', '.join(unknown)}; the labs are {', '.join(known)}")
        return students, sorted(labs)
    present = sorted({lab for lab in known for student in students if (submissions / student / lab).exists()})
    if not present:
        raise GradingError(f"no student folder in {submissions} holds a lab folder ({', '.join(known)})")
    return students, present


def grade_folder(submissions: Path, out: Path, labs: list[str] | None = None,
                 progress: bool = True, limits: Limits = Limits()) -> list[Result]:
    """Grade every student's every lab; write ``grades.csv``, feedback and results under ``out``."""
    submissions, out = Path(submissions), Path(out)
    students, labs = students_and_labs(submissions, labs)
    results = []
    with tempfile.TemporaryDirectory(prefix="grading-") as scratch:
        plans = {lab: plan_lab(lab, Path(scratch)) for lab in labs}
        jobs = [(student, lab) for student in students for lab in labs]
        for student, lab in tqdm(jobs, desc="grading", unit="notebook", disable=not progress):
            plan = plans[lab]
            saved = out / "results" / student / f"{lab}.json"
            fingerprint = _submission_fingerprint(submissions, student, lab, plan)
            result = _load_result(saved) if saved.exists() else None
            if result is None or result.fingerprint != fingerprint:
                try:
                    result = grade_one(submissions, student, plan, out, fingerprint, limits)
                    _write_atomically(saved, json.dumps(asdict(result), indent=1, sort_keys=True))
                except Exception as error:  # a grader bug must not stop the other students' grading
                    result = Result(student, lab, 0.0, plan.auto_max, plan.manual_max, "grader error",
                                    [f"internal grader error, not saved so a rerun tries again: "
                                     f"{type(error).__name__}: {error}"])
            results.append(result)
    write_csv(out / "grades.csv", results)
    return results


def write_csv(path: Path, results: list[Result]) -> None:
    rows = sorted((result.row() for result in results), key=lambda row: (row["student_id"], row["lab"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".csv.partial"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(path.with_suffix(".csv.partial"), path)
