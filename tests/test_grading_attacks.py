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

from autograder import cgroups, view
from autograder.sandbox import REPO
from conftest import FIXTURES, LAB, failed_tests

NORMS = {"test_gradient_norms_shape", "test_gradient_norms_values"}
# Memory is bounded per sandbox by a cgroup where the machine has one (autograder/cgroups.py).
# Under the rlimits fallback only each process is bounded, and these attacks may win (README).
PER_SANDBOX = cgroups.mode() != "rlimits"
WON_UNDER_THE_FALLBACK = {"canary_memory_across_processes", "canary_memory_in_memfds"}
# The sandbox binds the repository's parts from views under /tmp/autograder-view (autograder/view.py),
# which need /tmp on the repository's file system; otherwise mountinfo shows the repository (README).
NEUTRAL_VIEWS = view.neutral(REPO / "speechcourse") != REPO / "speechcourse"
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
    # issue 14: the repository beyond speechcourse is not mounted (class 14)
    "reach_speechmodels": NORMS,
    # script injection: graded normally; its feedback page is inert (class 10, test_feedback_browser.py)
    "xss_written_answer": set(),
    # host paths and name: graded normally; none reaches the feedback (class 7)
    "print_host_paths": set(),
    # forged, flooding and oversized frames end the session: only the cell that sent them is lost (class 8)
    "forge_events": CLIP,
    "giant_frame": CLIP,
    "unsolicited_reply": NORMS,
    # scratch space bounded and gone with the sandbox (class 13)
    "fill_scratch": set(),
    # honest, with a cell over 64 KiB: read whole, full marks (class 8)
    "honest_big_cell": set(),
    # issue 19: tags inside math (\text{}, and \color{} breaking out of its attribute) reach the page as text
    "math_text_tags": set(),
    # issue 19: no mount (mountinfo), cgroup path or venv file names the repository
    "canary_mountinfo": set() if NEUTRAL_VIEWS else NORMS,
    # issue 19: memory bounded per sandbox, not per process: four processes under the per-process
    # cap that together exceed the sandbox's, and memory in memfds that no address space counts
    "canary_memory_across_processes": set(),
    "canary_memory_in_memfds": set(),
    # issue 19: the sandbox is never told which test is running: not on the harness's call stack,
    # nor anywhere in its memory, command line, environment or open files
    "learn_test_from_stack": NORMS,
    "learn_test_from_memory": NORMS,
    # issue 19: a written answer that, rendered raw in nbgrader's formgrader, types the maximum into
    # the score boxes or clicks "Full credit": graded normally, inert there (test_formgrader_browser.py)
    "formgrader_score_typing": set(),
    "formgrader_click_full_credit": set(),
}

# Attacks on another lab (tests/fixtures/attacks/<lab>/): lab -> attack -> the test cells it must fail.
LAB_ATTACKS = {
    "ch02_seq2seq": {
        # issue 19: a numpy loss with the sandbox's gradient routine replaced by finite differences,
        # and one that forges the old verdict fields: the verdict is the grader's, from data, and one
        # problem is too large for finite differences, so only the loss's own cell is lost
        "finite_difference_gradients": {"test_masked_cross_entropy"},
        "forged_gradient_verdict": {"test_masked_cross_entropy"},
    },
}

# The catalogue by class of issue 14: class -> (what it is, {student: expected score out of 20}).
# Students named attack-* are the fixtures above; malformed-* are built in test_grading_intake.py.
# Fidelity classes 1-5 and 12 have their fixtures in tests/fixtures/<lab>/ (EXPECTED_FAILURES in
# tests/test_ch0{1,2}_*.py, graded end to end by test_grading_scores.py and test_grading_ch02_seq2seq.py).
CATALOGUE = {
    6: ("one submission must not stop the run: a FIFO, a folder, a link to /dev/zero, a huge file",
        {"malformed-notebook_is_fifo": 0, "malformed-notebook_is_folder": 0, "malformed-link_to_dev_zero": 0,
         "malformed-huge_sparse_notebook": 0}),
    7: ("links out of the submissions folder are not followed; host paths stay out of the feedback",
        {"malformed-notebook_links_to_solution": 0, "malformed-lab_folder_links_to_solutions": 0,
         "malformed-dangling_link": 0, "attack-print_host_paths": 20}),
    8: ("forged, flooding, oversized frames cost their cell; an honest 70 kB cell costs nothing",
        {"attack-forge_events": 17, "attack-giant_frame": 17, "attack-unsolicited_reply": 17,
         "attack-honest_big_cell": 20}),
    10: ("script injection: graded normally, feedback inert (test_feedback_browser.py)",
         {"attack-xss_written_answer": 20, "malformed-html_in_names": 20}),
    13: ("scratch space bounded and gone with the sandbox", {"attack-fill_scratch": 20}),
    14: ("speechmodels, solutions and autograder are not reachable from the sandbox",
         {"attack-reach_speechmodels": 17}),
    # issue 19's classes
    "19-fingerprint": ("the resume fingerprint covers exactly what intake grades: 1,000 decoys beside it, "
                       "and more files than intake lists with no <lab>.ipynb (refused, not chosen by order)",
                       {"malformed-decoy_notebooks": 20, "malformed-decoys_hide_a_renamed_notebook": 0}),
    "19-math-text": ("tags in \\text{} and an attribute broken out of \\color{}: graded normally, shown as text",
                     {"attack-math_text_tags": 20}),
    "19-host-paths": ("the sandbox's mountinfo, cgroup and venv name no host path",
                      {"attack-canary_mountinfo": 20 if NEUTRAL_VIEWS else 17}),
    "19-limits": ("memory is bounded per sandbox (a cgroup): processes together, and memfds",
                  {"attack-canary_memory_across_processes": 20, "attack-canary_memory_in_memfds": 20}
                  if PER_SANDBOX else {}),
    "19-test-name": ("student code cannot learn which test is running (call stack, memory, /proc)",
                     {"attack-learn_test_from_stack": 17, "attack-learn_test_from_memory": 17}),
    "19-formgrader": ("written answers that attack the formgrader's score boxes: graded normally, inert there",
                      {"attack-formgrader_score_typing": 20, "attack-formgrader_click_full_credit": 20}),
}

# The same for another lab's attacks: class -> (what it is, lab, {student: expected score}).
LAB_CATALOGUE = {
    "19-trusted-verdicts": ("gradients made up in the sandbox (finite differences, a forged verdict) earn "
                            "nothing: Lab 2's loss cell (2 of 14 points) is lost, as a numpy loss loses it",
                            "ch02_seq2seq", {"attack-finite_difference_gradients": 12,
                                             "attack-forged_gradient_verdict": 12}),
}

def test_catalogue_is_complete():
    on_disk = {path.stem for path in (FIXTURES / "attacks").glob("*.py")}
    assert on_disk == set(EXPECTED_FAILURES)
    assert len(on_disk) >= 15
    for lab, attacks in LAB_ATTACKS.items():
        assert {path.stem for path in (FIXTURES / "attacks" / lab).glob("*.py")} == set(attacks)
    assert {folder.name for folder in (FIXTURES / "attacks").iterdir() if folder.is_dir()} <= set(LAB_ATTACKS)


@pytest.mark.parametrize("lab, attack", sorted((lab, attack) for lab, attacks in LAB_ATTACKS.items()
                                               for attack in attacks))
def test_another_labs_attack_scores_exactly_what_it_should(graded, lab, attack):
    from conftest import graded_labs, lab_results
    if lab not in graded_labs():
        pytest.skip(f"{lab} is not in this class run (GRADED_LABS)")
    result = lab_results(graded, lab)[f"attack-{attack}"]
    assert result.status in ("graded", "needs manual grading"), result.notes
    assert failed_tests(result) == LAB_ATTACKS[lab][attack], {t.grade_id: t.message for t in result.tests}


@pytest.mark.parametrize("name", sorted(LAB_CATALOGUE))
def test_each_attack_class_on_another_lab_scores_what_its_entry_says(graded, name):
    from conftest import graded_labs, lab_results
    _, lab, expected = LAB_CATALOGUE[name]
    if lab not in graded_labs():
        pytest.skip(f"{lab} is not in this class run (GRADED_LABS)")
    results = lab_results(graded, lab)
    got = {student: results[student].score for student in expected}
    assert got == expected, {student: results[student].notes for student in expected}


@pytest.mark.parametrize("attack", sorted(EXPECTED_FAILURES))
def test_attack_scores_exactly_what_it_should(graded, attack):
    result = graded["results"][f"attack-{attack}"]
    assert result.status in ("graded", "needs manual grading"), result.notes
    if attack in WON_UNDER_THE_FALLBACK and not PER_SANDBOX:   # the fallback's stated weakness
        assert failed_tests(result) <= NORMS, {t.grade_id: t.message for t in result.tests}
        return
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


@pytest.mark.parametrize("number", sorted(CATALOGUE, key=str))
def test_each_attack_class_scores_what_its_catalogue_entry_says(graded, number):
    _, expected = CATALOGUE[number]
    got = {student: graded["results"][student].score for student in expected}
    assert got == expected, {student: graded["results"][student].notes for student in expected}


def test_no_host_path_reaches_the_feedback(graded):
    repo = str(Path(__file__).resolve().parents[1])
    for path in (graded["out"] / "feedback").rglob("*.html"):
        text = path.read_text()
        assert repo not in text and "/tmp/grade-" not in text and "/tmp/course-" not in text, path
    page = graded["out"] / "feedback" / "attack-print_host_paths" / LAB / f"{LAB}.html"   # the attack's own lab
    assert "host: /opt/venv" in page.read_text() and "sandbox" in page.read_text()


def test_the_notebook_budget_bounds_every_call_of_a_hidden_test():
    """A function that ignores the inside alarm and takes just under the call timeout, called
    50 times by one test, cannot keep the grader past the notebook's budget (class 9)."""
    import time

    from autograder.hidden import HiddenTests
    from autograder.sandbox import Limits, grade_in_sandbox

    def many_calls(student):
        for _ in range(50):
            student.slow()

    tests = HiddenTests(test_slow=many_calls)
    cells = [{"index": 0, "kind": "code", "source": "import signal, time\n"
              "signal.signal(signal.SIGALRM, signal.SIG_IGN)\ndef slow():\n    time.sleep(2)\n"},
             {"index": 1, "kind": "test", "grade_id": "test_slow"}]
    limits = Limits(cell_timeout=10, call_timeout=3, notebook_budget=12, grace=1)
    started = time.monotonic()
    report = grade_in_sandbox(cells, tests, limits)
    assert time.monotonic() - started < limits.notebook_budget + 10
    assert not report.verdicts["test_slow"].passed
    assert "budget" in report.verdicts["test_slow"].message + " ".join(report.notes)


def test_tags_inside_math_reach_the_feedback_as_text(graded):
    """issue 19: latex2mathml's \\text{} passed raw tags into the page; they are now escaped."""
    page = (graded["out"] / "feedback" / "attack-math_text_tags" / LAB / f"{LAB}.html").read_text()
    for forged in ('<h1 id="forged"', ' id="forged-color"', '<h2 id="forged-box"', "<table><tr><td>forged"):
        assert forged not in page, forged
    assert "&lt;h1" in page and "&lt;/table&gt;" in page      # shown, as text


def test_math_text_is_escaped_and_its_references_kept():
    from autograder.feedback import _Budget, _math
    got = _math(r"\text{<b>x</b> & y}", False, _Budget())
    assert "<b>" not in got and "&lt;b&gt;x&lt;/b&gt;" in got and "<mtext>" in got
    assert 'mathcolor="red&quot;' in _math(r'\color{red" onclick="x}{y}', False, _Budget())
    assert "&#x000A0;" in got and "&amp;#x" not in got           # latex2mathml's own references stay
