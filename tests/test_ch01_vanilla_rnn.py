"""Lab 1 (vanilla RNN): the reference, the hidden tests and the visible self-checks.

In-process and fast: each fixture's answers are exec'd over the reference answers (the
solution cells of the instructor notebook) and every hidden test runs on that namespace
through ``autograder.hidden.LocalStudent``. ``EXPECTED_FAILURES`` is the contract: for
each fixture, exactly the test cells that must fail. The end-to-end grading tests (through
the sandboxed grader) reuse the fixtures and this table.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from labtests import LabContract, LabUnderTest, stub
from speechcourse.checks import CheckFailed
from speechcourse.gradcheck import expect_gradient_close, numerical_gradient, numerical_gradients
from speechcourse.selfcheck import ch01_vanilla_rnn as selfcheck
from speechmodels.rnn import torch_rnn_forward

SLUG = "ch01_vanilla_rnn"
ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "solutions" / SLUG

SOLUTION_IDS = ("rnn_step", "rnn_forward", "rnn_backward", "gradient_norms", "clip_gradients")
# what the notebook's setup cell gives the solution cells
SETUP = "import numpy as np\n"

# test cell grade_id -> points (must match the notebook)
TEST_POINTS = {
    "test_rnn_step": 2,
    "test_rnn_forward_shapes": 1,
    "test_rnn_forward_hidden_states": 2,
    "test_rnn_forward_outputs": 1,
    "test_rnn_backward_shapes": 1,
    "test_rnn_backward_output_layer": 2,
    "test_rnn_backward_one_step": 2,
    "test_rnn_backward_through_time": 3,
    "test_gradient_norms_shape": 1,
    "test_gradient_norms_values": 2,
    "test_clip_gradients_scales": 2,
    "test_clip_gradients_below_threshold": 1,
}
MANUAL_POINTS = {"explain_short_term_memory": 2}

# fixture -> the test cells that must fail (empty: a correct alternative, full marks)
EXPECTED_FAILURES = {
    # rnn_step mistakes also break the reference rnn_forward, which calls rnn_step
    "tanh_missing": {"test_rnn_step", "test_rnn_forward_hidden_states"},
    "whh_transposed": {"test_rnn_step", "test_rnn_forward_hidden_states"},
    "hidden_not_carried": {"test_rnn_forward_hidden_states"},
    "loop_wrong_axis": {"test_rnn_forward_shapes", "test_rnn_forward_hidden_states",
                        "test_rnn_forward_outputs"},
    "hs_includes_h0": {"test_rnn_forward_shapes", "test_rnn_forward_hidden_states",
                       "test_rnn_forward_outputs"},
    "output_bias_missing": {"test_rnn_forward_outputs"},
    "dh_next_dropped": {"test_rnn_backward_through_time"},
    "tanh_derivative_wrong": {"test_rnn_backward_one_step", "test_rnn_backward_through_time"},
    "dwhh_uses_current_state": {"test_rnn_backward_one_step", "test_rnn_backward_through_time"},
    "bias_grad_mean_over_batch": {"test_rnn_backward_one_step", "test_rnn_backward_through_time"},
    "by_grad_last_step_only": {"test_rnn_backward_output_layer"},
    "gradient_norms_no_tanh": {"test_gradient_norms_values"},
    "gradient_norms_whh_not_transposed": {"test_gradient_norms_values"},
    "gradient_norms_reversed": {"test_gradient_norms_shape", "test_gradient_norms_values"},
    "clip_per_tensor": {"test_clip_gradients_scales"},
    "clip_always_scales": {"test_clip_gradients_below_threshold"},
    # in place above max_norm (scales), the caller's own dict below it (below_threshold)
    "clip_in_place": {"test_clip_gradients_scales", "test_clip_gradients_below_threshold"},
    "clip_returns_input_dict": {"test_clip_gradients_below_threshold"},
    "clip_divides_by_zero_norm": {"test_clip_gradients_below_threshold"},
    "forward_writes_h0": {"test_rnn_forward_hidden_states"},
    "gradient_norms_in_place": {"test_gradient_norms_values"},
    "ok_backward_defaultdict": set(),
    "ok_forward_namedtuple": set(),
    "ok_clip_ordereddict": set(),
    "ok_float32": set(),
    "ok_other_loops": set(),
    "ok_preactivations": set(),
}

# visible self-check of each test cell, called with the student's functions
VISIBLE = {
    "test_rnn_step": ("check_rnn_step", ("rnn_step",)),
    "test_rnn_forward_shapes": ("check_rnn_forward_shapes", ("rnn_forward",)),
    "test_rnn_forward_hidden_states": ("check_rnn_forward_hidden_states", ("rnn_forward",)),
    "test_rnn_forward_outputs": ("check_rnn_forward_outputs", ("rnn_forward",)),
    "test_rnn_backward_shapes": ("check_rnn_backward_shapes", ("rnn_backward",)),
    "test_rnn_backward_output_layer": ("check_rnn_backward_output_layer", ("rnn_backward",)),
    "test_rnn_backward_one_step": ("check_rnn_backward_one_step", ("rnn_backward",)),
    "test_rnn_backward_through_time": ("check_rnn_backward_through_time", ("rnn_backward",)),
    "test_gradient_norms_shape": ("check_gradient_norms_shape", ("gradient_norms",)),
    "test_gradient_norms_values": ("check_gradient_norms_values", ("gradient_norms",)),
    "test_clip_gradients_scales": ("check_clip_gradients_scales", ("clip_gradients",)),
    "test_clip_gradients_below_threshold": ("check_clip_gradients_below_threshold", ("clip_gradients",)),
}
# fixtures whose visible self-checks are stricter than the hidden tests, on purpose
VISIBLE_ONLY: dict[str, set[str]] = {}
# mistakes only the hidden tests see (the self-checks are a good sign, not a guarantee)
HIDDEN_ONLY = {"forward_writes_h0", "gradient_norms_in_place", "clip_returns_input_dict",
               "clip_divides_by_zero_norm"}

THIS_LAB = LabUnderTest(SLUG, SOLUTION_IDS, SETUP, selfcheck, VISIBLE)
REF = THIS_LAB.reference
notebook_cells, reference_cells = THIS_LAB.notebook_cells, THIS_LAB.reference_cells
reference_answers, namespace, submission = THIS_LAB.reference_answers, THIS_LAB.namespace, THIS_LAB.submission
hidden_results, visible_results = THIS_LAB.hidden_results, THIS_LAB.visible_results


class TestLabContract(LabContract):
    """Notebook, reference, fixtures and hidden tests agree (tests/labtests.py)."""
    lab, test_points, manual_points = THIS_LAB, TEST_POINTS, MANUAL_POINTS
    expected_failures = EXPECTED_FAILURES
    min_mistakes, min_alternatives = 8, 3


# -------------------------------------------------------------------- the notebook itself

# ------------------------------------------------------------------------ hidden tests

def test_argument_mutation_costs_only_the_cell_that_watches_it():
    """A function that scribbles on its inputs loses the one cell that watches its arguments
    (student.observe); every other test passes copies and judges what it returns."""
    ns = namespace(reference_answers())
    original = ns["rnn_backward"]

    def scribbling_backward(xs, h0, params, hs, dys):
        grads = original(xs, h0, params, hs, dys)
        xs[...] = 0
        hs[...] = 0
        dys[...] = 0
        params["Who"][...] = 0
        return grads

    ns["rnn_backward"] = scribbling_backward
    results = hidden_results(ns)
    assert {g for g, (ok, _) in results.items() if not ok} == {"test_rnn_backward_through_time"}
    assert "changed its argument" in results["test_rnn_backward_through_time"][1]


# ------------------------------------------------------------------ the reference itself

def _problem(seed=0, T=6, B=3, D=4, H=5, K=3):
    rng = np.random.default_rng(seed)
    params = {"Wxh": rng.standard_normal((D, H)) / 2, "Whh": rng.standard_normal((H, H)) / 2,
              "Who": rng.standard_normal((H, K)), "bh": rng.standard_normal(H),
              "by": rng.standard_normal(K)}
    return rng.standard_normal((T, B, D)), rng.standard_normal((B, H)), params, rng.standard_normal((T, B, K))


def test_reference_forward_matches_torch_rnn():
    xs, h0, p, _ = _problem()
    hs, ys = REF.rnn_forward(xs, h0, p)
    hs_torch, ys_torch = torch_rnn_forward(xs, h0, p)
    np.testing.assert_allclose(hs, hs_torch, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ys, ys_torch, rtol=1e-10, atol=1e-12)


def test_reference_backward_matches_torch_autograd():
    xs, h0, p, dys = _problem(seed=1)
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in {**p, "h0": h0}.items()}
    h, ys = leaves["h0"], []
    for x_t in torch.from_numpy(xs):
        h = torch.tanh(x_t @ leaves["Wxh"] + h @ leaves["Whh"] + leaves["bh"])
        ys.append(h @ leaves["Who"] + leaves["by"])
    (torch.stack(ys) * torch.from_numpy(dys)).sum().backward()
    hs, _ = REF.rnn_forward(xs, h0, p)
    grads = REF.rnn_backward(xs, h0, p, hs, dys)
    assert set(grads) == set(leaves)
    for name, leaf in leaves.items():
        np.testing.assert_allclose(grads[name], leaf.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_reference_backward_matches_numerical_gradients():
    xs, h0, p, dys = _problem(seed=2, T=4, B=2, D=3, H=3, K=2)
    hs, _ = REF.rnn_forward(xs, h0, p)
    grads = REF.rnn_backward(xs, h0, p, hs, dys)

    def loss(values):
        _, ys = REF.rnn_forward(xs, values["h0"], {k: values[k] for k in p})
        return np.sum(ys * dys)

    numeric = numerical_gradients(loss, {**p, "h0": h0})
    for name in grads:
        expect_gradient_close(name, grads[name], numeric[name], rtol=1e-6, atol=1e-8)


def test_reference_gradient_norms_is_backward_with_only_dh_last():
    """gradient_norms agrees with the norms of the true dL/dh_t when only h_T gets gradient."""
    xs, h0, p, _ = _problem(seed=3, T=7, B=2, D=3, H=4, K=4)
    hs, _ = REF.rnn_forward(xs, h0, p)
    dh_last = np.random.default_rng(4).standard_normal((2, 4))
    # L = sum(h_T * dh_last): give torch the same network and read dL/dh_t
    h, states = torch.tensor(h0, requires_grad=True), []
    for x_t in torch.from_numpy(xs):
        h = torch.tanh(x_t @ torch.from_numpy(p["Wxh"]) + h @ torch.from_numpy(p["Whh"])
                       + torch.from_numpy(p["bh"]))
        h.retain_grad()
        states.append(h)
    (states[-1] * torch.from_numpy(dh_last)).sum().backward()
    expected = [np.linalg.norm(s.grad.numpy()) for s in states]
    np.testing.assert_allclose(REF.gradient_norms(hs, p["Whh"], dh_last), expected, rtol=1e-10)


def test_reference_clip_gradients():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0, 4.0]])}
    before = {k: v.copy() for k, v in grads.items()}
    clipped = REF.clip_gradients(grads, 1.0)
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0])
    np.testing.assert_allclose(clipped["b"], [[0.0, 0.8]])
    assert all(np.array_equal(grads[k], before[k]) for k in grads)
    same = REF.clip_gradients(grads, 5.0)
    assert all(np.array_equal(same[k], grads[k]) and same[k] is not grads[k] for k in grads)
    zero = REF.clip_gradients({"a": np.zeros(3)}, 1.0)
    assert np.array_equal(zero["a"], np.zeros(3))


def test_numerical_gradient_of_a_known_function():
    A = np.array([[2.0, 1.0], [0.0, 3.0]])
    x = np.array([[1.0, -2.0], [0.5, 4.0]])
    grad = numerical_gradient(lambda v: np.sum(np.sin(v) * A), x)
    np.testing.assert_allclose(grad, np.cos(x) * A, rtol=1e-7, atol=1e-9)
    assert np.array_equal(x, [[1.0, -2.0], [0.5, 4.0]]), "x must not change"
    with pytest.raises(CheckFailed, match=r"gradient for W differs from the numerical gradient by .* at index \(0, 1\)"):
        expect_gradient_close("W", np.cos(x) * A + np.array([[0, 0.03], [0, 0]]), grad)


# --------------------------------------------------------------------- visible self-checks

def test_visible_self_checks_pass_on_the_reference(capsys):
    results = visible_results(namespace(reference_answers()))
    assert {g: e for g, e in results.items() if e is not None} == {}
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(VISIBLE) and all(line.startswith("✓ ") and line.endswith(" passed")
                                                for line in printed)


def test_visible_self_checks_on_untouched_stubs_raise_not_implemented():
    ns = namespace({g: stub(s) for g, s in reference_cells().items()})
    for error in visible_results(ns).values():
        assert isinstance(error, NotImplementedError)


@pytest.mark.parametrize("fixture", sorted(EXPECTED_FAILURES))
def test_visible_self_checks_agree_with_the_hidden_tests(fixture):
    """A wrong submission trips a visible self-check, in words; a right one trips none.

    A visible check fails only where the hidden test of the same cell fails (or where a
    fixture is listed in VISIBLE_ONLY), and every failure is either a worded CheckFailed
    or the student's own exception, never a bare AssertionError.
    """
    results = visible_results(submission(fixture))
    failed = {g for g, e in results.items() if e is not None}
    allowed = EXPECTED_FAILURES[fixture] | VISIBLE_ONLY.get(fixture, set())
    assert failed <= allowed, {g: repr(results[g]) for g in failed - allowed}
    if allowed and fixture not in HIDDEN_ONLY:
        worded = [e for e in results.values() if isinstance(e, CheckFailed)]
        assert worded, f"{fixture}: no visible check explains the mistake in words: {results}"
    for grade_id in failed:
        error = results[grade_id]
        assert type(error) is not AssertionError, f"{grade_id}: bare AssertionError"
        if isinstance(error, CheckFailed):
            assert len(str(error)) > 25


def test_self_check_data_is_what_the_reference_computes():
    """The self-checks' expected values (shipped to students) are the reference's answers."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("selfcheck_data", LAB / "selfcheck_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build()
    with np.load(selfcheck.DATA) as committed:
        assert set(committed.files) == set(built)
        for key, value in built.items():
            np.testing.assert_allclose(committed[key], value, rtol=1e-12, atol=1e-14, err_msg=key)


def test_self_check_module_computes_no_answer():
    """Nothing in the shipped self-check runs an RNN: no torch, no tanh recurrence over xs."""
    source = Path(selfcheck.__file__).read_text()
    assert "import torch" not in source and "torch." not in source
    assert "rnn_step(" not in source.replace("def check_rnn_step(", "").replace("rnn_step(x", "")


@pytest.mark.parametrize("fixture, words", [
    ("bias_grad_mean_over_batch", "averaged over the batch"),
    ("dh_next_dropped", "right for a single step"),
    ("tanh_derivative_wrong", "behind the tanh"),
    ("dwhh_uses_current_state", "only the gradient for Whh"),
])
def test_backward_mistakes_are_named_in_words(fixture, words):
    """Visible self-check and hidden test both name the mistake, not just a number."""
    visible = visible_results(submission(fixture))
    hidden = hidden_results(submission(fixture))
    assert any(words in str(e) for e in visible.values() if e is not None), visible
    assert any(words in message for ok, message in hidden.values() if not ok), hidden


def test_a_failed_self_check_shows_one_sentence_and_no_traceback():
    """IPython prints what _render_traceback_ returns instead of the traceback."""
    from speechcourse.selfcheck import SelfCheckFailed
    with pytest.raises(SelfCheckFailed) as failure:
        selfcheck.check_rnn_step(lambda x, h, Wxh, Whh, bh: x @ Wxh + h @ Whh + bh)
    lines = failure.value._render_traceback_()
    assert len(lines) == 1 and "apply tanh" in lines[0]
    assert failure.value.__cause__ is None and failure.value.__suppress_context__
