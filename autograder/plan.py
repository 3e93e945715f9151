"""What grading one lab needs, made once per run and once per worker: points and a template course.

Both sides use it: :mod:`autograder.grade` (the client, which plans every lab it grades)
and :mod:`autograder.job` (a worker on another machine, which makes its own template and
checks that its checkout is the client's). Neither imports the other for it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader import utils

from .course import SOLUTIONS, source_notebook
from .release import generate
from .translation import LANGUAGES

HERE = Path(__file__).parent
GRADER_FILES = [HERE / name for name in
                ("grade.py", "job.py", "plan.py", "intake.py", "translation.py", "preprocessors.py", "sandbox.py",
                 "cgroups.py", "view.py",
                 "harness.py", "wire.py", "hidden.py", "calls.py", "skipping.py", "feedback.py")]


@dataclass
class LabPlan:
    """What grading one lab needs, made once per run: points and a template course."""
    lab: str
    template: Path
    student_version: nbformat.NotebookNode
    auto_max: float
    manual_max: float
    grader_fingerprint: str


def sha256_of_parts(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def grader_fingerprint(lab: str) -> str:
    """The grader's inputs for ``lab``: its notebook, hidden tests, reference and the grader's code."""
    inputs = [source_notebook(lab), SOLUTIONS / lab / "hidden_tests.py", SOLUTIONS / lab / "reference.py",
              *(SOLUTIONS / lab / f"{language}.yml" for language in LANGUAGES)]
    return sha256_of_parts(*(path.read_bytes() for path in inputs + GRADER_FILES if path.exists()))


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
    return LabPlan(lab, template, student_version, auto_max, manual_max, grader_fingerprint(lab))
