"""Lab 4 through the real grader (tests/labtests.py's ``LabGrading``): the solution scores
full, the untouched lab zero, and each mistake in tests/fixtures/ch04_self_attention loses exactly its points."""
from __future__ import annotations

from labtests import LabGrading
from test_ch04_self_attention import EXPECTED_FAILURES, MANUAL_POINTS, TEST_POINTS


class TestLabGraded(LabGrading):
    lab_name = "ch04_self_attention"
    test_points, manual_points, expected_failures = TEST_POINTS, MANUAL_POINTS, EXPECTED_FAILURES
    skipped_cells = 5
