"""Hidden tests of lab 1 (vanilla RNN). One per test cell; see DEVELOPERS.md.

Each test compares the student's functions with ``reference.py`` on random inputs of
several shapes (batch 1, one time step, H != D, K != H). Tolerances allow a correct
float32 implementation.

The lab says no function may modify its arguments, and ``clip_gradients`` returns a new
dict. Each function's main test watches its arguments (``student.observe``): writing into
``h0``, ``params`` or ``grads`` costs that one cell (rnn_step: test_rnn_step, rnn_forward:
test_rnn_forward_hidden_states, rnn_backward: test_rnn_backward_through_time,
gradient_norms: test_gradient_norms_values, clip_gradients: test_clip_gradients_scales),
and returning the caller's own dict costs test_clip_gradients_below_threshold. Edges are
visited: B = 1, T = 1, all-zero and tiny gradients, a global norm exactly at ``max_norm``.
"""
import numpy as np

from autograder.hidden import hidden_test, load_sibling
from speechcourse.checks import describe, expect_close, expect_shape, expect_true
from speechcourse.gradcheck import expect_gradient_close, numerical_gradients
from speechcourse.language import say
from speechcourse.selfcheck.ch01_vanilla_rnn import explain_backward, forward_pair, random_problem
from speechmodels.rnn import torch_rnn_forward

ref = load_sibling(__file__, "reference")

GRAD_NAMES = ("Wxh", "Whh", "Who", "bh", "by", "h0")
# (T, B, D, H, K): batch 1, one step, H != D, K != H, T == B. Each rnn_backward test needs an array of
# more than speechcourse.gradcheck.MAX_ENTRIES = 16 entries (tests/test_student_release.py checks it).
SHAPES = [(1, 1, 3, 4, 2), (5, 1, 2, 3, 4), (6, 3, 4, 5, 3), (4, 4, 5, 2, 6), (1, 3, 2, 6, 3)]


ARGUMENTS = {"rnn_step": ("x_t", "h_prev", "Wxh", "Whh", "bh"), "rnn_forward": ("xs", "h0", "params"),
             "rnn_backward": ("xs", "h0", "params", "hs", "dys"),
             "gradient_norms": ("hs", "Whh", "dh_last"), "clip_gradients": ("grads", "max_norm")}


def _named(function: str, path: str) -> str:
    """``args[2]['Whh']`` of rnn_forward -> ``params['Whh']``."""
    index = int(path[len("args["):path.index("]")])
    return ARGUMENTS[function][index] + path[path.index("]") + 1:]


def _call(student, function: str, *args, watch: bool = False, fresh: bool = False):
    """``student.<function>(*args)``; with ``watch``, fail if it changed an argument; with
    ``fresh``, fail if it returned an argument itself (the lab asks for a new dict)."""
    if not (watch or fresh):
        return getattr(student, function)(*args)
    call = getattr(student.observe, function)(*args)
    if watch:
        changed = [_named(function, path) for path in call.changed(list(args))]
        expect_true(not changed,
                    say(f"{function} changed its argument {', '.join(changed)} in place. The lab says "
                        f"no function may modify its inputs: the caller still needs them. Compute new "
                        f"arrays instead (h = np.tanh(...), not h0[...] = ... or g *= ...).",
                        f"{function}이(가) 인자 {', '.join(changed)}을(를) 제자리에서 바꾸었습니다. 실습은 "
                        f"어떤 함수도 입력을 바꾸면 안 된다고 합니다: 호출한 쪽이 아직 그 입력을 씁니다. "
                        f"대신 새 배열을 계산하십시오 (h0[...] = ...나 g *= ...가 아니라 h = np.tanh(...))."))
    if fresh:
        returned = [_named(function, arg) for result, arg in call.aliases if result == "result"]
        expect_true(not returned,
                    say(f"{function} returned its argument {', '.join(returned)} itself, not a new dict. "
                        f"The lab asks for a new dict: the caller's grads must stay as they were, "
                        f"whatever is done later with the result.",
                        f"{function}이(가) 새 dict가 아니라 인자 {', '.join(returned)} 자체를 돌려주었습니다. "
                        f"실습은 새 dict를 요구합니다: 나중에 결과로 무엇을 하든 호출한 쪽의 grads는 "
                        f"그대로 남아 있어야 합니다."))
    return call.value


def _close(name, got, expected, what=None):
    """expect_close with an absolute tolerance that scales with the values (float32 sums);
    ``what`` defaults to "the expected value", in the language in use."""
    if what is None:
        what = say("the expected value", "기대값")
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    return expect_close(name, got, expected, rtol=1e-4, atol=1e-5 * scale, what=what)


def _grads_dict(result):
    expect_true(isinstance(result, dict),
                say(f"rnn_backward should return a dict of gradients, got {describe(result)}.",
                    f"rnn_backward는 기울기의 dict를 돌려주어야 하는데 {describe(result)}입니다."))
    missing = [name for name in GRAD_NAMES if name not in result]
    expect_true(not missing,
                say(f"rnn_backward's dict is missing the key(s) {missing}; it needs {list(GRAD_NAMES)}.",
                    f"rnn_backward의 dict에 키 {missing}이(가) 없습니다. 필요한 키는 {list(GRAD_NAMES)}입니다."))
    return result


# ----------------------------------------------------------------------------- rnn_step

@hidden_test("test_rnn_step")
def _(student):
    for seed, (_, B, D, H, _) in enumerate(SHAPES):
        xs, h0, p, _ = random_problem(seed, 1, B, D, H, 2)
        for scale in (1.0, 3.0):
            Whh = scale * p["Whh"]
            got = _call(student, "rnn_step", xs[0], h0, p["Wxh"], Whh, p["bh"], watch=True)
            expect_shape("rnn_step(x_t, h_prev, ...)", got, (B, H), "B, H")
            _close("rnn_step(x_t, h_prev, ...)", got,
                   ref.rnn_step(xs[0], h0, p["Wxh"], Whh, p["bh"]))


# -------------------------------------------------------------------------- rnn_forward

@hidden_test("test_rnn_forward_shapes")
def _(student):
    for seed, (T, B, D, H, K) in enumerate(SHAPES):
        xs, h0, p, _ = random_problem(100 + seed, T, B, D, H, K)
        forward_pair(_call(student, "rnn_forward", xs, h0, p), T, B, H, K)


@hidden_test("test_rnn_forward_hidden_states")
def _(student):
    for seed, (T, B, D, H, K) in enumerate(SHAPES + [(8, 2, 3, 4, 2)]):
        xs, h0, p, _ = random_problem(200 + seed, T, B, D, H, K)
        hs, _ = forward_pair(_call(student, "rnn_forward", xs, h0, p, watch=True), T, B, H, K)
        _close(say("hs returned by rnn_forward", "rnn_forward가 돌려준 hs"), hs, ref.rnn_forward(xs, h0, p)[0])
        _close(say("hs returned by rnn_forward", "rnn_forward가 돌려준 hs"), hs, torch_rnn_forward(xs, h0, p)[0],
               what=say("torch.nn.RNN given the same weights", "같은 가중치를 준 torch.nn.RNN"))



@hidden_test("test_rnn_forward_outputs")
def _(student):
    """ys = hs @ Who + by, judged on the student's own hs so a wrong hs is not charged twice."""
    for seed, (T, B, D, H, K) in enumerate(SHAPES):
        xs, h0, p, _ = random_problem(300 + seed, T, B, D, H, K)
        hs, ys = forward_pair(_call(student, "rnn_forward", xs, h0, p), T, B, H, K)
        _close(say("ys returned by rnn_forward", "rnn_forward가 돌려준 ys"), ys, hs @ p["Who"] + p["by"],
               what=say("hs @ Who + by (computed from your hs)", "hs @ Who + by (여러분이 구한 hs로 계산)"))


# ------------------------------------------------------------------------- rnn_backward

def _backward_case(student, seed, T, B, D, H, K, scale=1.0, watch=False):
    xs, h0, p, dys = random_problem(seed, T, B, D, H, K, scale)
    hs, _ = ref.rnn_forward(xs, h0, p)
    got = _grads_dict(_call(student, "rnn_backward", xs, h0, p, hs, dys, watch=watch))
    return got, ref.rnn_backward(xs, h0, p, hs, dys)


@hidden_test("test_rnn_backward_shapes")
def _(student):
    for seed, (T, B, D, H, K) in enumerate(SHAPES):
        got, want = _backward_case(student, 400 + seed, T, B, D, H, K)
        for name in GRAD_NAMES:
            expect_shape(f"rnn_backward(...)[{name!r}]", got[name], want[name].shape)


@hidden_test("test_rnn_backward_output_layer")
def _(student):
    for seed, (T, B, D, H, K) in enumerate(SHAPES):
        got, want = _backward_case(student, 500 + seed, T, B, D, H, K)
        explain_backward(got, want, T, B, ("Who", "by"))
        for name in ("Who", "by"):
            _close(say(f"gradient for {name}", f"{name}의 기울기"), got[name], want[name],
                   what=say("the correct gradient", "올바른 기울기"))


def _recurrent(student, seed_base, shapes, watch=False):
    for seed, (T, B, D, H, K) in enumerate(shapes):
        for scale in (1.0, 2.5):
            got, want = _backward_case(student, seed_base + seed, T, B, D, H, K, scale, watch)
            # the same worded diagnosis as the self-check (a missing dh_next shows as right at T = 1)
            single = T == 1 or _right_for_one_step(student, seed_base + seed, B, D, H, K, scale)
            explain_backward(got, want, T, B, ("Wxh", "Whh", "bh", "h0"), single)
            for name in ("Wxh", "Whh", "bh", "h0"):
                _close(say(f"gradient for {name} (T = {T})", f"{name}의 기울기 (T = {T})"), got[name], want[name],
                       what=say("the correct gradient", "올바른 기울기"))


def _right_for_one_step(student, seed, B, D, H, K, scale):
    got, want = _backward_case(student, seed, 1, B, D, H, K, scale)
    return all(np.allclose(got[n], want[n], rtol=1e-4, atol=1e-5 * max(1.0, np.abs(want[n]).max()))
               for n in ("Wxh", "Whh", "bh", "h0"))


@hidden_test("test_rnn_backward_one_step")
def _(student):
    """T = 1: the local step (through tanh, into Wxh, Whh, bh and h0), no time recursion."""
    _recurrent(student, 600, [(1, 1, 3, 4, 2), (1, 3, 2, 6, 3), (1, 4, 5, 3, 5)])


@hidden_test("test_rnn_backward_through_time")
def _(student):
    """T > 1: the gradient must also flow from h_t back into h_{t-1}."""
    _recurrent(student, 700, [(5, 1, 2, 3, 4), (6, 3, 4, 5, 3), (4, 4, 5, 2, 6), (9, 2, 3, 3, 2)],
               watch=True)
    # and, independently of the reference, against numerical gradients of L = sum(ys * dys)
    xs, h0, p, dys = random_problem(790, 4, 2, 3, 3, 2)
    hs, _ = ref.rnn_forward(xs, h0, p)
    got = _grads_dict(_call(student, "rnn_backward", xs, h0, p, hs, dys))
    every = dict(p, h0=h0)
    numeric = numerical_gradients(
        lambda q: float(np.sum(ref.rnn_forward(xs, q["h0"], q)[1] * dys)), every)
    for name in ("Wxh", "Whh", "bh", "h0"):
        expect_gradient_close(name, got[name], numeric[name])


# ----------------------------------------------------------------------- gradient_norms

def _norms_problem(seed, T, B, H, scale):
    rng = np.random.default_rng(seed)
    hs = np.tanh(scale * rng.standard_normal((T, B, H)))  # (T, B, H), like a forward pass
    Whh = rng.standard_normal((H, H)) / np.sqrt(H) * 1.5  # not symmetric
    dh_last = rng.standard_normal((B, H))  # (B, H)
    return hs, Whh, dh_last


NORM_SHAPES = [(1, 2, 3), (6, 1, 4), (10, 3, 5), (7, 4, 2)]


@hidden_test("test_gradient_norms_shape")
def _(student):
    """One norm per hidden state h_1..h_T, and the last one is ||dh_last||."""
    for seed, (T, B, H) in enumerate(NORM_SHAPES):
        hs, Whh, dh_last = _norms_problem(800 + seed, T, B, H, 1.0)
        got = expect_shape("gradient_norms(hs, Whh, dh_last)",
                           _call(student, "gradient_norms", hs, Whh, dh_last), (T,), "T")
        _close(f"gradient_norms(...)[-1] (T = {T})", got[-1], np.linalg.norm(dh_last),
               what=say("||dh_last||, the norm of the gradient at h_T", "||dh_last||, 곧 h_T에서의 기울기의 노름"))


@hidden_test("test_gradient_norms_values")
def _(student):
    for seed, (T, B, H) in enumerate(NORM_SHAPES):
        for scale in (0.3, 2.0):
            hs, Whh, dh_last = _norms_problem(900 + seed, T, B, H, scale)
            got = expect_shape("gradient_norms(hs, Whh, dh_last)",
                               _call(student, "gradient_norms", hs, Whh, dh_last, watch=True), (T,), "T")
            _close("gradient_norms(hs, Whh, dh_last)", got, ref.gradient_norms(hs, Whh, dh_last))
    # an edge: no gradient at all arrives at h_T, so none flows back (no division by a zero norm)
    hs, Whh, dh_last = _norms_problem(950, 5, 2, 3, 1.0)
    got = expect_shape("gradient_norms(hs, Whh, zeros)",
                       _call(student, "gradient_norms", hs, Whh, np.zeros_like(dh_last)), (5,), "T")
    _close(say("gradient_norms(hs, Whh, dh_last) with dh_last = 0", "dh_last = 0일 때 gradient_norms(hs, Whh, dh_last)"),
           got, np.zeros(5), what=say("all zeros", "모두 0"))


# ----------------------------------------------------------------------- clip_gradients

def _grads(seed, sizes):
    rng = np.random.default_rng(seed)
    shapes = {"Wxh": (3, 4), "Whh": (4, 4), "Who": (4, 2), "bh": (4,), "by": (2,), "h0": (2, 4)}
    return {name: sizes.get(name, 1.0) * rng.standard_normal(shape) for name, shape in shapes.items()}


def _clipped(student, grads, max_norm, watch=False, fresh=False):
    got = _call(student, "clip_gradients", grads, max_norm, watch=watch, fresh=fresh)
    expect_true(isinstance(got, dict),
                say(f"clip_gradients should return a dict of gradients, got {describe(got)}.",
                    f"clip_gradients는 기울기의 dict를 돌려주어야 하는데 {describe(got)}입니다."))
    expect_true(set(got) == set(grads),
                say(f"clip_gradients should return the same keys it was given, {sorted(grads)}; "
                    f"got {sorted(got)}.",
                    f"clip_gradients는 받은 키 {sorted(grads)}을(를) 그대로 돌려주어야 하는데 "
                    f"{sorted(got)}입니다."))
    return got


@hidden_test("test_clip_gradients_scales")
def _(student):
    """Above max_norm, every gradient is scaled by the same factor max_norm / global norm."""
    for seed, (sizes, max_norm) in enumerate([({}, 1.0), ({"Whh": 20.0}, 5.0),
                                              ({"by": 0.01, "Wxh": 3.0}, 0.5)]):
        grads = _grads(1000 + seed, sizes)
        got = _clipped(student, grads, max_norm, watch=True)
        want = ref.clip_gradients(grads, max_norm)
        for name in grads:
            _close(f"clip_gradients(grads, {max_norm})[{name!r}]", got[name], want[name])


@hidden_test("test_clip_gradients_below_threshold")
def _(student):
    """At or below max_norm, the gradients come back unchanged, in a new dict.

    Edges: a global norm exactly at max_norm, all-zero gradients (no division by zero),
    tiny gradients.
    """
    grads = _grads(1100, {})
    total = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))  # about 6.5
    cases = [(grads, 100.0, say(f"global norm {total:.2f} is below max_norm",
                                f"전역 노름 {total:.2f}이(가) max_norm보다 작음")),
             (_grads(1101, {}), 12.0, say("global norm below max_norm", "전역 노름이 max_norm보다 작음")),
             (grads, total, say("global norm exactly max_norm", "전역 노름이 정확히 max_norm")),
             ({name: np.zeros_like(g) for name, g in grads.items()}, 1.0,
              say("all gradients zero", "모든 기울기가 0")),
             ({name: 1e-30 * g for name, g in grads.items()}, 1.0, say("tiny gradients", "아주 작은 기울기"))]
    for grads, max_norm, why in cases:
        got = _clipped(student, grads, max_norm, fresh=True)
        for name in grads:
            _close(f"clip_gradients(grads, {max_norm:g})[{name!r}] ({why})", got[name], grads[name],
                   what=say("the unchanged gradient", "바뀌지 않은 기울기"))
