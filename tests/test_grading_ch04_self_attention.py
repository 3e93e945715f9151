"""Lab 4 through the real grader: the solution scores full, the untouched lab zero, and each
realistic mistake in tests/fixtures/ch04_self_attention loses exactly its points.

One grading run for this module. The cells that only train or plot are tagged
``skip-when-grading`` in the instructor notebook, so the grader runs none of them: a
submission runs its answers and the test cells only.
"""
from __future__ import annotations

import nbformat
import pytest

from autograder.course import student_notebook
from autograder.grade import grade_folder
from conftest import FIXTURES, TEST_LIMITS, failed_tests, lab_submission, write_submission
from test_ch04_self_attention import EXPECTED_FAILURES, MANUAL_POINTS, TEST_POINTS

LAB = "ch04_self_attention"
TOTAL = sum(TEST_POINTS.values())


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("graded")
    write_submission(root, "solution", LAB, lab_submission(LAB))
    write_submission(root, "untouched", LAB, nbformat.read(student_notebook(LAB), as_version=4))
    for fixture in sorted((FIXTURES / LAB).glob("*.py")):
        write_submission(root, f"mistake-{fixture.stem}", LAB, lab_submission(LAB, fixture))
    results = grade_folder(root, out, [LAB], progress=False, limits=TEST_LIMITS)
    return {result.student_id: result for result in results}


def test_solution_scores_full(graded):
    result = graded["solution"]
    assert result.score == result.max_score == TOTAL, {t.grade_id: t.message for t in result.tests}
    assert result.status == "needs manual grading"
    assert result.manual_max_score == sum(MANUAL_POINTS.values())
    assert not any("failed" in note for note in result.notes), result.notes


def test_untouched_lab_scores_zero(graded):
    result = graded["untouched"]
    assert result.score == 0 and result.max_score == TOTAL
    assert all("NotImplementedError" in test.message for test in result.tests), \
        {t.grade_id: t.message for t in result.tests}


@pytest.mark.parametrize("fixture", sorted(EXPECTED_FAILURES))
def test_fixture_loses_exactly_its_points(graded, fixture):
    result = graded[f"mistake-{fixture}"]
    assert failed_tests(result) == set(EXPECTED_FAILURES[fixture]), \
        {t.grade_id: t.message for t in result.tests if t.score < t.max_score}
    lost = sum(TEST_POINTS[grade_id] for grade_id in EXPECTED_FAILURES[fixture])
    assert result.score == TOTAL - lost


def test_every_fixture_is_graded(graded):
    on_disk = {path.stem for path in (FIXTURES / LAB).glob("*.py")}
    assert on_disk == set(EXPECTED_FAILURES)
    assert {f"mistake-{name}" for name in on_disk} <= set(graded)
