"""Lab 1 through the real grader: the solution scores full, the untouched lab zero, and each
realistic mistake loses exactly its points. Also: the CSV, feedback, determinism, resuming."""
from __future__ import annotations

import csv
import shutil

import pytest

from autograder.grade import grade_folder
from conftest import FIXTURES, LAB, TEST_LIMITS, failed_tests
from test_ch01_vanilla_rnn import EXPECTED_FAILURES


def test_solution_scores_full(graded):
    result = graded["results"]["solution"]
    assert result.score == result.max_score == 20, {t.grade_id: t.message for t in result.tests}
    assert result.status == "needs manual grading"   # the written answer waits for a person
    assert result.manual_max_score > 0


def test_untouched_lab_scores_zero(graded):
    result = graded["results"]["untouched"]
    assert result.score == 0 and result.max_score == 20
    assert result.status == "graded"
    assert all("NotImplementedError" in test.message or "not defined" in test.message
               for test in result.tests), {t.grade_id: t.message for t in result.tests}


@pytest.mark.parametrize("fixture", sorted(EXPECTED_FAILURES))
def test_fixture_loses_exactly_its_points(graded, fixture):
    result = graded["results"][f"mistake-{fixture}"]
    assert failed_tests(result) == set(EXPECTED_FAILURES[fixture]), \
        {t.grade_id: t.message for t in result.tests if t.score < t.max_score}


def test_every_fixture_is_graded_end_to_end():
    on_disk = {path.stem for path in (FIXTURES / LAB).glob("*.py")}
    assert on_disk == set(EXPECTED_FAILURES)
    assert sum(1 for failing in EXPECTED_FAILURES.values() if failing) >= 6
    assert sum(1 for failing in EXPECTED_FAILURES.values() if not failing) >= 2


def test_csv_has_a_row_per_student_and_lab(graded):
    with open(graded["out"] / "grades.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"student_id", "lab", "score", "max_score"} <= set(rows[0])
    rows = [row for row in rows if row["lab"] == LAB]   # the class run grades every lab
    assert sorted(row["student_id"] for row in rows if row["student_id"] in graded["results"]) \
        == sorted(graded["results"])
    solution = next(row for row in rows if row["student_id"] == "solution")
    assert (solution["score"], solution["max_score"]) == ("20", "20")


def test_feedback_shows_results_but_no_hidden_tests(graded):
    page = (graded["out"] / "feedback" / "untouched" / LAB / f"{LAB}.html").read_text()
    assert "NotImplementedError" in page
    assert "BEGIN HIDDEN TESTS" not in page and "run_here" not in page


def test_regrading_gives_the_same_csv_and_resumes(graded, tmp_path):
    """Grade a few submissions from scratch twice: same CSV; a rerun reuses saved results."""
    folder = tmp_path / "subs"
    for student in ("solution", "untouched", "mistake-tanh_missing", "malformed-invalid_json"):
        shutil.copytree(graded["submissions"] / student, folder / student)
    first, second = tmp_path / "first", tmp_path / "second"
    grade_folder(folder, first, [LAB], progress=False, limits=TEST_LIMITS)
    grade_folder(folder, second, [LAB], progress=False, limits=TEST_LIMITS)
    assert (first / "grades.csv").read_text() == (second / "grades.csv").read_text()
    # an interrupted run: one result lost; the rerun grades only that one and changes nothing
    saved = first / "results" / "untouched" / f"{LAB}.json"
    kept = first / "results" / "solution" / f"{LAB}.json"
    before = kept.stat().st_mtime_ns
    csv_before = (first / "grades.csv").read_text()
    saved.unlink()
    grade_folder(folder, first, [LAB], progress=False, limits=TEST_LIMITS)
    assert saved.exists() and kept.stat().st_mtime_ns == before
    assert (first / "grades.csv").read_text() == csv_before
