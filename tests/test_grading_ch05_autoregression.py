"""Lab 5 through the real grader (tests/labtests.py's ``LabGrading``): the solution scores
full, the untouched lab zero, and each mistake in tests/fixtures/ch05_autoregression loses exactly its points."""
from __future__ import annotations

from labtests import LabGrading
from test_ch05_autoregression import EXPECTED_FAILURES, MANUAL_POINTS, TEST_POINTS


class TestLabGraded(LabGrading):
    lab_name = "ch05_autoregression"
    test_points, manual_points, expected_failures = TEST_POINTS, MANUAL_POINTS, EXPECTED_FAILURES
    skipped_cells = 4
