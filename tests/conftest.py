"""Shared set-up: ONE grading run of a whole class, made once per test session.

Grading is the slow part of the suite, so every lab found in ``solutions/`` (with its
student notebook in ``labs/`` and its hidden tests) is graded in one run with two jobs,
as an instructor grades a class: the student ``solution`` and the student ``untouched``
hand in every lab (and ``ko-solution`` and ``ko-untouched`` the Korean release of each lab that has
one); every fixture of ``tests/fixtures/<lab>/`` is a student of its own;
Lab 1 also carries the attack catalogue and the malformed submissions. The test modules
then each read the results they are about: ``graded["results"]`` is Lab 1's, keyed by
student, and ``lab_results(graded, lab)`` any lab's, keyed the same way (``solution``,
``untouched``, ``mistake-<fixture>``, ``attack-<fixture>``).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

from autograder.course import SOLUTIONS, lab_names, source_notebook, student_notebook
from autograder.fill import answers_from_source, fill, read_answers
from autograder.grade import grade_folder
from autograder.sandbox import Limits
from autograder.translation import translated_notebook

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
LAB = "ch01_vanilla_rnn"
# Tight limits keep the deliberate hangs short; a correct lab finishes far inside them.
TEST_LIMITS = Limits(cell_timeout=20, call_timeout=8, notebook_budget=240)
CLASS_JOBS = 2   # the class is graded as make grade grades it: in parallel


def lab_submission(lab: str, fixture: Path | None = None, notebook: Path | None = None):
    """The student notebook (or ``notebook``: the Korean release) filled with the reference answers,
    then with ``fixture``'s cells."""
    answers = answers_from_source(nbformat.read(source_notebook(lab), as_version=4))
    if fixture is not None:
        answers.update(read_answers(fixture))
    return fill(nbformat.read(notebook or student_notebook(lab), as_version=4), answers)


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


def graded_labs() -> list[str]:
    """Every lab ready to grade: instructor notebook, student notebook and hidden tests.

    ``GRADED_LABS=ch01_vanilla_rnn,...`` narrows the class run while working on one lab.
    """
    only = [lab for lab in os.environ.get("GRADED_LABS", "").split(",") if lab]
    return [lab for lab in lab_names() if (not only or lab in only or lab == LAB)
            and student_notebook(lab).is_file() and (SOLUTIONS / lab / "hidden_tests.py").is_file()]


def _student(lab: str, name: str) -> str:
    """Lab 1's students keep their plain names; another lab's fixtures are prefixed with the lab."""
    return name if lab == LAB or name in ("solution", "untouched", "ko-solution", "ko-untouched", "ko-mistake") \
        else f"{lab}-{name}"


def _class_folder(root: Path) -> dict[str, dict[str, str]]:
    """Write the class; returns lab -> {name in tests: student folder}."""
    names: dict[str, dict[str, str]] = {}
    for lab in graded_labs():
        students = names[lab] = {}
        kinds = {"solution": lab_submission(lab),
                 "untouched": nbformat.read(student_notebook(lab), as_version=4)}
        for fixture in sorted((FIXTURES / lab).glob("*.py")):
            kinds[f"mistake-{fixture.stem}"] = lab_submission(lab, fixture)
        attacks = FIXTURES / "attacks" if lab == LAB else FIXTURES / "attacks" / lab
        for fixture in sorted(attacks.glob("*.py")):
            kinds[f"attack-{fixture.stem}"] = lab_submission(lab, fixture)
        korean = translated_notebook(lab, "ko")
        if korean.is_file():   # the Korean release, graded by the same grader (test_korean_labs.py)
            kinds["ko-solution"] = lab_submission(lab, notebook=korean)
            kinds["ko-untouched"] = nbformat.read(korean, as_version=4)
            first = min((FIXTURES / lab).glob("*.py"), default=None)
            if first is not None:   # the lab's first mistake, made in the Korean release
                kinds["ko-mistake"] = lab_submission(lab, first, notebook=korean)
        for name, notebook in kinds.items():
            students[name] = _student(lab, name)
            write_submission(root, students[name], lab, notebook)
    _malformed(root)
    return names


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """The class graded once: Lab 1's results by student, every lab's, and the folders used."""
    root = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("graded")
    names = _class_folder(root)
    started = time.perf_counter()
    results = grade_folder(root, out, graded_labs(), progress=False, limits=TEST_LIMITS, jobs=CLASS_JOBS)
    seconds = time.perf_counter() - started
    by_key = {(result.student_id, result.lab): result for result in results}
    by_lab = {lab: {name: by_key[(student, lab)] for name, student in students.items()}
              for lab, students in names.items()}
    lab1 = dict(by_lab.get(LAB, {}))
    lab1.update({student: by_key[(student, LAB)] for student in _malformed_names()})
    return {"results": lab1, "labs": by_lab, "all": results, "submissions": root, "out": out,
            "seconds": seconds}


def lab_results(graded, lab: str) -> dict:
    """``name -> Result`` of one lab in the class run (``solution``, ``untouched``, ``mistake-<fixture>``)."""
    if lab not in graded["labs"]:
        pytest.fail(f"{lab} was not in the graded class: it needs solutions/{lab}/{lab}.ipynb, "
                    f"labs/{lab}/{lab}.ipynb and solutions/{lab}/hidden_tests.py")
    return graded["labs"][lab]


def _malformed_names() -> list[str]:
    from test_grading_intake import MALFORMED
    return sorted(MALFORMED)


def points(result) -> dict[str, float]:
    return {test.grade_id: test.score for test in result.tests}


def failed_tests(result) -> set[str]:
    return {test.grade_id for test in result.tests if test.score < test.max_score}


def pytest_generate_tests(metafunc):
    """A lab contract (tests/labtests.py) runs its fixture test once per fixture of its lab."""
    if "fixture_name" in metafunc.fixturenames and hasattr(metafunc.cls, "expected_failures"):
        metafunc.parametrize("fixture_name", sorted(metafunc.cls.expected_failures))
