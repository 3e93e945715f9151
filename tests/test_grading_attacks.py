"""The attack and fault catalogue: each fixture in fixtures/attacks/ scores exactly what it should.

Attacks target ``gradient_norms`` (test_gradient_norms_shape 1 point, _values 2 points)
and return zeros, or an object standing in for them, so an attack that fooled the grader
would show as 20 instead of 17. Canaries answer correctly only if the sandbox holds, so their full
marks are the proof. Faults sit in the ``clip_gradients`` cell (3 points) after a correct
answer: a fault the grader survives inside the cell costs nothing; one that kills the
process costs that cell's answer; either way every other test is still graded.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, failed_tests

NORMS = {"test_gradient_norms_shape", "test_gradient_norms_values"}
CLIP = {"test_clip_gradients_scales", "test_clip_gradients_below_threshold"}

# attack -> the test cells it must fail (every other test cell must pass)
EXPECTED_FAILURES = {
    "patch_numpy_testing": NORMS,
    "patch_course_checks": NORMS,
    "patch_builtins_and_math": NORMS,
    "lying_object": NORMS,
    "lying_ndarray_subclass": NORMS,
    "print_fake_results": NORMS,
    "ipython_hooks": NORMS,
    "swallow_exceptions": NORMS,
    "read_hidden_files": NORMS,
    "canary_network": set(),
    "canary_write_outside": set(),
    "fault_infinite_loop": set(),
    "fault_stubborn_loop": CLIP,
    "fault_memory_bomb": set(),
    "fault_fork_bomb": set(),
    "fault_segfault": CLIP,
    "fault_os_exit": CLIP,
    "fault_sys_exit": set(),
    "fault_output_flood": set(),
    "fault_huge_return": NORMS,
    "fault_slow_function": NORMS,
    "fault_exit_during_call": NORMS,
}


def test_catalogue_is_complete():
    on_disk = {path.stem for path in (FIXTURES / "attacks").glob("*.py")}
    assert on_disk == set(EXPECTED_FAILURES)
    assert len(on_disk) >= 15


@pytest.mark.parametrize("attack", sorted(EXPECTED_FAILURES))
def test_attack_scores_exactly_what_it_should(graded, attack):
    result = graded["results"][f"attack-{attack}"]
    assert result.status in ("graded", "needs manual grading"), result.notes
    assert failed_tests(result) == EXPECTED_FAILURES[attack], {t.grade_id: t.message for t in result.tests}
    assert result.max_score == 20


def test_sandbox_left_the_repository_untouched():
    repo = Path(__file__).resolve().parents[1]
    assert not (repo / "pwned.txt").exists()
    assert not (repo / "speechcourse" / "pwned.py").exists()


def test_failure_messages_are_sentences(graded):
    result = graded["results"]["attack-lying_object"]
    message = {test.grade_id: test.message for test in result.tests}["test_gradient_norms_shape"]
    assert "not data" in message, message
    killed = graded["results"]["attack-fault_exit_during_call"]
    message = {test.grade_id: test.message for test in killed.tests}["test_gradient_norms_values"]
    assert "exited" in message or "died" in message, message
