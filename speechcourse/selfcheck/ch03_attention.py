"""Visible self-checks of lab 3 (attention).

They run in your notebook and explain in words what is wrong. They use small cases worked
out by hand, properties any correct answer has (weights sum to 1, padding gets weight 0,
a weighted sum does not depend on the order of the frames), PyTorch's own attention
(``torch.nn.functional.scaled_dot_product_attention``, which computes a masked softmax and
a weighted sum), and, for the decoder step, expected values precomputed by the course's
reference on known weights (``ch03_attention.npz`` next to this file). That is why your
``AttentionDecoder`` must keep the layers ``__init__`` creates. Passing the checks is a
good sign, not a guarantee: the grader tests more cases.

Layout: query (B, H), keys (T, B, H'), values (T, B, D), scores and weights (T, B),
mask (T, B) bool, True on real frames.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from speechcourse.checks import CheckFailed, as_array, describe, expect_close, expect_shape, expect_true
from speechcourse.language import say
from speechcourse.selfcheck import self_check

V = 13
DATA = Path(__file__).with_suffix(".npz")
# The decoder steps the check poses (E = H first, then E != H); their answers are in DATA:
# case -> (seed, emb, H, E, T, lengths).
STEP_CASES = {"step_same": (5, 4, 6, 6, 5, (5, 2, 1)), "step": (6, 4, 3, 6, 5, (5, 2, 1))}


def _expected(key: str) -> np.ndarray:
    with np.load(DATA) as data:
        return data[key]


def _state(prefix: str) -> dict:
    with np.load(DATA) as data:
        start = f"{prefix}/w/"
        return {key[len(start):]: torch.from_numpy(data[key]) for key in data.files if key.startswith(start)}


def step_inputs(seed, H, E, T, lengths):
    """y_prev (B,), s_prev (B, H), states (T, B, E) with garbage on padded frames, lengths (B,)."""
    rng = np.random.default_rng(seed)
    B = len(lengths)
    y_prev = torch.tensor([1, 5, 9][:B])
    s_prev = torch.from_numpy(rng.standard_normal((B, H)).astype(np.float32))
    states = torch.from_numpy(rng.standard_normal((T, B, E)).astype(np.float32))
    return y_prev, s_prev, states, torch.tensor(lengths)


def _mask(lengths, T):
    return torch.arange(T)[:, None] < torch.tensor(lengths)[None, :]


def _values(name, value, shape, dims):
    return expect_shape(name, value, shape, dims)


# ----------------------------------------------------------------------------- scores

# Worked by hand: B = 2 utterances, T = 3 frames, H = 2.
QUERY = torch.tensor([[1.0, 2.0], [0.0, -1.0]])                       # (B, H)
KEYS = torch.tensor([[[3.0, 4.0], [1.0, 1.0]],                          # frame 0 of both
                     [[1.0, 0.0], [2.0, 0.0]],                          # frame 1
                     [[0.0, -1.0], [0.0, 3.0]]])                        # frame 2: (T, B, H)
DOT = np.array([[11.0, -1.0], [1.0, 0.0], [-2.0, -3.0]])              # 1*3+2*4, 0*1-1*1, ...


@self_check("dot_scores")
def check_dot_scores(dot_scores) -> None:
    got = _values("dot_scores(query, keys)", dot_scores(QUERY, KEYS), (3, 2), "T, B")
    expect_close(say("dot_scores(query, keys) on the worked example", "손으로 계산한 예에서 dot_scores(query, keys)"), got, DOT,
                 what=say("the hand-computed scores [[11, -1], [1, 0], [-2, -3]] (column b is utterance b)", "손으로 계산한 점수 [[11, -1], [1, 0], [-2, -3]] (열 b가 발화 b)"))
    one = _values(say("dot_scores with T = 1, B = 1", "T = 1, B = 1일 때 dot_scores"), dot_scores(QUERY[:1], KEYS[:1, :1]), (1, 1), "T, B")
    expect_close(say("dot_scores with T = 1, B = 1", "T = 1, B = 1일 때 dot_scores"), one, DOT[:1, :1], what="11")


@self_check("dot_scores(..., scaled=True)")
def check_dot_scores_scaled(dot_scores) -> None:
    rng = np.random.default_rng(3)
    query = torch.from_numpy(rng.standard_normal((4, 9)).astype(np.float32))
    keys = torch.from_numpy(rng.standard_normal((6, 4, 9)).astype(np.float32))
    plain = _values("dot_scores(query, keys)", dot_scores(query, keys), (6, 4), "T, B")
    scaled = _values("dot_scores(query, keys, scaled=True)", dot_scores(query, keys, scaled=True), (6, 4), "T, B")
    expect_close(say("dot_scores(query, keys, scaled=True) * sqrt(H) with H = 9", "H = 9일 때 dot_scores(query, keys, scaled=True) * sqrt(H)"), scaled * 3.0, plain,
                 what=say("dot_scores(query, keys) (scaled=True divides by sqrt(H) = 3)", "dot_scores(query, keys) (scaled=True는 sqrt(H) = 3으로 나눕니다)"))


@self_check("general_scores")
def check_general_scores(general_scores) -> None:
    square = _values(say("general_scores(query, keys, W) with H = H' = 2", "H = H' = 2일 때 general_scores(query, keys, W)"),
                     general_scores(torch.tensor([[1.0, 0.0]]), torch.tensor([[[1.0, 1.0]], [[0.0, 1.0]]]),
                                    torch.tensor([[1.0, 2.0], [0.0, 1.0]])), (2, 1), "T, B")
    expect_close(say("general_scores with query [1, 0], W = [[1, 2], [0, 1]], keys [1, 1] and [0, 1]", "query [1, 0], W = [[1, 2], [0, 1]], keys [1, 1]과 [0, 1]일 때 general_scores"), square,
                 [[3.0], [2.0]], what=say("[[3], [2]]: query @ W = [1, 2] (row of W picked by the query), then "
                                      "dotted with each key", "[[3], [2]]: query @ W = [1, 2] (query가 고른 W의 행), 그다음 "
                                          "각 키와 내적"))
    W = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])                # (H, H') = (2, 3)
    query = torch.tensor([[1.0, 0.0]])                                    # (1, 2): query @ W = [1, 2, 0]
    keys = torch.tensor([[[1.0, 1.0, 1.0]], [[0.0, 0.0, 1.0]]])           # (T, B, H') = (2, 1, 3)
    got = _values(say("general_scores(query, keys, W) with H = 2, H' = 3", "H = 2, H' = 3일 때 general_scores(query, keys, W)"), general_scores(query, keys, W),
                  (2, 1), "T, B")
    expect_close(say("general_scores on the worked example (query @ W = [1, 2, 0])", "손으로 계산한 예에서 general_scores (query @ W = [1, 2, 0])"), got, [[3.0], [0.0]],
                 what=say("[[3], [0]]: [1, 2, 0] . [1, 1, 1] and [1, 2, 0] . [0, 0, 1]", "[[3], [0]]: [1, 2, 0] . [1, 1, 1]과 [1, 2, 0] . [0, 0, 1]"))
    identity = _values("general_scores(QUERY, KEYS, I)", general_scores(QUERY, KEYS, torch.eye(2)), (3, 2), "T, B")
    expect_close(say("general_scores with W = I", "W = I일 때 general_scores"), identity, DOT, what=say("the dot scores of the worked example", "손으로 계산한 예의 내적 점수"))


@self_check("additive_scores")
def check_additive_scores(additive_scores) -> None:
    keys = torch.tensor([[[0.5], [-2.0]], [[1.0], [0.0]]])               # (T, B, H') = (2, 2, 1)
    query = torch.tensor([[3.0, 1.0], [0.0, 0.0]])                       # (B, H) = (2, 2)
    got = _values(say("additive_scores with (T, B, H, H', A) = (2, 2, 2, 1, 1)", "(T, B, H, H', A) = (2, 2, 2, 1, 1)일 때 additive_scores"),
                  additive_scores(query, keys, torch.zeros(2, 1), torch.ones(1, 1), torch.ones(1)), (2, 2), "T, B")
    expect_close(say("additive_scores with W_q = 0, W_k = [[1]], v = [1] (so e = tanh(k))", "W_q = 0, W_k = [[1]], v = [1] (따라서 e = tanh(k))일 때 additive_scores"), got,
                  [[0.46211716, -0.96402758], [0.76159416, 0.0]],
                  what=say("tanh of the keys: [[tanh 0.5, tanh -2], [tanh 1, tanh 0]] (did you apply tanh?)", "키의 tanh: [[tanh 0.5, tanh -2], [tanh 1, tanh 0]] (tanh를 적용했습니까?)"))
    W_q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])                         # (H, A) = (2, 2)
    W_k = torch.tensor([[0.0, 2.0]])                                     # (H', A) = (1, 2)
    got = _values(say("additive_scores with A = 2", "A = 2일 때 additive_scores"), additive_scores(query, keys, W_q, W_k, torch.tensor([1.0, -1.0])),
                  (2, 2), "T, B")
    expect_close(say("additive_scores with A = 2", "A = 2일 때 additive_scores"), got,
                 [[0.99505475 - 0.96402758, 0.0 - (-0.99932930)], [0.99505475 - 0.99505475, 0.0 - 0.0]],
                 what=say("v . tanh(q W_q + k W_k), worked out by hand", "손으로 계산한 v . tanh(q W_q + k W_k)"))


# ----------------------------------------------------------------------------- masked_softmax

def _softmax_properties(name, weights, mask):
    padded = ~mask.numpy()
    if np.any(weights[padded] != 0):
        t, b = (int(i) for i in np.argwhere((weights != 0) & padded)[0])
        raise CheckFailed(say(f"{name}: weight[{t}, {b}] = {weights[t, b]:.3g} on a padded frame. Padded frames "
                              f"must get weight exactly 0 (a score of 0 is not enough: exp(0) = 1).",
                              f"{name}: 패딩 프레임에 weight[{t}, {b}] = {weights[t, b]:.3g}입니다. 패딩 프레임의 "
                              f"가중치는 정확히 0이어야 합니다 (점수 0으로는 부족합니다: exp(0) = 1)."))
    sums = weights.sum(axis=0)
    if np.any(np.abs(sums - 1) > 1e-5):
        b = int(np.argmax(np.abs(sums - 1)))
        raise CheckFailed(say(f"{name}: column {b}'s weights sum to {sums[b]:.6g}, not 1. Softmax over the "
                              f"frames (axis 0), over the real frames only (not zeroed after the softmax).",
                              f"{name}: 열 {b}의 가중치 합이 1이 아니라 {sums[b]:.6g}입니다. 소프트맥스는 프레임 "
                              f"축(axis 0)을 따라, 실제 프레임에 대해서만 취하십시오 (소프트맥스 뒤에 0으로 "
                              f"지우는 것이 아니라)."))


@self_check("masked_softmax")
def check_masked_softmax(masked_softmax) -> None:
    rng = np.random.default_rng(4)
    scores = torch.from_numpy(rng.standard_normal((5, 3)).astype(np.float32))
    lengths = (5, 2, 1)
    mask = _mask(lengths, 5)
    name = say("masked_softmax(scores, mask) with lengths (5, 2, 1)", "길이 (5, 2, 1)에서 masked_softmax(scores, mask)")
    weights = _values(name, masked_softmax(scores, mask), (5, 3), "T, B")
    if not np.all(np.isfinite(weights)):
        raise CheckFailed(say(f"{name} returned non-finite weights.",
                              f"{name}: 유한하지 않은 가중치를 돌려주었습니다."))
    _softmax_properties(name, weights, mask)
    expect_close(say(f"{name}, column 0 (no padding)", f"{name}, 열 0 (패딩 없음)"), weights[:, 0],
                 torch.softmax(scores[:, 0], dim=0).numpy(), what=say("torch.softmax of the column", "그 열의 torch.softmax"))
    expect_true(weights[0, 2] == 1.0, say(f"{name}: column 2 has one real frame; its weight must be exactly 1, "
                                          f"got {weights[0, 2]:.6g}.",
                                          f"{name}: 열 2에는 실제 프레임이 하나뿐이므로 그 가중치는 정확히 1이어야 "
                                          f"하는데 {weights[0, 2]:.6g}입니다."))
    result = masked_softmax(scores.clone().requires_grad_(True), mask)
    expect_true(isinstance(result, torch.Tensor) and result.requires_grad,
                say(f"{name}: the weights are right but carry no gradient back to the scores (built "
                    f"through .detach(), .numpy() or .item()?). Training backpropagates through them: use "
                    f"torch operations on the tensors you are given.",
                    f"{name}: 가중치는 맞지만 점수로 기울기를 되돌려 보내지 않습니다 (.detach(), .numpy(), "
                    f".item()을 거쳐 만들었습니까?). 학습은 가중치를 거쳐 역전파합니다: 주어진 텐서에 torch "
                    f"연산을 쓰십시오."))


@self_check("masked_softmax with scores of +-1e4", "점수가 +-1e4일 때 masked_softmax")
def check_masked_softmax_stable(masked_softmax) -> None:
    scores = torch.tensor([[1e4, -1e4], [-1e4, -1e4], [0.0, 1e4]])
    mask = torch.tensor([[True, True], [True, True], [True, False]])
    name = say("masked_softmax(scores, mask) with scores of +-1e4", "점수가 +-1e4일 때 masked_softmax(scores, mask)")
    weights = _values(name, masked_softmax(scores, mask), (3, 2), "T, B")
    if not np.all(np.isfinite(weights)):
        raise CheckFailed(say(f"{name} returned {weights.tolist()}: exp(1e4) overflows. Subtract each column's "
                              f"largest (real) score before exp, or use torch.softmax, which does.",
                              f"{name}: {weights.tolist()}을(를) 돌려주었습니다: exp(1e4)는 넘칩니다(overflow). "
                              f"exp 전에 각 열의 (실제 프레임 중) 가장 큰 점수를 빼거나, 그렇게 하는 "
                              f"torch.softmax를 쓰십시오."))
    _softmax_properties(name, weights, mask)
    expect_close(name, weights, [[1.0, 0.5], [0.0, 0.5], [0.0, 0.0]],
                 what=say("[[1, 0.5], [0, 0.5], [0, 0]] (exp(-2e4) is 0 in float32)", "[[1, 0.5], [0, 0.5], [0, 0]] (float32에서 exp(-2e4)는 0)"))


# ----------------------------------------------------------------------------- attend

def _attend(attend, scores, values, mask, name):
    result = attend(scores, values, mask)
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                say(f"{name} should return a pair (weights, context), got {describe(result)}.",
                    f"{name}은(는) 쌍 (weights, context)를 돌려주어야 하는데 {describe(result)}입니다."))
    T, B, D = values.shape
    return (_values(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), result[0], (T, B), "T, B"),
            _values(say(f"context returned by {name}", f"{name}이(가) 돌려준 context"), result[1], (B, D), "B, D"))


def _attend_case(seed, T, B, D, lengths):
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(rng.standard_normal((T, B)).astype(np.float32))
    values = torch.from_numpy(rng.standard_normal((T, B, D)).astype(np.float32))
    return scores, values, _mask(lengths, T)


def _from_own_softmax(masked_softmax, scores, mask, weights) -> bool:
    """Whether attend's weights are the student's own masked_softmax, and that one is wrong
    (then its own check says so, and attend is judged only on what does not depend on it)."""
    try:
        own = as_array("masked_softmax", masked_softmax(scores, mask))
    except Exception:  # noqa: BLE001 - a stub or a broken masked_softmax: attend is judged on its own
        return False
    if own.shape != weights.shape or not np.allclose(own, weights, rtol=1e-4, atol=1e-6, equal_nan=True):
        return False
    try:
        _softmax_properties("masked_softmax", own, mask)
        return False
    except CheckFailed:
        return True


@self_check("attend")
def check_attend(attend, masked_softmax) -> None:
    scores, values, mask = _attend_case(6, 5, 3, 4, (5, 3, 1))
    name = say("attend(scores, values, mask) with (T, B, D) = (5, 3, 4), lengths (5, 3, 1)",
               "(T, B, D) = (5, 3, 4), 길이 (5, 3, 1)에서 attend(scores, values, mask)")
    weights, context = _attend(attend, scores, values, mask, name)
    if _from_own_softmax(masked_softmax, scores, mask, weights):
        return                      # fix masked_softmax first: its own check explains what is wrong
    _softmax_properties(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), weights, mask)
    # PyTorch's attention with a one-number query 1 and keys = the scores computes softmax(scores) @ values
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        torch.ones(3, 1, 1), scores.T[:, :, None], values.transpose(0, 1), attn_mask=mask.T[:, None, :])[:, 0]
    expect_close(say(f"context returned by {name}", f"{name}이(가) 돌려준 context"), context, sdpa.numpy(), rtol=1e-4, atol=1e-5,
                 what=say("torch.nn.functional.scaled_dot_product_attention with the same weights and values", "같은 가중치와 값으로 계산한 torch.nn.functional.scaled_dot_product_attention"))


@self_check("attend: frame order and padding", "attend: 프레임 순서와 패딩")
def check_attend_invariances(attend, masked_softmax) -> None:
    scores, values, mask = _attend_case(7, 6, 2, 3, (6, 4))
    name = "attend(scores, values, mask)"
    _, context = _attend(attend, scores, values, mask, name)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    _, shuffled = _attend(attend, scores[order], values[order], mask[order], say(name + " with the frames permuted", name + " (프레임 순서를 바꿈)"))
    expect_close(say("the context after permuting the frames with their values and mask", "프레임을 값, 마스크와 함께 순서를 바꾼 뒤의 context"), shuffled, context,
                 rtol=1e-4, atol=1e-5, what=say("the context before (a weighted sum ignores the order of its terms)", "바꾸기 전의 context (가중합은 항의 순서와 무관합니다)"))
    more_scores, more_values = torch.cat([scores, torch.full((2, 2), 50.0)]), torch.cat([values, torch.full((2, 2, 3), 9.0)])
    more_mask = _mask((6, 4), 8)
    weights, padded = _attend(attend, more_scores, more_values, more_mask, say(name + " with 2 more padded frames", name + " (패딩 프레임 2개 추가)"))
    if _from_own_softmax(masked_softmax, more_scores, more_mask, weights):
        return                      # fix masked_softmax first: its own check explains what is wrong
    expect_close(say("the context with 2 more padded frames (scores 50, values 9)", "패딩 프레임 2개 (점수 50, 값 9)를 더한 context"), padded, context,
                 rtol=1e-4, atol=1e-5, what=say("the context without them (padding must not change it)", "그 프레임이 없을 때의 context (패딩은 context를 바꾸면 안 됩니다)"))


# ----------------------------------------------------------------------------- AttentionDecoder.step

@self_check("AttentionDecoder.step")
def check_decoder_step(AttentionDecoder) -> None:
    for case, (seed, emb, H, E, T, lengths) in STEP_CASES.items():
        _check_step(AttentionDecoder, case, seed, emb, H, E, T, lengths)


def _check_step(AttentionDecoder, case, seed, emb, H, E, T, lengths) -> None:
    decoder = AttentionDecoder(V, emb, H, E)
    try:
        decoder.load_state_dict(_state(case))
    except (RuntimeError, KeyError) as error:
        raise CheckFailed(say(f"AttentionDecoder({V}, {emb}, {H}, {E}).load_state_dict(...) failed ({error}). Keep "
                              f"the layers __init__ creates, with their names and sizes.",
                              f"AttentionDecoder({V}, {emb}, {H}, {E}).load_state_dict(...)가 실패했습니다 ({error}). "
                              f"__init__이 만드는 층을 그 이름과 크기 그대로 두십시오.")) from None
    y_prev, s_prev, states, lens = step_inputs(seed, H, E, T, lengths)
    with torch.no_grad():
        result = decoder.step(y_prev, s_prev, states, lens)
    name = say(f"AttentionDecoder.step with (T, B, H, E) = ({T}, {len(lengths)}, {H}, {E}), lengths {lengths}",
               f"(T, B, H, E) = ({T}, {len(lengths)}, {H}, {E}), 길이 {lengths}에서 AttentionDecoder.step")
    expect_true(isinstance(result, (tuple, list)) and len(result) == 3,
                say(f"{name} should return (logits, s, weights), got {describe(result)}.",
                    f"{name}은(는) (logits, s, weights)를 돌려주어야 하는데 {describe(result)}입니다."))
    B = len(lengths)
    logits = _values(say(f"logits returned by {name}", f"{name}이(가) 돌려준 logits"), result[0], (B, V), "B, V")
    s = _values(say(f"s returned by {name}", f"{name}이(가) 돌려준 s"), result[1], (B, H), "B, H")
    weights = _values(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), result[2], (T, B), "T, B")
    _softmax_properties(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), weights, _mask(lengths, T))
    expect_close(say(f"weights returned by {name}", f"{name}이(가) 돌려준 weights"), weights, _expected(f"{case}/weights"), rtol=1e-4, atol=1e-5,
                 what=say("the reference's weights (query s_prev, keys key(states), scaled dot product)", "참조 구현의 weights (쿼리 s_prev, 키 key(states), 스케일된 내적)"))
    expect_close(say(f"s returned by {name}", f"{name}이(가) 돌려준 s"), s, _expected(f"{case}/s"), rtol=1e-4, atol=1e-5,
                 what=say("the reference's cell([embed(y_prev); context], s_prev), context from the values = states", "참조 구현의 cell([embed(y_prev); context], s_prev), context는 값 = states로 계산"))
    expect_close(say(f"logits returned by {name}", f"{name}이(가) 돌려준 logits"), logits, _expected(f"{case}/logits"), rtol=1e-4, atol=1e-5,
                 what=say("the reference's out([s; context])", "참조 구현의 out([s; context])"))
