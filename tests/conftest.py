"""Shared set-up: one grading run over every kind of submission, made once per test session.

Grading is the slow part of the suite, so the solution, the untouched lab, every lab
fixture, every attack and every malformed submission become "students" of one folder
that is graded once (``graded``). The test modules then each read the results they
are about.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.course import source_notebook, student_notebook
from autograder.fill import answers_from_source, fill, read_answers
from autograder.grade import grade_folder
from autograder.sandbox import Limits

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
LAB = "ch01_vanilla_rnn"
# Tight limits keep the deliberate hangs short; a correct lab finishes far inside them.
TEST_LIMITS = Limits(cell_timeout=20, call_timeout=8, notebook_budget=240)


def lab_submission(lab: str, fixture: Path | None = None):
    """The student notebook filled with the reference answers, then with ``fixture``'s cells."""
    answers = answers_from_source(nbformat.read(source_notebook(lab), as_version=4))
    if fixture is not None:
        answers.update(read_answers(fixture))
    return fill(nbformat.read(student_notebook(lab), as_version=4), answers)


def write_submission(root: Path, student: str, lab: str, notebook=None, name: str | None = None,
                     raw: bytes | None = None) -> Path:
    folder = root / student / lab
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{lab}.ipynb")
    if raw is not None:
        path.write_bytes(raw)
    elif notebook is not None:
        nbformat.write(notebook, path)
    return path


def _malformed(root: Path) -> None:
    """Submissions that are damaged, renamed or missing (see test_grading_intake.py)."""
    from test_grading_intake import MALFORMED
    for student, build in MALFORMED.items():
        build(root, student)


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """student -> grading Result for every submission kind; also the folders used."""
    root = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("graded")
    write_submission(root, "solution", LAB, lab_submission(LAB))
    write_submission(root, "untouched", LAB, nbformat.read(student_notebook(LAB), as_version=4))
    for fixture in sorted((FIXTURES / LAB).glob("*.py")):
        write_submission(root, f"mistake-{fixture.stem}", LAB, lab_submission(LAB, fixture))
    for fixture in sorted((FIXTURES / "attacks").glob("*.py")):
        write_submission(root, f"attack-{fixture.stem}", LAB, lab_submission(LAB, fixture))
    _malformed(root)
    results = grade_folder(root, out, [LAB], progress=False, limits=TEST_LIMITS)
    return {"results": {result.student_id: result for result in results}, "submissions": root, "out": out}


def points(result) -> dict[str, float]:
    return {test.grade_id: test.score for test in result.tests}


def failed_tests(result) -> set[str]:
    return {test.grade_id for test in result.tests if test.score < test.max_score}


def pytest_generate_tests(metafunc):
    """A lab contract (tests/labtests.py) runs its fixture test once per fixture of its lab."""
    if "fixture_name" in metafunc.fixturenames and hasattr(metafunc.cls, "expected_failures"):
        metafunc.parametrize("fixture_name", sorted(metafunc.cls.expected_failures))
