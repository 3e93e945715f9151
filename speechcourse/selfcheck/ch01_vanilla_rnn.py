"""Visible self-checks of lab 1 (vanilla RNN).

They run in your notebook and explain in words what is wrong. They use small cases
worked out by hand, properties any correct answer has, and expected values precomputed
by the course's reference implementation on the checks' own small problems (stored in
``ch01_vanilla_rnn.npz`` next to this file; the reference itself is not shipped). The
reference's gradients are themselves checked against numerical gradients
(``speechcourse.gradcheck``), which you can use on your own code too. Passing the checks
is a good sign, not a guarantee: the grader tests more cases.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from speechcourse.checks import CheckFailed, as_array, describe, expect_close, expect_shape, expect_true
from speechcourse.language import say
from speechcourse.selfcheck import self_check

GRAD_NAMES = ("Wxh", "Whh", "Who", "bh", "by", "h0")
DATA = Path(__file__).with_suffix(".npz")

# The problems the checks pose (random_problem's arguments); their answers are in DATA.
STEP_CASE = dict(seed=1, T=1, B=3, D=2, H=5)
FORWARD_CASES = {"forward0": dict(seed=3, T=6, B=2, D=3, H=4, K=2),
                 "forward1": dict(seed=4, T=4, B=1, D=5, H=3, K=2)}
BACKWARD_CASES = {"output_layer": dict(seed=7, T=4, B=3, D=2, H=3, K=2),
                  "one_step": dict(seed=8, T=1, B=3, D=2, H=4, K=2),
                  "time_one_step": dict(seed=9, T=1, B=2, D=3, H=4, K=2),
                  "through_time": dict(seed=9, T=5, B=2, D=3, H=4, K=2)}


def _expected(key: str) -> np.ndarray:
    with np.load(DATA) as data:
        return data[key]


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


def _run_forward(rnn_forward, xs, h0, params):
    """(hs, ys) from the student's rnn_forward, checked for shape; shape errors explained."""
    T, B, _ = xs.shape
    H, K = params["Who"].shape
    try:
        result = rnn_forward(xs.copy(), h0.copy(), copy.deepcopy(params))
    except (ValueError, IndexError) as error:
        raise CheckFailed(say(
            f"rnn_forward raised {type(error).__name__} ({error}) on xs of shape "
            f"(T, B, D) = {xs.shape} and h0 of shape (B, H) = {h0.shape}. xs is "
            "time-major: xs[t] is the (B, D) batch of inputs at time t.",
            f"rnn_forward가 모양 (T, B, D) = {xs.shape}인 xs와 모양 (B, H) = {h0.shape}인 h0에서 "
            f"{type(error).__name__} ({error})을(를) 일으켰습니다. xs는 시간 축이 먼저입니다(time-major): "
            "xs[t]는 시각 t의 입력 (B, D) 배치입니다.")) from error
    return forward_pair(result, T, B, H, K)


def forward_pair(result, T, B, H, K):
    """(hs, ys) from what rnn_forward returned, or a failure saying what is wrong with it."""
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                say(f"rnn_forward should return a pair (`return hs, ys`), got {describe(result)}.",
                    f"rnn_forward는 쌍을 돌려주어야 하는데 (`return hs, ys`) {describe(result)}입니다."))
    if getattr(result[0], "ndim", 0) == 3 and result[0].shape[0] == T + 1:
        raise CheckFailed(say(f"hs returned by rnn_forward has T + 1 = {T + 1} states: leave h0 "
                              "out, hs[t] is the state after reading xs[t].",
                              f"rnn_forward가 돌려준 hs에 상태가 T + 1 = {T + 1}개 있습니다: h0은 빼십시오. "
                              "hs[t]는 xs[t]를 읽은 뒤의 상태입니다."))
    hs = expect_shape(say("hs returned by rnn_forward", "rnn_forward가 돌려준 hs"), result[0], (T, B, H), "T, B, H")
    ys = expect_shape(say("ys returned by rnn_forward", "rnn_forward가 돌려준 ys"), result[1], (T, B, K), "T, B, K")
    return hs, ys


def _close(got, want, rtol=1e-4, atol=1e-5) -> bool:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=atol * scale))


# ----------------------------------------------------------------------------- rnn_step

@self_check("rnn_step")
def check_rnn_step(rnn_step) -> None:
    """A step worked out by hand, then a random step against the precomputed answer."""
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
        raise CheckFailed(say("rnn_step returned the pre-activation x_t @ Wxh + h_prev @ Whh + bh: "
                              "apply tanh to it.",
                              "rnn_step이 활성화 이전 값 x_t @ Wxh + h_prev @ Whh + bh를 돌려주었습니다: "
                              "여기에 tanh를 적용하십시오."))
    if np.allclose(got, np.tanh([[0.6, 0.4, -0.6]]), atol=1e-4):
        raise CheckFailed(say("rnn_step seems to use h_prev @ Whh.T: with row vectors it is "
                              "h_prev @ Whh (Whh is (H, H), indexed [from, to]).",
                              "rnn_step이 h_prev @ Whh.T를 쓰는 것 같습니다: 행 벡터에서는 "
                              "h_prev @ Whh입니다 (Whh는 (H, H)이고 인덱스는 [from, to])."))
    expect_close(say("rnn_step on the hand-worked example", "손으로 계산한 예에서 rnn_step"), got, np.tanh(a),
                 what="tanh([0.6, 1.4, -0.6])")
    xs, h0, p, _ = random_problem(**STEP_CASE)
    got = expect_shape("rnn_step(x_t, h_prev, ...)", rnn_step(xs[0], h0, p["Wxh"], p["Whh"], p["bh"]),
                       (3, 5), "B, H")
    expect_close(say("rnn_step on a random batch of 3", "무작위 배치 3개에서 rnn_step"), got, _expected("step/h"))


# -------------------------------------------------------------------------- rnn_forward

@self_check("rnn_forward shapes", "rnn_forward 모양")
def check_rnn_forward_shapes(rnn_forward) -> None:
    for T, B, D, H, K in [(5, 2, 3, 4, 6), (1, 1, 2, 3, 2)]:
        xs, h0, p, _ = random_problem(seed=2, T=T, B=B, D=D, H=H, K=K)
        _run_forward(rnn_forward, xs, h0, p)


@self_check("rnn_forward hidden states", "rnn_forward 은닉 상태")
def check_rnn_forward_hidden_states(rnn_forward) -> None:
    """hs against the precomputed states of the same problem."""
    for case, sizes in FORWARD_CASES.items():
        xs, h0, p, _ = random_problem(**sizes)
        hs, _ = _run_forward(rnn_forward, xs, h0, p)
        want = _expected(f"{case}/hs")
        if np.allclose(hs[0], want[0], atol=1e-4) and not np.allclose(hs, want, atol=1e-4):
            step = int(np.argmax([not np.allclose(a, b, atol=1e-4) for a, b in zip(hs, want)]))
            raise CheckFailed(say(
                f"hs[0] = h_1 is right but hs[{step}] = h_{step + 1} is not: each step must "
                "start from the hidden state the previous step produced (not from h0).",
                f"hs[0] = h_1은 맞지만 hs[{step}] = h_{step + 1}은 틀렸습니다: 각 단계는 이전 단계가 "
                "만든 은닉 상태에서 시작해야 합니다 (h0에서가 아니라)."))
        if np.allclose(hs[0], h0):
            raise CheckFailed(say("hs[0] is h0: hs should hold h_1..h_T, the states after each "
                                  "input, not the initial state.",
                                  "hs[0]이 h0입니다: hs에는 초기 상태가 아니라 각 입력 뒤의 상태 "
                                  "h_1..h_T가 들어 있어야 합니다."))
        if not np.allclose(hs[0], want[0], atol=1e-4):
            raise CheckFailed(say("hs[0] should be h_1 = rnn_step(xs[0], h0, Wxh, Whh, bh), the "
                                  "state after the first input, but it is not. Make check_rnn_step "
                                  "pass first, then check that step t reads xs[t] (xs is (T, B, D)).",
                                  "hs[0]은 첫 입력 뒤의 상태 h_1 = rnn_step(xs[0], h0, Wxh, Whh, bh)여야 "
                                  "하는데 그렇지 않습니다. 먼저 check_rnn_step을 통과시킨 다음, 단계 t가 "
                                  "xs[t]를 읽는지 확인하십시오 (xs는 (T, B, D))."))
        expect_close(say("hs returned by rnn_forward", "rnn_forward가 돌려준 hs"), hs, want,
                     what=say("the expected hidden states", "기대한 은닉 상태"))


@self_check("rnn_forward outputs", "rnn_forward 출력")
def check_rnn_forward_outputs(rnn_forward) -> None:
    xs, h0, p, _ = random_problem(seed=5, T=4, B=3, D=2, H=5, K=3)
    hs, ys = _run_forward(rnn_forward, xs, h0, p)
    expect_close(say("ys returned by rnn_forward", "rnn_forward가 돌려준 ys"), ys, hs @ p["Who"] + p["by"],
                 what=say("hs @ Who + by (from your own hs)", "hs @ Who + by (여러분이 구한 hs로 계산)"))


# ------------------------------------------------------------------------- rnn_backward

def grads_dict(result) -> dict:
    """The dict rnn_backward returned, or a failure saying what is wrong with it."""
    expect_true(isinstance(result, dict),
                say(f"rnn_backward should return a dict of gradients, got {describe(result)}.",
                    f"rnn_backward는 기울기의 dict를 돌려주어야 하는데 {describe(result)}입니다."))
    missing = [name for name in GRAD_NAMES if name not in result]
    expect_true(not missing,
                say(f"rnn_backward's dict is missing the key(s) {missing}; it needs {list(GRAD_NAMES)}.",
                    f"rnn_backward의 dict에 키 {missing}이(가) 없습니다. 필요한 키는 {list(GRAD_NAMES)}입니다."))
    return result


def explain_backward(got: dict, want: dict, T: int, B: int, names=GRAD_NAMES,
                     single_step_right: bool | None = None) -> None:
    """Name a known BPTT mistake in words, or return quietly.

    ``got`` is what rnn_backward returned and ``want`` the correct gradients of the same
    problem (T steps, batch B). ``single_step_right`` says whether the same function was
    right on a one-step problem, which tells a missing dh_next apart from other mistakes.
    Shared by the visible self-checks and the hidden tests, so both say the same thing.
    """
    wrong = [n for n in names if not _close(as_array(say(f"gradient for {n}", f"{n}의 기울기"), got[n]), want[n])]
    if not wrong:
        return
    for name in ("bh", "by"):
        if name in wrong and B > 1 and _close(as_array(name, got[name]) * B, want[name]):
            raise CheckFailed(say(
                f"the gradient for {name} is 1/B = 1/{B} of the expected one: you averaged over "
                f"the batch. A bias is shared by every sequence of the batch (and every time "
                f"step), so its gradient is the sum: .sum(axis=0), not .mean(axis=0).",
                f"{name}의 기울기가 기대값의 1/B = 1/{B}입니다: 배치에 대해 평균을 냈습니다. 편향은 "
                f"배치의 모든 시퀀스(와 모든 시간 단계)가 함께 쓰므로 그 기울기는 합입니다: "
                f".mean(axis=0)이 아니라 .sum(axis=0)."))
    recurrent = {"Wxh", "Whh", "bh", "h0"}
    if T > 1 and single_step_right and set(wrong) <= recurrent:
        raise CheckFailed(say(
            f"your gradients are right for a single step (T = 1) but not over T = {T} steps "
            f"(wrong: {', '.join(wrong)}): the gradient from the future is missing. dL/dh_t is "
            f"dys[t] @ Who.T + dh_next, where dh_next = da_(t+1) @ Whh.T is carried back from "
            f"step t + 1 (zero after the last step).",
            f"기울기가 한 단계(T = 1)에서는 맞지만 T = {T} 단계에서는 틀립니다 "
            f"(틀린 것: {', '.join(wrong)}): 미래에서 오는 기울기가 빠졌습니다. dL/dh_t는 "
            f"dys[t] @ Who.T + dh_next이고, dh_next = da_(t+1) @ Whh.T는 단계 t + 1에서 거슬러 "
            f"전해집니다 (마지막 단계 뒤에는 0)."))
    if wrong == ["Whh"]:
        raise CheckFailed(say(
            "only the gradient for Whh is wrong. It pairs da_t with the state Whh multiplied, "
            "h_(t-1): that is hs[t-1] for t > 0 but h0 for t = 0 (hs[-1] is the LAST state in "
            "Python, not h0), and never hs[t].",
            "Whh의 기울기만 틀렸습니다. 이 기울기는 da_t를 Whh가 곱해진 상태 h_(t-1)과 짝짓습니다: "
            "t > 0이면 hs[t-1]이지만 t = 0이면 h0이고 (Python에서 hs[-1]은 h0이 아니라 마지막 "
            "상태입니다), hs[t]인 경우는 없습니다."))
    if wrong == ["h0"]:
        raise CheckFailed(say(
            "only the gradient for h0 is wrong: it is the dh_next left after the step t = 0, "
            "da_1 @ Whh.T, i.e. what would flow on to the state before the first one.",
            "h0의 기울기만 틀렸습니다: 이것은 단계 t = 0 뒤에 남은 dh_next, 곧 da_1 @ Whh.T로, "
            "첫 상태보다 앞선 상태로 흘러갈 값입니다."))
    if not {"Who", "by"} & set(wrong) and {"Wxh", "bh"} <= set(wrong):
        raise CheckFailed(say(
            f"the gradients behind the tanh are wrong ({', '.join(wrong)})"
            f"{' even for one step' if T == 1 else ''}. Check "
            f"da_t = dh_t * (1 - hs[t]**2): the derivative of tanh written with its output "
            f"h_t = hs[t] (not the pre-activation, not 1 - h_t, not hs[t-1]), and dh_t = "
            f"dys[t] @ Who.T (+ dh_next).",
            f"{'한 단계에서도 ' if T == 1 else ''}tanh 뒤쪽의 기울기가 틀렸습니다 ({', '.join(wrong)}). "
            f"da_t = dh_t * (1 - hs[t]**2)를 확인하십시오: tanh의 도함수를 그 출력 h_t = hs[t]로 쓴 것이며 "
            f"(활성화 이전 값도, 1 - h_t도, hs[t-1]도 아닙니다), dh_t = dys[t] @ Who.T (+ dh_next)입니다."))
    if set(wrong) & {"Who", "by"}:
        raise CheckFailed(say(
            f"the output layer's gradient for {' and '.join(n for n in ('Who', 'by') if n in wrong)} "
            f"is wrong. Both are sums over every time step and every sequence: "
            f"dWho += hs[t].T @ dys[t] and dby += dys[t].sum(axis=0), for each t.",
            f"출력층의 {', '.join(n for n in ('Who', 'by') if n in wrong)} 기울기가 틀렸습니다. 둘 다 모든 "
            f"시간 단계와 모든 시퀀스에 대한 합입니다: 각 t마다 "
            f"dWho += hs[t].T @ dys[t], dby += dys[t].sum(axis=0)."))


def _backward_case(rnn_backward, case, names, single_step_right=None):
    """Run the student's rnn_backward on a stored problem; explain or compare each gradient."""
    sizes = BACKWARD_CASES[case]
    xs, h0, p, dys = random_problem(**sizes)
    hs = _expected(f"{case}/hs")
    got = grads_dict(rnn_backward(xs.copy(), h0.copy(), copy.deepcopy(p), hs.copy(), dys.copy()))
    want = {name: _expected(f"{case}/{name}") for name in GRAD_NAMES}
    for name in names:
        expect_shape(f"rnn_backward(...)[{name!r}]", got[name], want[name].shape)
    explain_backward(got, want, sizes["T"], sizes["B"], names, single_step_right)
    for name in names:
        expect_close(say(f"gradient for {name} (T = {sizes['T']}, B = {sizes['B']})",
                         f"{name}의 기울기 (T = {sizes['T']}, B = {sizes['B']})"), got[name],
                     want[name], rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(want[name]).max())),
                     what=say("the expected gradient", "기대한 기울기"))


def _right(rnn_backward, case, names) -> bool:
    try:
        _backward_case(rnn_backward, case, names)
    except CheckFailed:
        return False
    return True


@self_check("rnn_backward shapes", "rnn_backward 모양")
def check_rnn_backward_shapes(rnn_backward) -> None:
    xs, h0, p, dys = random_problem(seed=6, T=3, B=2, D=3, H=4, K=5)
    hs = np.tanh(xs[..., :1] * np.ones(4))  # (T, B, H): any states of the right shape do here
    got = grads_dict(rnn_backward(xs, h0, p, hs, dys))
    for name in GRAD_NAMES:
        want = (h0 if name == "h0" else p[name]).shape
        expect_shape(f"rnn_backward(...)[{name!r}]", got[name], want)


@self_check("rnn_backward output layer (Who, by)", "rnn_backward 출력층 (Who, by)")
def check_rnn_backward_output_layer(rnn_backward) -> None:
    """dL/dWho and dL/dby."""
    _backward_case(rnn_backward, "output_layer", ("Who", "by"))


@self_check("rnn_backward one step (Wxh, Whh, bh, h0)", "rnn_backward 한 단계 (Wxh, Whh, bh, h0)")
def check_rnn_backward_one_step(rnn_backward) -> None:
    """T = 1: through tanh into Wxh, Whh, bh and h0."""
    _backward_case(rnn_backward, "one_step", ("Wxh", "Whh", "bh", "h0"))


@self_check("rnn_backward through time (Wxh, Whh, bh, h0)", "rnn_backward 시간을 거슬러 (Wxh, Whh, bh, h0)")
def check_rnn_backward_through_time(rnn_backward) -> None:
    """T > 1: the gradient has to flow back through the hidden states."""
    names = ("Wxh", "Whh", "bh", "h0")
    single = _right(rnn_backward, "time_one_step", names)
    _backward_case(rnn_backward, "through_time", names, single_step_right=single)


# ----------------------------------------------------------------------- gradient_norms

def _numbers(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in np.asarray(values, dtype=float).ravel()) + "]"


@self_check("gradient_norms shape", "gradient_norms 모양")
def check_gradient_norms_shape(gradient_norms) -> None:
    rng = np.random.default_rng(10)
    hs, Whh, dh_last = np.zeros((4, 2, 3)), 0.5 * np.eye(3), rng.standard_normal((2, 3))
    got = expect_shape("gradient_norms(hs, Whh, dh_last)", gradient_norms(hs, Whh, dh_last), (4,), "T")
    expect_close("gradient_norms(...)[-1]", got[-1], np.linalg.norm(dh_last),
                 what=say("||dh_last|| (the last entry belongs to h_T)", "||dh_last|| (마지막 원소는 h_T의 것)"))


@self_check("gradient_norms values", "gradient_norms 값")
def check_gradient_norms_values(gradient_norms) -> None:
    # Whh = I, B = 1, and each state uniform: hs = [0.9, 0.5, 0.0] (h_1, h_2, h_3 = h_T).
    # Going back from h_3 multiplies the gradient by 1 - h_3^2 = 1, from h_2 by 1 - 0.5^2 = 0.75.
    dh_last = np.array([[1.0, 1.0]])  # (B, H) = (1, 2), norm sqrt(2) = 1.414
    hs = np.zeros((3, 1, 2)) + np.array([0.9, 0.5, 0.0])[:, None, None]
    n = float(np.sqrt(2.0))
    want = np.array([0.75 * n, n, n])
    got = expect_shape("gradient_norms(hs, Whh, dh_last)", gradient_norms(hs, np.eye(2), dh_last), (3,), "T")
    if not np.allclose(got, want, rtol=1e-4):
        raise CheckFailed(say(
            f"gradient_norms with Whh = I, dh_last = [[1, 1]] (norm 1.414) and states "
            f"h_1, h_2, h_3 = 0.9, 0.5, 0 returned {_numbers(got)}, expected {_numbers(want)}: "
            f"the last entry is ||dh_last|| = 1.414; one step back (from h_3 = 0) multiplies by "
            f"1 - 0^2 = 1, the next (from h_2 = 0.5) by 1 - 0.5^2 = 0.75.",
            f"Whh = I, dh_last = [[1, 1]] (노름 1.414), 상태 h_1, h_2, h_3 = 0.9, 0.5, 0에서 "
            f"gradient_norms가 {_numbers(got)}을(를) 돌려주었는데, 기대값은 {_numbers(want)}입니다: "
            f"마지막 원소는 ||dh_last|| = 1.414이고, 한 단계 거슬러 가면 (h_3 = 0에서) 1 - 0^2 = 1이, "
            f"그다음 (h_2 = 0.5에서) 1 - 0.5^2 = 0.75가 곱해집니다."))
    # Whh = [[0, 1], [0, 0]] with h = 0: dh_{t-1} = dh_t @ Whh.T sends [0, 1] to [1, 0] to 0.
    Whh = np.array([[0.0, 1.0], [0.0, 0.0]])
    got = gradient_norms(np.zeros((3, 1, 2)), Whh, np.array([[0.0, 1.0]]))
    if np.allclose(got, [0.0, 0.0, 1.0]):
        raise CheckFailed(say("gradient_norms: the gradient flows from h_t to h_{t-1} as "
                              "dh_{t-1} = (dh_t * (1 - h_t^2)) @ Whh.T; you seem to use Whh, "
                              "not its transpose.",
                              "gradient_norms: 기울기는 h_t에서 h_{t-1}로 "
                              "dh_{t-1} = (dh_t * (1 - h_t^2)) @ Whh.T와 같이 흐릅니다. 전치가 아니라 "
                              "Whh를 그대로 쓴 것 같습니다."))
    expect_close(say("gradient_norms with Whh = [[0, 1], [0, 0]] and dh_last = [[0, 1]]",
                     "Whh = [[0, 1], [0, 0]], dh_last = [[0, 1]]일 때 gradient_norms"), got,
                 [0.0, 1.0, 1.0], what=say("[0, 1, 1] ([0, 1] @ Whh.T = [1, 0], then [1, 0] @ Whh.T = 0)",
                                           "[0, 1, 1] ([0, 1] @ Whh.T = [1, 0], 다음에 [1, 0] @ Whh.T = 0)"))


# ----------------------------------------------------------------------- clip_gradients

@self_check("clip_gradients scales", "clip_gradients 크기 조절")
def check_clip_gradients_scales(clip_gradients) -> None:
    grads = {"Wxh": np.array([[3.0, 0.0]]), "bh": np.array([0.0, 4.0])}  # global norm 5
    before = copy.deepcopy(grads)
    got = clip_gradients(grads, 1.0)
    for name in grads:
        expect_true(np.array_equal(grads[name], before[name]),
                    say(f"clip_gradients changed grads[{name!r}] in place: return new arrays instead.",
                        f"clip_gradients가 grads[{name!r}]를 제자리에서 바꾸었습니다: 대신 새 배열을 "
                        f"돌려주십시오."))
    expect_true(isinstance(got, dict) and set(got) == set(grads),
                say("clip_gradients should return a dict with the same keys as grads.",
                    "clip_gradients는 grads와 키가 같은 dict를 돌려주어야 합니다."))
    if np.allclose(as_array(say("clipped bh", "잘린 bh"), got["bh"]), [0.0, 1.0]):
        raise CheckFailed(say("clip_gradients clipped each gradient on its own: compute ONE global "
                              "norm over all gradients and scale them all by max_norm / norm.",
                              "clip_gradients가 기울기를 하나씩 따로 잘랐습니다: 모든 기울기에 대해 전역 "
                              "노름을 하나만 계산하고, 모두를 max_norm / norm으로 줄이십시오."))
    expect_close(say("clip_gradients(...)['Wxh'] (global norm 5, max_norm 1)",
                     "clip_gradients(...)['Wxh'] (전역 노름 5, max_norm 1)"), got["Wxh"], [[0.6, 0.0]])
    expect_close(say("clip_gradients(...)['bh'] (global norm 5, max_norm 1)",
                     "clip_gradients(...)['bh'] (전역 노름 5, max_norm 1)"), got["bh"], [0.0, 0.8])


@self_check("clip_gradients below the threshold", "clip_gradients 임계값 아래")
def check_clip_gradients_below_threshold(clip_gradients) -> None:
    grads = {"Wxh": np.array([[3.0, 0.0]]), "bh": np.array([0.0, 4.0])}  # global norm 5
    got = clip_gradients(copy.deepcopy(grads), 10.0)
    expect_true(isinstance(got, dict) and set(got) == set(grads),
                say("clip_gradients should return a dict with the same keys as grads.",
                    "clip_gradients는 grads와 키가 같은 dict를 돌려주어야 합니다."))
    for name in grads:
        expect_close(say(f"clip_gradients(...)[{name!r}] (global norm 5 is below max_norm 10)",
                         f"clip_gradients(...)[{name!r}] (전역 노름 5가 max_norm 10보다 작음)"),
                     got[name], grads[name], what=say("the unchanged gradient", "바뀌지 않은 기울기"))
