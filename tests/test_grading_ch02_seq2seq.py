"""Lab 2 through the real grader: the solution scores full, the untouched lab zero, and each
realistic mistake in tests/fixtures/ch02_seq2seq loses exactly its points.

The results come from the session's one class run (``graded`` in conftest.py). The lab's
training cells are tagged ``skip-when-grading`` (no hidden test depends on them), so the
grader does not run them, and every submission's feedback says so.
"""
from __future__ import annotations

import pytest

from conftest import FIXTURES, failed_tests, lab_results
from test_ch02_seq2seq import EXPECTED_FAILURES, MANUAL_POINTS, TEST_POINTS

LAB = "ch02_seq2seq"
TOTAL = sum(TEST_POINTS.values())


@pytest.fixture(scope="module")
def lab(graded):
    return lab_results(graded, LAB)


def test_solution_scores_full(lab):
    result = lab["solution"]
    assert result.score == result.max_score == TOTAL, {t.grade_id: t.message for t in result.tests}
    assert result.status == "needs manual grading"
    assert result.manual_max_score == sum(MANUAL_POINTS.values())
    assert not any("failed" in note for note in result.notes), result.notes


def test_untouched_lab_scores_zero(lab):
    result = lab["untouched"]
    assert result.score == 0 and result.max_score == TOTAL
    assert result.submitted == "untouched"
    assert all("NotImplementedError" in test.message for test in result.tests), \
        {t.grade_id: t.message for t in result.tests}


@pytest.mark.parametrize("fixture", sorted(EXPECTED_FAILURES))
def test_fixture_loses_exactly_its_points(lab, fixture):
    result = lab[f"mistake-{fixture}"]
    assert failed_tests(result) == set(EXPECTED_FAILURES[fixture]), \
        {t.grade_id: t.message for t in result.tests if t.score < t.max_score}
    lost = sum(TEST_POINTS[grade_id] for grade_id in EXPECTED_FAILURES[fixture])
    assert result.score == TOTAL - lost


def test_every_fixture_is_graded(lab):
    on_disk = {path.stem for path in (FIXTURES / LAB).glob("*.py")}
    assert on_disk == set(EXPECTED_FAILURES)
    assert {f"mistake-{name}" for name in on_disk} <= set(lab)


def test_training_cells_are_skipped_and_the_feedback_says_so(graded, lab):
    import nbformat
    from autograder.course import source_notebook
    from autograder.skipping import is_tagged
    tagged = sum(is_tagged(cell) for cell in nbformat.read(source_notebook(LAB), as_version=4).cells)
    assert tagged >= 3, "Lab 2's training cells carry skip-when-grading"
    student = lab["solution"].gradebook_id
    page = (graded["out"] / "feedback" / student / LAB / f"{LAB}.html").read_text()
    assert page.count("Not run when graded") == tagged
