"""Visible self-checks of lab 1 (vanilla RNN).

They run in your notebook and explain in words what is wrong. They use small cases
worked out by hand, PyTorch's own ``torch.nn.RNN`` as an independent implementation of
the forward pass, and numerical gradients (``speechcourse.gradcheck``) for the backward
pass. Passing them is a good sign, not a guarantee: the grader tests more cases.
"""
from __future__ import annotations

import copy

import numpy as np

from speechcourse.checks import CheckFailed, as_array, describe, expect_close, expect_shape, expect_true
from speechcourse.gradcheck import expect_gradient_close, numerical_gradients

GRAD_NAMES = ("Wxh", "Whh", "Who", "bh", "by", "h0")


def _passed(what: str) -> None:
    print(f"✓ {what} passed")


def random_problem(seed=0, T=5, B=2, D=3, H=4, K=2, scale=1.0):
    """(xs, h0, params, dys): random inputs, weights and upstream gradients of the given sizes.

    ``scale`` > 1 enlarges Wxh and Whh, driving tanh into saturation.
    """
    rng = np.random.default_rng(seed)
    params = {
        "Wxh": scale * rng.standard_normal((D, H)) / np.sqrt(D),
        "Whh": scale * rng.standard_normal((H, H)) / np.sqrt(H),
        "Who": rng.standard_normal((H, K)) / np.sqrt(H),
        "bh": 0.5 * rng.standard_normal(H),
        "by": 0.5 * rng.standard_normal(K),
    }
    xs = rng.standard_normal((T, B, D))  # (T, B, D)
    h0 = 0.5 * rng.standard_normal((B, H))  # (B, H)
    dys = rng.standard_normal((T, B, K))  # (T, B, K)
    return xs, h0, params, dys


def torch_rnn_forward(xs, h0, params):
    """hs and ys from torch.nn.RNN + torch.nn.Linear loaded with the same weights."""
    import torch

    T, B, D = xs.shape
    H, K = params["Who"].shape
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", dtype=torch.float64)
    out = torch.nn.Linear(H, K, dtype=torch.float64)
    with torch.no_grad():
        # torch keeps column-vector weights: weight_ih is (H, D) = Wxh.T; it has two biases
        rnn.weight_ih_l0.copy_(torch.from_numpy(params["Wxh"].T))
        rnn.weight_hh_l0.copy_(torch.from_numpy(params["Whh"].T))
        rnn.bias_ih_l0.copy_(torch.from_numpy(params["bh"]))
        rnn.bias_hh_l0.zero_()
        out.weight.copy_(torch.from_numpy(params["Who"].T))
        out.bias.copy_(torch.from_numpy(params["by"]))
        hs, _ = rnn(torch.from_numpy(xs), torch.from_numpy(h0)[None])  # (T, B, H)
        ys = out(hs)  # (T, B, K)
    return hs.numpy(), ys.numpy()


def _run_forward(rnn_forward, xs, h0, params):
    """(hs, ys) from the student's rnn_forward, checked for shape; shape errors explained."""
    T, B, _ = xs.shape
    H, K = params["Who"].shape
    try:
        result = rnn_forward(xs.copy(), h0.copy(), copy.deepcopy(params))
    except (ValueError, IndexError) as error:
        raise CheckFailed(
            f"rnn_forward raised {type(error).__name__} ({error}) on xs of shape "
            f"(T, B, D) = {xs.shape} and h0 of shape (B, H) = {h0.shape}. xs is "
            "time-major: xs[t] is the (B, D) batch of inputs at time t.") from error
    return forward_pair(result, T, B, H, K)


def forward_pair(result, T, B, H, K):
    """(hs, ys) from what rnn_forward returned, or a failure saying what is wrong with it."""
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                f"rnn_forward should return a pair (`return hs, ys`), got {describe(result)}.")
    if getattr(result[0], "ndim", 0) == 3 and result[0].shape[0] == T + 1:
        raise CheckFailed(f"hs returned by rnn_forward has T + 1 = {T + 1} states: leave h0 "
                          "out, hs[t] is the state after reading xs[t].")
    hs = expect_shape("hs returned by rnn_forward", result[0], (T, B, H), "T, B, H")
    ys = expect_shape("ys returned by rnn_forward", result[1], (T, B, K), "T, B, K")
    return hs, ys


# ----------------------------------------------------------------------------- rnn_step

def check_rnn_step(rnn_step) -> None:
    """A step worked out by hand, then a random step against torch.nn.RNN."""
    x = np.array([[1.0, -1.0]])  # (B, D) = (1, 2)
    h = np.array([[0.5, 0.0, -0.5]])  # (B, H) = (1, 3)
    Wxh = np.array([[0.1, 0.2, 0.3], [0.0, -0.1, 0.2]])  # (D, H)
    Whh = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # (H, H)
    bh = np.array([0.0, 0.1, -0.2])  # (H,)
    # by hand: x @ Wxh = [0.1, 0.3, 0.1], h @ Whh = [0.5, 1.0, -0.5], + bh
    a = np.array([[0.6, 1.4, -0.6]])
    got = expect_shape("rnn_step(x_t, h_prev, Wxh, Whh, bh)", rnn_step(x, h, Wxh, Whh, bh),
                       (1, 3), "B, H")
    if np.allclose(got, a, atol=1e-4):
        raise CheckFailed("rnn_step returned the pre-activation x_t @ Wxh + h_prev @ Whh + bh: "
                          "apply tanh to it.")
    if np.allclose(got, np.tanh([[0.6, 0.4, -0.6]]), atol=1e-4):
        raise CheckFailed("rnn_step seems to use h_prev @ Whh.T: with row vectors it is "
                          "h_prev @ Whh (Whh is (H, H), indexed [from, to]).")
    expect_close("rnn_step on the hand-worked example", got, np.tanh(a),
                 what="tanh([0.6, 1.4, -0.6])")
    xs, h0, p, _ = random_problem(seed=1, T=1, B=3, D=2, H=5)
    got = expect_shape("rnn_step(x_t, h_prev, ...)", rnn_step(xs[0], h0, p["Wxh"], p["Whh"], p["bh"]),
                       (3, 5), "B, H")
    expect_close("rnn_step on a random batch", got, torch_rnn_forward(xs, h0, p)[0][0],
                 what="torch.nn.RNN's first step")
    _passed("rnn_step")


# -------------------------------------------------------------------------- rnn_forward

def check_rnn_forward_shapes(rnn_forward) -> None:
    for T, B, D, H, K in [(5, 2, 3, 4, 6), (1, 1, 2, 3, 2)]:
        xs, h0, p, _ = random_problem(seed=2, T=T, B=B, D=D, H=H, K=K)
        _run_forward(rnn_forward, xs, h0, p)
    _passed("rnn_forward shapes")


def check_rnn_forward_hidden_states(rnn_forward) -> None:
    """hs against torch.nn.RNN loaded with the same weights."""
    for seed, (T, B, D, H, K) in enumerate([(6, 2, 3, 4, 2), (4, 1, 5, 3, 2)]):
        xs, h0, p, _ = random_problem(seed=3 + seed, T=T, B=B, D=D, H=H, K=K)
        hs, _ = _run_forward(rnn_forward, xs, h0, p)
        hs_torch, _ = torch_rnn_forward(xs, h0, p)
        if np.allclose(hs[0], hs_torch[0], atol=1e-4) and not np.allclose(hs, hs_torch, atol=1e-4):
            step = int(np.argmax([not np.allclose(a, b, atol=1e-4) for a, b in zip(hs, hs_torch)]))
            raise CheckFailed(
                f"hs[0] = h_1 is right but hs[{step}] = h_{step + 1} is not: each step must "
                "start from the hidden state the previous step produced (not from h0).")
        if np.allclose(hs[0], h0):
            raise CheckFailed("hs[0] is h0: hs should hold h_1..h_T, the states after each "
                              "input, not the initial state.")
        if not np.allclose(hs[0], hs_torch[0], atol=1e-4):
            raise CheckFailed("hs[0] should be h_1 = rnn_step(xs[0], h0, Wxh, Whh, bh), the "
                              "state after the first input, but it is not. Make check_rnn_step "
                              "pass first, then check that step t reads xs[t] (xs is (T, B, D)).")
        expect_close("hs returned by rnn_forward", hs, hs_torch, what="torch.nn.RNN's hidden states")
    _passed("rnn_forward hidden states (matches torch.nn.RNN)")


def check_rnn_forward_outputs(rnn_forward) -> None:
    xs, h0, p, _ = random_problem(seed=5, T=4, B=3, D=2, H=5, K=3)
    hs, ys = _run_forward(rnn_forward, xs, h0, p)
    expect_close("ys returned by rnn_forward", ys, hs @ p["Who"] + p["by"],
                 what="hs @ Who + by (from your own hs)")
    _passed("rnn_forward outputs")


# ------------------------------------------------------------------------- rnn_backward

def _grads(result):
    expect_true(isinstance(result, dict), "rnn_backward should return a dict of gradients.")
    missing = [name for name in GRAD_NAMES if name not in result]
    expect_true(not missing, f"rnn_backward's dict is missing {missing}; it needs {list(GRAD_NAMES)}.")
    return result


def _numerical(xs, h0, p, dys, names):
    """Numerical gradients of L = sum(ys * dys), with torch.nn.RNN as the forward pass.

    The forward pass is torch's, in float64, so the check does not depend on your
    rnn_forward and a float32 implementation of rnn_backward is judged fairly.
    """
    def loss(values):
        _, ys = torch_rnn_forward(xs, values["h0"], {k: values[k] for k in p})
        return float(np.sum(ys * dys))

    return numerical_gradients(loss, {**p, "h0": h0}, names)


def _backward(rnn_backward, seed, T, B, D, H, K, names):
    xs, h0, p, dys = random_problem(seed=seed, T=T, B=B, D=D, H=H, K=K)
    numeric = _numerical(xs, h0, p, dys, names)
    hs, _ = torch_rnn_forward(xs, h0, p)
    got = _grads(rnn_backward(xs.copy(), h0.copy(), copy.deepcopy(p), hs.copy(), dys.copy()))
    for name in names:
        expect_gradient_close(f"{name} (T = {T}, B = {B})", got[name], numeric[name])


def check_rnn_backward_shapes(rnn_backward) -> None:
    xs, h0, p, dys = random_problem(seed=6, T=3, B=2, D=3, H=4, K=5)
    hs, _ = torch_rnn_forward(xs, h0, p)
    got = _grads(rnn_backward(xs, h0, p, hs, dys))
    for name in GRAD_NAMES:
        want = (h0 if name == "h0" else p[name]).shape
        expect_shape(f"rnn_backward(...)[{name!r}]", got[name], want)
    _passed("rnn_backward shapes")


def check_rnn_backward_output_layer(rnn_backward) -> None:
    """dL/dWho and dL/dby against numerical gradients."""
    _backward(rnn_backward, 7, 4, 3, 2, 3, 2, ("Who", "by"))
    _passed("rnn_backward output layer (Who, by)")


def check_rnn_backward_one_step(rnn_backward) -> None:
    """T = 1: through tanh into Wxh, Whh, bh and h0."""
    _backward(rnn_backward, 8, 1, 3, 2, 4, 2, ("Wxh", "Whh", "bh", "h0"))
    _passed("rnn_backward one step (Wxh, Whh, bh, h0)")


def check_rnn_backward_through_time(rnn_backward) -> None:
    """T > 1: the gradient has to flow back through the hidden states."""
    _backward(rnn_backward, 9, 5, 2, 3, 4, 2, ("Wxh", "Whh", "bh", "h0"))
    _passed("rnn_backward through time (Wxh, Whh, bh, h0)")


# ----------------------------------------------------------------------- gradient_norms

def check_gradient_norms_shape(gradient_norms) -> None:
    rng = np.random.default_rng(10)
    # h = 0 and Whh = I / 2: the norm halves at each step back, [n/8, n/4, n/2, n]
    hs, Whh, dh_last = np.zeros((4, 2, 3)), 0.5 * np.eye(3), rng.standard_normal((2, 3))
    got = expect_shape("gradient_norms(hs, Whh, dh_last)", gradient_norms(hs, Whh, dh_last), (4,), "T")
    expect_close("gradient_norms(...)[-1]", got[-1], np.linalg.norm(dh_last),
                 what="||dh_last|| (the last entry belongs to h_T)")
    _passed("gradient_norms shape")


def check_gradient_norms_values(gradient_norms) -> None:
    n = float(np.sqrt(2.0))
    dh_last = np.array([[1.0, 1.0]])  # (B, H) = (1, 2), norm sqrt(2)
    # Whh = I and each h_t uniform: every step back multiplies the norm by 1 - h_{t+1}^2.
    hs = np.zeros((3, 1, 2)) + np.array([0.9, 0.5, 0.0])[:, None, None]
    expect_close("gradient_norms with Whh = I", gradient_norms(hs, np.eye(2), dh_last),
                 [0.75 * n, n, n], what="||dh_last|| * [(1 - 0.5^2) (1 - 0^2), 1 - 0^2, 1]")
    # Whh = [[0, 1], [0, 0]] with h = 0: dh_{t-1} = dh_t @ Whh.T sends [0, 1] to [1, 0] to 0.
    Whh = np.array([[0.0, 1.0], [0.0, 0.0]])
    got = gradient_norms(np.zeros((3, 1, 2)), Whh, np.array([[0.0, 1.0]]))
    if np.allclose(got, [0.0, 0.0, 1.0]):
        raise CheckFailed("gradient_norms: the gradient flows from h_t to h_{t-1} as "
                          "dh_{t-1} = (dh_t * (1 - h_t^2)) @ Whh.T; you seem to use Whh, "
                          "not its transpose.")
    expect_close("gradient_norms with Whh = [[0, 1], [0, 0]]", got, [0.0, 1.0, 1.0])
    _passed("gradient_norms values")


# ----------------------------------------------------------------------- clip_gradients

def check_clip_gradients_scales(clip_gradients) -> None:
    grads = {"Wxh": np.array([[3.0, 0.0]]), "bh": np.array([0.0, 4.0])}  # global norm 5
    before = copy.deepcopy(grads)
    got = clip_gradients(grads, 1.0)
    for name in grads:
        expect_true(np.array_equal(grads[name], before[name]),
                    f"clip_gradients changed grads[{name!r}] in place: return new arrays instead.")
    expect_true(isinstance(got, dict) and set(got) == set(grads),
                "clip_gradients should return a dict with the same keys as grads.")
    if np.allclose(as_array("clipped bh", got["bh"]), [0.0, 1.0]):
        raise CheckFailed("clip_gradients clipped each gradient on its own: compute ONE global "
                          "norm over all gradients and scale them all by max_norm / norm.")
    expect_close("clip_gradients(...)['Wxh'] (global norm 5, max_norm 1)", got["Wxh"], [[0.6, 0.0]])
    expect_close("clip_gradients(...)['bh'] (global norm 5, max_norm 1)", got["bh"], [0.0, 0.8])
    _passed("clip_gradients scales")


def check_clip_gradients_below_threshold(clip_gradients) -> None:
    grads = {"Wxh": np.array([[3.0, 0.0]]), "bh": np.array([0.0, 4.0])}  # global norm 5
    got = clip_gradients(copy.deepcopy(grads), 10.0)
    expect_true(isinstance(got, dict) and set(got) == set(grads),
                "clip_gradients should return a dict with the same keys as grads.")
    for name in grads:
        expect_close(f"clip_gradients(...)[{name!r}] (global norm 5 is below max_norm 10)",
                     got[name], grads[name], what="the unchanged gradient")
    _passed("clip_gradients below the threshold")
