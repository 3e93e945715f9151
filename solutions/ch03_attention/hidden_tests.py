"""Hidden tests of lab 3 (attention). One per test cell; see DEVELOPERS.md.

Layout: query (B, H), keys (T, B, H'), values (T, B, D), scores and weights (T, B),
mask (T, B) bool, True on real frames. Functions get tensors and return tensors; the
results come back here as numpy arrays and are compared with ``reference.py``, with
``torch.nn.functional.scaled_dot_product_attention`` where it computes the same thing,
and with invariances every correct answer has.

Every result is judged against the reference (or PyTorch), never against the student's own
other function: ``attend``'s weights must be the reference's masked softmax (a wrong
``masked_softmax`` inside ``attend`` costs ``attend``'s cells too, and a stateful answer cannot
pass by replaying ``attend``'s output from ``masked_softmax``), and ``AttentionDecoder.step``
is compared with the reference's step, so it passes only when the scores, ``attend`` and the
step itself are right; its message says which of the student's parts to fix first. A failed
precondition costs the points, it never waives a check.

Every masked test has scores of order 1e4 (a mask that adds -1e4 instead of filling -inf
fails), the step is given padding that is not zero and a real all-zero frame (the mask comes
from ``lengths``), and lengths whose longest is shorter than T and not first.
"""

import math

import numpy as np
import torch

from autograder.hidden import StudentError, hidden_test, load_sibling, with_weights
from speechcourse.checks import CheckFailed, as_array, describe, expect_close, expect_shape, expect_true
from speechcourse.language import say

ref = load_sibling(__file__, "reference")
V = 13
TOL = dict(rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- problems

def _tensor(rng, shape, scale=1.0, dtype=np.float32):
    return torch.from_numpy((scale * rng.standard_normal(shape)).astype(dtype))


def _mask(lengths, T):
    """(T, B) bool, True on the first lengths[b] frames of column b."""
    return torch.arange(T)[:, None] < torch.as_tensor(lengths)[None, :]


def _lengths(rng, T, B):
    """Lengths in 1..T, the longest T, one of them 1 when B > 2."""
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    if B > 2:
        lengths[-1] = 1
    return lengths


# (T, B, H, H') including B = 1, T = 1 and H != H'
SHAPES = [(5, 3, 4, 4), (1, 1, 3, 3), (7, 1, 2, 2), (1, 4, 5, 5), (6, 5, 8, 8)]
UNEQUAL = [(5, 3, 4, 6), (1, 1, 3, 2), (7, 1, 2, 5), (1, 4, 6, 3), (6, 5, 8, 3)]


def _scores(name, result, T, B):
    return expect_shape(f"{name}", result, (T, B), "T, B")


def _reference_grads(function, inputs, grad_output, wrt):
    """Gradients of sum(function(*inputs) * grad_output) with respect to inputs[i], i in wrt."""
    leaves = [t.clone().requires_grad_(True) if i in wrt else t for i, t in enumerate(inputs)]
    out = function(*leaves)
    outs, gouts = (out, grad_output) if isinstance(out, tuple) else ((out,), (grad_output,))
    sum((o * g).sum() for o, g in zip(outs, gouts) if g is not None).backward()
    return {str(i): leaves[i].grad.numpy() for i in wrt}


def _expect_gradients(name, call, want, names):
    """The student's call (student.gradients(...)) let the same gradients flow back as the reference."""
    expect_true(call.differentiable,
                say(f"{name}: the value is right, but no gradient can flow back to its inputs: {call.reason}. "
                    f"Training calls backward() through this, so build it from torch operations on the "
                    f"tensors you are given (no .detach(), .item(), .numpy()).",
                    f"{name}: 값은 맞지만 입력으로 기울기가 거슬러 흐를 수 없습니다: {call.reason}. 학습은 "
                    f"이것을 거쳐 backward()를 호출하므로, 주어진 텐서에 torch 연산을 써서 만드십시오 "
                    f"(.detach(), .item(), .numpy() 없이)."))
    for key, expected in want.items():
        got = call.grads.get(key)
        expect_true(got is not None, say(f"{name}: no gradient reaches {names[key]}; is something detached on "
                                         f"the way from it to the result?",
                                         f"{name}: {names[key]}에 기울기가 닿지 않습니다. 그것에서 결과까지 "
                                         f"가는 길에 떼어 낸 것(detach)이 있습니까?"))
        expect_close(say(f"{name}: the gradient with respect to {names[key]}",
                         f"{name}: {names[key]}에 대한 기울기"), got, expected, rtol=1e-3,
                     atol=1e-5, what=say("the reference's gradient", "참조 구현의 기울기"))


# ----------------------------------------------------------------------------- scores

@hidden_test("test_dot_scores")
def _(student):
    for seed, (T, B, H, _) in enumerate(SHAPES):
        rng = np.random.default_rng(seed)
        dtype = np.float64 if seed == 2 else np.float32
        query, keys = _tensor(rng, (B, H), dtype=dtype), _tensor(rng, (T, B, H), dtype=dtype)
        got = _scores(say(f"dot_scores(query, keys) with (T, B, H) = ({T}, {B}, {H})",
                          f"(T, B, H) = ({T}, {B}, {H})일 때 dot_scores(query, keys)"),
                      student.dot_scores(query, keys), T, B)
        expect_close(say(f"dot_scores(query, keys) with (T, B, H) = ({T}, {B}, {H})",
                         f"(T, B, H) = ({T}, {B}, {H})일 때 dot_scores(query, keys)"), got,
                     ref.dot_scores(query, keys).numpy(), **TOL,
                     what="e[t, b] = query[b] . keys[t, b]")
        if seed == 0:
            G = _tensor(rng, (T, B), dtype=dtype)
            call = student.gradients(wrt=(0, 1), grad_output=G).dot_scores(query, keys)
            _expect_gradients("dot_scores(query, keys)", call,
                              _reference_grads(ref.dot_scores, (query, keys), G, (0, 1)),
                              {"0": "query", "1": "keys"})


@hidden_test("test_dot_scores_scaled")
def _(student):
    for seed, (T, B, H, _) in enumerate(SHAPES):
        H = max(H, 4)                     # sqrt(H) > 1: scaling must show
        rng = np.random.default_rng(10 + seed)
        query, keys = _tensor(rng, (B, H)), _tensor(rng, (T, B, H))
        name = say(f"dot_scores(query, keys, scaled=True) with (T, B, H) = ({T}, {B}, {H})",
                   f"(T, B, H) = ({T}, {B}, {H})일 때 dot_scores(query, keys, scaled=True)")
        got = _scores(name, student.dot_scores(query, keys, scaled=True), T, B)
        expect_close(name, got, ref.dot_scores(query, keys, scaled=True).numpy(), **TOL,
                     what=f"query[b] . keys[t, b] / sqrt(H), sqrt({H}) = {math.sqrt(H):.3g}")


@hidden_test("test_general_scores")
def _(student):
    for seed, (T, B, H, H2) in enumerate(UNEQUAL):
        rng = np.random.default_rng(20 + seed)
        query, keys, W = _tensor(rng, (B, H)), _tensor(rng, (T, B, H2)), _tensor(rng, (H, H2))
        name = say(f"general_scores(query, keys, W) with (T, B, H, H') = ({T}, {B}, {H}, {H2})",
                   f"(T, B, H, H') = ({T}, {B}, {H}, {H2})일 때 general_scores(query, keys, W)")
        got = _scores(name, student.general_scores(query, keys, W), T, B)
        expect_close(name, got, ref.general_scores(query, keys, W).numpy(), **TOL,
                     what="e[t, b] = query[b] @ W @ keys[t, b]")
        if seed == 0:
            G = _tensor(rng, (T, B))
            call = student.gradients(wrt=(0, 1, 2), grad_output=G).general_scores(query, keys, W)
            _expect_gradients(name, call, _reference_grads(ref.general_scores, (query, keys, W), G, (0, 1, 2)),
                              {"0": "query", "1": "keys", "2": "W"})


@hidden_test("test_additive_scores")
def _(student):
    for seed, (T, B, H, H2) in enumerate(UNEQUAL):
        A = 3 + seed
        rng = np.random.default_rng(30 + seed)
        query, keys = _tensor(rng, (B, H)), _tensor(rng, (T, B, H2))
        W_q, W_k, v = _tensor(rng, (H, A)), _tensor(rng, (H2, A)), _tensor(rng, (A,))
        name = say(f"additive_scores(query, keys, W_q, W_k, v) with (T, B, H, H', A) = ({T}, {B}, {H}, {H2}, {A})",
                   f"(T, B, H, H', A) = ({T}, {B}, {H}, {H2}, {A})일 때 additive_scores(query, keys, W_q, W_k, v)")
        got = _scores(name, student.additive_scores(query, keys, W_q, W_k, v), T, B)
        expect_close(name, got, ref.additive_scores(query, keys, W_q, W_k, v).numpy(), **TOL,
                     what="e[t, b] = v . tanh(query[b] @ W_q + keys[t, b] @ W_k)")
        if seed == 0:
            G = _tensor(rng, (T, B))
            call = student.gradients(wrt=(0, 1, 2, 3, 4), grad_output=G).additive_scores(query, keys, W_q, W_k, v)
            _expect_gradients(name, call, _reference_grads(ref.additive_scores, (query, keys, W_q, W_k, v), G,
                                                           (0, 1, 2, 3, 4)),
                              {"0": "query", "1": "keys", "2": "W_q", "3": "W_k", "4": "v"})


# ----------------------------------------------------------------------------- masked_softmax

def _softmax(student, scores, mask, name):
    T, B = scores.shape
    got = expect_shape(name, student.masked_softmax(scores.clone(), mask.clone()), (T, B), "T, B")
    if not np.all(np.isfinite(got)):
        raise CheckFailed(say(f"{name} contains {got[~np.isfinite(got)][0]}: the weights must be finite "
                              f"numbers (exp of a large score overflows unless the maximum is subtracted first).",
                              f"{name}에 {got[~np.isfinite(got)][0]}이(가) 있습니다: 가중치는 유한한 수여야 "
                              f"합니다 (최댓값을 먼저 빼지 않으면 큰 점수의 exp는 넘칩니다(overflow))."))
    return got


def _padding_exactly_zero(name, got, mask):
    padded = ~mask.numpy()
    if np.any(got[padded] != 0):
        t, b = (int(i) for i in np.argwhere((got != 0) & padded)[0])
        raise CheckFailed(say(f"{name}: weight[{t}, {b}] = {got[t, b]:.3g} on a padded frame (column {b} "
                              f"has {int(mask[:, b].sum())} real frames). Padded frames must get weight "
                              f"exactly 0: set their scores to -inf before the softmax.",
                              f"{name}: 패딩 프레임에 weight[{t}, {b}] = {got[t, b]:.3g}입니다 (열 {b}의 실제 "
                              f"프레임은 {int(mask[:, b].sum())}개). 패딩 프레임의 가중치는 정확히 0이어야 "
                              f"합니다: 소프트맥스 전에 그 점수를 -inf로 두십시오."))


def _sums_to_one(name, got, mask):
    sums = got.sum(axis=0)
    if np.any(np.abs(sums - 1) > 1e-5):
        b = int(np.argmax(np.abs(sums - 1)))
        raise CheckFailed(say(f"{name}: the weights of column {b} sum to {sums[b]:.6g}, not 1. The softmax "
                              f"runs over the frames (axis 0) of each column, over its real frames only.",
                              f"{name}: 열 {b}의 가중치 합이 1이 아니라 {sums[b]:.6g}입니다. 소프트맥스는 각 "
                              f"열의 프레임 축(axis 0)을 따라, 그 열의 실제 프레임에 대해서만 취합니다."))


@hidden_test("test_masked_softmax")
def _(student):
    for seed, (T, B, _, _) in enumerate(SHAPES + [(4, 6, 1, 1), (9, 2, 1, 1)]):
        rng = np.random.default_rng(40 + seed)
        scores, lengths = _tensor(rng, (T, B), scale=3.0), _lengths(rng, T, B)
        mask = _mask(lengths, T)
        name = say(f"masked_softmax(scores, mask) with (T, B) = ({T}, {B}) and lengths {lengths.tolist()}",
                   f"(T, B) = ({T}, {B}), 길이 {lengths.tolist()}일 때 masked_softmax(scores, mask)")
        got = _softmax(student, scores, mask, name)
        _padding_exactly_zero(name, got, mask)
        _sums_to_one(name, got, mask)
        expect_close(name, got, ref.masked_softmax(scores, mask).numpy(), **TOL,
                     what=say("the softmax over each column's real frames", "각 열의 실제 프레임에 대한 소프트맥스"))
        if seed in (0, 4):
            G = _tensor(rng, (T, B))
            call = student.gradients(wrt=(0,), grad_output=G).masked_softmax(scores, mask)
            _expect_gradients(name, call, _reference_grads(ref.masked_softmax, (scores, mask), G, (0,)),
                              {"0": "scores"})
        for b in np.flatnonzero(lengths == 1):
            expect_true(got[0, b] == 1.0, say(f"{name}: column {b} has one real frame, so its weight must be "
                                              f"exactly 1, got {got[0, b]:.6g}.",
                                              f"{name}: 열 {b}에는 실제 프레임이 하나뿐이므로 그 가중치는 "
                                              f"정확히 1이어야 하는데 {got[0, b]:.6g}입니다."))
        # padding invariance: more padded frames, with any scores (1e4 included), change nothing
        for extra_scale in (10.0, 1e4):
            extra = torch.cat([scores, _tensor(rng, (3, B), scale=extra_scale).abs()])
            longer = _softmax(student, extra, _mask(lengths, T + 3),
                              say(name + " padded with 3 more frames", name + " (패딩 프레임 3개 추가)"))
            expect_close(say(f"masked_softmax with 3 more padded frames (scores of order {extra_scale:g}), frames :{T}",
                             f"패딩 프레임 3개를 더한 masked_softmax (점수 크기 {extra_scale:g} 정도), 프레임 :{T}"),
                         longer[:T], got, **TOL,
                         what=say("the weights without the extra padding (padding must not change them: fill "
                                  "its scores with -inf, a large negative number added to 1e4 can still win)",
                                  "추가 패딩이 없을 때의 가중치 (패딩이 가중치를 바꾸면 안 됩니다: 패딩의 점수를 "
                                  "-inf로 채우십시오. 큰 음수를 더해도 1e4 점수는 여전히 이길 수 있습니다)"))


    # a mask that is not a prefix (the frames of a batch in another order): the real frames are
    # where the mask says, not the first mask.sum() of each column
    rng = np.random.default_rng(49)
    T, B = 7, 3
    scores, mask = _tensor(rng, (T, B), scale=3.0), _mask([5, 2, 4], T)
    order = torch.from_numpy(rng.permutation(T))
    scores, mask = scores[order], mask[order]
    name = say(f"masked_softmax(scores, mask) with a mask that is not a prefix of each column: {mask.T.int().tolist()}",
               f"각 열의 앞부분이 아닌 마스크 {mask.T.int().tolist()}일 때 masked_softmax(scores, mask)")
    got = _softmax(student, scores, mask, name)
    _padding_exactly_zero(name, got, mask)
    expect_close(name, got, ref.masked_softmax(scores, mask).numpy(), **TOL,
                 what=say("the softmax over the frames where mask is True", "mask가 True인 프레임에 대한 소프트맥스"))


@hidden_test("test_masked_softmax_stable")
def _(student):
    """Scores of +-1e4: exp overflows unless the softmax subtracts the (real frames') maximum."""
    rng = np.random.default_rng(50)
    T, B = 6, 4
    scores = torch.from_numpy(rng.choice([-1e4, 1e4, 0.0, 9999.0], size=(T, B)).astype(np.float32))
    lengths = np.array([6, 3, 1, 4])
    scores[lengths[1]:, 1] = 1e4          # huge scores on padding
    scores[:lengths[1], 1] = -1e4         # and very negative ones on the real frames
    mask = _mask(lengths, T)
    name = say("masked_softmax(scores, mask) with scores of +-1e4", "점수가 +-1e4일 때 masked_softmax(scores, mask)")
    got = _softmax(student, scores, mask, name)
    _padding_exactly_zero(name, got, mask)
    _sums_to_one(name, got, mask)
    expect_close(name, got, ref.masked_softmax(scores, mask).numpy(), **TOL,
                 what=say("the softmax over each column's real frames", "각 열의 실제 프레임에 대한 소프트맥스"))


# ----------------------------------------------------------------------------- attend

def _attend(student, scores, values, mask, name):
    T, B, D = values.shape
    result = student.attend(scores.clone(), values.clone(), mask.clone())
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                say(f"{name} should return a pair (weights, context), got {describe(result)}.",
                    f"{name}은(는) 쌍 (weights, context)를 돌려주어야 하는데 {describe(result)}입니다."))
    weights = expect_shape(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), result[0], (T, B), "T, B")
    context = expect_shape(say(f"context returned by {name}", f"{name}이(가) 돌려준 context"), result[1], (B, D), "B, D")
    return weights, context


def _check_attend(student, scores, values, mask, name):
    """weights: the reference's softmax over the real frames; context: the weighted sum of the
    values with those weights (the reference's context)."""
    weights, context = _attend(student, scores, values, mask, name)
    want_weights, want_context = (t.numpy() for t in ref.attend(scores, values, mask))
    expect_close(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), weights, want_weights, **TOL,
                 what=say("masked_softmax(scores, mask): the softmax over each column's real frames, "
                          "exactly 0 on padding",
                          "masked_softmax(scores, mask): 각 열의 실제 프레임에 대한 소프트맥스, 패딩에서는 "
                          "정확히 0"))
    expect_close(say(f"context returned by {name}", f"{name}이(가) 돌려준 context"), context, want_context, **TOL,
                 what=say("sum over t of weights[t, b] * values[t, b]", "t에 대한 weights[t, b] * values[t, b]의 합"))
    return weights, context


def _huge_scores(rng, T, B, lengths):
    """Scores of +-1e4: +1e4 on every padded frame, -1e4 or 0 on the real ones."""
    scores = rng.choice([-1e4, 0.0, 1e4, 9999.0], size=(T, B)).astype(np.float32)
    for b, n in enumerate(lengths):
        scores[n:, b] = 1e4
        scores[:n, b] = np.minimum(scores[:n, b], 0.0)
        scores[rng.integers(0, n), b] = rng.choice([0.0, -1.0])
    return torch.from_numpy(scores)


@hidden_test("test_attend")
def _(student):
    for seed, (T, B, H, D) in enumerate(UNEQUAL + [(8, 3, 4, 4)]):
        rng = np.random.default_rng(60 + seed)
        query, keys, values = _tensor(rng, (B, H)), _tensor(rng, (T, B, H)), _tensor(rng, (T, B, D))
        lengths = _lengths(rng, T, B)
        mask = _mask(lengths, T)
        scores = ref.dot_scores(query, keys, scaled=True)                       # (T, B)
        name = say(f"attend(scores, values, mask) with (T, B, D) = ({T}, {B}, {D})",
                   f"(T, B, D) = ({T}, {B}, {D})일 때 attend(scores, values, mask)")
        _, context = _check_attend(student, scores, values, mask, name)
        if seed == 0:                     # gradients to the scores and the values
            G = (_tensor(rng, (T, B)), _tensor(rng, (B, D)))
            call = student.gradients(wrt=(0, 1), grad_output=G).attend(scores, values, mask)
            _expect_gradients(name, call, _reference_grads(ref.attend, (scores, values, mask), G, (0, 1)),
                              {"0": "scores", "1": "values"})
        sdpa = torch.nn.functional.scaled_dot_product_attention(                # PyTorch's own attention
            query[:, None, :], keys.transpose(0, 1), values.transpose(0, 1),
            attn_mask=mask.T[:, None, :])[:, 0]                                 # (B, D)
        expect_close(say(f"context returned by {name}", f"{name}이(가) 돌려준 context"), context, sdpa.numpy(), **TOL,
                     what=say("torch.nn.functional.scaled_dot_product_attention on the same query, "
                              "keys, values and mask",
                              "같은 query, keys, values, mask에 대한 "
                              "torch.nn.functional.scaled_dot_product_attention"))
    # scores of +-1e4, +1e4 on padding: a mask added as -1e4 lets the padding win
    rng = np.random.default_rng(69)
    T, B, D = 6, 4, 3
    lengths = np.array([4, 6, 1, 3])
    scores, values = _huge_scores(rng, T, B, lengths), _tensor(rng, (T, B, D))
    _check_attend(student, scores, values, _mask(lengths, T),
                  say(f"attend(scores, values, mask) with scores of +-1e4 (+1e4 on padding), lengths {lengths.tolist()}",
                      f"점수가 +-1e4 (패딩에 +1e4), 길이 {lengths.tolist()}일 때 attend(scores, values, mask)"))


@hidden_test("test_attend_invariances")
def _(student):
    """Permuting the frames together with their values and mask leaves the context unchanged;
    padded frames, whatever their scores (+1e4 included) and values, change nothing; weights sum to 1."""
    for seed, (T, B, _, D) in enumerate(UNEQUAL[:1] + [(9, 4, 1, 3), (6, 1, 1, 2)]):
        rng = np.random.default_rng(70 + seed)
        scores, values = _tensor(rng, (T, B), scale=2.0), _tensor(rng, (T, B, D))
        lengths = _lengths(rng, T, B)
        mask = _mask(lengths, T)
        name = say(f"attend(scores, values, mask) with (T, B, D) = ({T}, {B}, {D})",
                   f"(T, B, D) = ({T}, {B}, {D})일 때 attend(scores, values, mask)")
        weights, context = _check_attend(student, scores, values, mask, name)
        order = torch.from_numpy(rng.permutation(T))
        _, shuffled = _attend(student, scores[order], values[order], mask[order],
                              say(name + ", frames permuted", name + " (프레임 순서를 바꿈)"))
        expect_close(say(f"the context when the frames, their values and the mask are permuted together "
                         f"(T = {T}, B = {B})",
                         f"프레임과 그 값, 마스크의 순서를 함께 바꾸었을 때의 context (T = {T}, B = {B})"),
                     shuffled, context, **TOL,
                     what=say("the context before (a weighted sum does not depend on the order of the frames)",
                              "바꾸기 전의 context (가중합은 프레임의 순서와 무관합니다)"))
        _sums_to_one(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), weights, mask)
        for extra_scale in (10.0, 1e4):
            more_scores = torch.cat([scores, _tensor(rng, (2, B), scale=extra_scale).abs()])
            more_values = torch.cat([values, _tensor(rng, (2, B, D), scale=10.0)])
            more_mask = _mask(lengths, T + 2)
            _, padded = _attend(student, more_scores, more_values, more_mask,
                                say(name + " padded with 2 more frames", name + " (패딩 프레임 2개 추가)"))
            expect_close(say(f"the context with 2 more padded frames (scores of order {extra_scale:g}, large values) "
                             f"after the T = {T} frames",
                             f"T = {T}개 프레임 뒤에 패딩 프레임 2개(점수 크기 {extra_scale:g} 정도, 큰 값)를 "
                             f"더했을 때의 context"), padded, context, **TOL,
                         what=say("the context without them (padding must not change it)",
                                  "그 프레임이 없을 때의 context (패딩이 context를 바꾸면 안 됩니다)"))


# ----------------------------------------------------------------------------- AttentionDecoder.step

DECODER_SIZES = [(5, 4, 6), (3, 6, 6), (4, 3, 8)]    # (emb, H, E): E != H and E == H
# (T, B, lengths): None draws lengths with the longest = T; given lengths are all shorter than
# T, the longest not first, with huge values on padding and a real all-zero frame
STEP_CASES = [(7, 4, None), (1, 1, None), (5, 1, None), (6, 3, None), (8, 3, [5, 7, 2]), (6, 2, [2, 4])]


def _decoder(student, seed, emb, H, E):
    torch.manual_seed(seed)
    module = ref.AttentionDecoder(V, emb, H, E)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    return module, with_weights(student, "AttentionDecoder", state, V, emb, H, E)


def _first_broken_part(student):
    """The name of the student's score or attend that is wrong, for the step's message."""
    rng = np.random.default_rng(99)
    query, keys, values = _tensor(rng, (3, 4)), _tensor(rng, (5, 3, 4)), _tensor(rng, (5, 3, 2))
    mask = _mask([5, 2, 1], 5)
    try:
        got = as_array("dot_scores", student.dot_scores(query, keys, scaled=True))
        if got.shape != (5, 3) or not np.allclose(got, ref.dot_scores(query, keys, scaled=True).numpy(), **TOL):
            return "dot_scores(..., scaled=True)"
        weights, context = student.attend(ref.dot_scores(query, keys, scaled=True), values, mask)
        want_w, want_c = (t.numpy() for t in ref.attend(ref.dot_scores(query, keys, scaled=True), values, mask))
        if not (np.allclose(as_array("w", weights), want_w, **TOL) and np.allclose(as_array("c", context), want_c, **TOL)):
            return say("attend (or the masked_softmax it uses)", "attend (또는 그것이 쓰는 masked_softmax)")
    except (StudentError, CheckFailed, ValueError):
        return say("dot_scores or attend", "dot_scores 또는 attend")
    return None


@hidden_test("test_decoder_step")
def _(student):
    for seed, (emb, H, E) in enumerate(DECODER_SIZES):
        module, decoder = _decoder(student, 300 + seed, emb, H, E)
        rng = np.random.default_rng(seed)
        for T, B, given in STEP_CASES:
            lengths = torch.from_numpy(_lengths(rng, T, B) if given is None else np.array(given))
            states = _tensor(rng, (T, B, E))              # padded frames hold garbage: the mask must hide them
            if given is not None:
                states[1, 0] = 0.0                        # a real frame that is all zeros (padding is not)
                for b, n in enumerate(given):             # huge padding: scores of order 1e5 there
                    states[n:, b] = _tensor(rng, (T - n, E), scale=1e5)
            y_prev = torch.from_numpy(rng.integers(0, V, size=B))
            s_prev = _tensor(rng, (B, H))
            result = decoder.step(y_prev, s_prev, states, lengths)
            name = say(f"AttentionDecoder.step(y_prev, s_prev, states, lengths) with (T, B, H, E) = ({T}, {B}, {H}, {E})",
                       f"(T, B, H, E) = ({T}, {B}, {H}, {E})일 때 AttentionDecoder.step(y_prev, s_prev, states, lengths)")
            expect_true(isinstance(result, (tuple, list)) and len(result) == 3,
                        say(f"{name} should return (logits, s, weights), got {describe(result)}.",
                            f"{name}은(는) (logits, s, weights)를 돌려주어야 하는데 {describe(result)}입니다."))
            logits = expect_shape(say(f"logits returned by {name}", f"{name}이(가) 돌려준 logits"), result[0], (B, V), "B, V")
            s = expect_shape(say(f"s returned by {name}", f"{name}이(가) 돌려준 s"), result[1], (B, H), "B, H")
            weights = expect_shape(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), result[2], (T, B), "T, B")
            with torch.no_grad():
                want = [t.numpy() for t in module.step(y_prev, s_prev, states, lengths)]
            try:
                expect_close(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), weights, want[2], **TOL,
                             what=say("the attention of query s_prev on keys key(states), scaled dot "
                                      "product, masked softmax over each utterance's real frames",
                                      "쿼리 s_prev의 키 key(states)에 대한 어텐션: 스케일된 내적, 각 발화의 "
                                      "실제 프레임에 대한 마스크 소프트맥스"))
                expect_close(say(f"s returned by {name}", f"{name}이(가) 돌려준 s"), s, want[1], **TOL,
                             what=say("cell([embed(y_prev); context], s_prev), context = the weighted sum "
                                      "of the values (the encoder states)",
                                      "cell([embed(y_prev); context], s_prev), context = 값(인코더 상태)의 "
                                      "가중합"))
                expect_close(say(f"logits returned by {name}", f"{name}이(가) 돌려준 logits"), logits, want[0], **TOL,
                             what="out([s; context])")
                if T == 7:                # gradients reach every parameter, as in the reference
                    G = (_tensor(rng, (B, V)), _tensor(rng, (B, H)), None)
                    call = decoder.gradients(wrt=(1, 2), grad_output=G).step(y_prev, s_prev, states, lengths)
                    want = _reference_grads(lambda s0, h: module.step(y_prev, s0, h, lengths),
                                            (s_prev, states), G[:2], (0, 1))
                    _expect_gradients(name, call, {"1": want["0"], "2": want["1"]},
                                      {"1": "s_prev", "2": "states"})
                    module.zero_grad(set_to_none=True)
                    logits_s = module.step(y_prev, s_prev, states, lengths)
                    ((logits_s[0] * G[0]).sum() + (logits_s[1] * G[1]).sum()).backward()
                    for pname, parameter in module.named_parameters():
                        got = call.params.get(pname)
                        expect_true(got is not None or parameter.grad is None,
                                    say(f"{name}: no gradient reaches the parameter {pname!r}, so training would "
                                        f"never change it. Is something detached on the way to the output?",
                                        f"{name}: 매개변수 {pname!r}에 기울기가 닿지 않으므로 학습이 이 "
                                        f"매개변수를 결코 바꾸지 못합니다. 출력까지 가는 길에 떼어 낸 것(detach)이 "
                                        f"있습니까?"))
                        if parameter.grad is not None:
                            expect_close(say(f"{name}: the gradient of {pname}", f"{name}: {pname}의 기울기"), got,
                                         parameter.grad.numpy(),
                                         rtol=1e-3, atol=1e-5, what=say("the reference's gradient", "참조 구현의 기울기"))
            except CheckFailed as error:
                broken = _first_broken_part(student)
                if broken:
                    raise CheckFailed(say(f"{error} Your step calls {broken}, which is wrong: fix it first "
                                          f"(its own test cell says how).",
                                          f"{error} 여러분의 step이 호출하는 {broken}이(가) 틀렸습니다: 그것부터 "
                                          f"고치십시오 (그 함수의 테스트 셀이 방법을 알려 줍니다).")) from None
                raise
