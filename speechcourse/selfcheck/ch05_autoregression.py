"""Visible self-checks of lab 5 (autoregression).

They run in your notebook and explain in words what is wrong. They check properties that
any correct answer has (the future cannot change the past, the cache changes nothing,
greedy's output is what teacher forcing on it predicts) and small cases worked out by hand.
Passing them is a good sign, not a guarantee: the grader tests more cases.
"""
from __future__ import annotations

import numpy as np
import torch

from speechcourse.checks import CheckFailed, as_array, describe, expect_close, expect_shape, expect_true
from speechcourse.language import say

PAD, BOS, EOS, V = 0, 1, 2, 13

# worked out by hand: True where step u (row) may not look at position t (column)
MASK_4 = np.array([[0, 1, 1, 1],
                   [0, 0, 1, 1],
                   [0, 0, 0, 1],
                   [0, 0, 0, 0]], dtype=bool)


def _passed(what: str, ko: str | None = None) -> None:
    print(say(f"✓ {what} passed", f"✓ {what if ko is None else ko} 통과"))


def _pair(name, result):
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                say(f"{name} should return a pair: `return a, b`.",
                    f"{name}은(는) 쌍을 돌려주어야 합니다: `return a, b`."))
    return result


# ---------------------------------------------------------------------------- causal_mask

def check_causal_mask(causal_mask) -> None:
    got = causal_mask(4)
    expect_true(isinstance(got, torch.Tensor), say(f"causal_mask(4) should return a torch tensor, got {describe(got)}.",
                                                   f"causal_mask(4)는 torch 텐서를 돌려주어야 하는데 {describe(got)}입니다."))
    got = expect_shape("causal_mask(4)", got.to(torch.float64), (4, 4), "U, U").astype(bool)
    if np.array_equal(got, ~MASK_4):
        raise CheckFailed(say("causal_mask marks what is allowed; mark what is forbidden (True at t > u), "
                              "as PyTorch's attn_mask does.",
                              "causal_mask가 허용되는 곳을 표시합니다. PyTorch의 attn_mask처럼 금지되는 곳을 "
                              "표시하십시오 (t > u에서 True)."))
    if np.array_equal(got, MASK_4.T):
        raise CheckFailed(say("causal_mask is transposed: row u is the step that looks, column t the position "
                              "it looks at, and it may not look at t > u.",
                              "causal_mask가 전치되어 있습니다: 행 u는 바라보는 단계, 열 t는 그 단계가 바라보는 "
                              "위치이고, t > u는 볼 수 없습니다."))
    if not np.array_equal(got, MASK_4):
        raise CheckFailed(say(f"causal_mask(4) is\n{got.astype(int)}\nexpected\n{MASK_4.astype(int)}\n"
                              f"(1 where step u may not look: the positions t > u).",
                              f"causal_mask(4)가\n{got.astype(int)}\n인데, 기대값은\n{MASK_4.astype(int)}\n"
                              f"입니다 (단계 u가 볼 수 없는 곳, 곧 위치 t > u가 1)."))
    expect_true(causal_mask(1).shape == (1, 1) and not bool(causal_mask(1)[0, 0]),
                say("causal_mask(1) should be [[False]]: the only step may look at itself.",
                    "causal_mask(1)은 [[False]]여야 합니다: 하나뿐인 단계는 자기 자신을 볼 수 있습니다."))
    _passed("causal_mask")


# --------------------------------------------------------------------------- DecoderLayer

def _layer(DecoderLayer, seed, d=8, n_h=2, d_ff=16):
    torch.manual_seed(seed)
    return DecoderLayer(d, n_h, d_ff).eval()


def check_decoder_layer(DecoderLayer) -> None:
    layer = _layer(DecoderLayer, 0)
    torch.manual_seed(1)
    y, memory = torch.randn(4, 2, 8), torch.randn(5, 2, 8)           # (U, B, d), (T, B, d)
    mask = torch.from_numpy(MASK_4)
    with torch.no_grad():
        out = layer(y, memory, mask)
        expect_shape("DecoderLayer(...)(y, memory, mask)", out, (4, 2, 8), "U, B, d")
        changed = y.clone()
        changed[2:] += 5.0                                          # change steps 2 and 3 only
        out2 = layer(changed, memory, mask)
        expect_close(say("the outputs at steps 0 and 1 after changing the inputs at steps 2 and 3",
                         "단계 2와 3의 입력을 바꾼 뒤 단계 0과 1의 출력"),
                     out2[:2], out[:2].numpy(), rtol=1e-4, atol=1e-5,
                     what=say("the outputs before the change (the mask hides the future: pass attn_mask "
                              "to the self-attention)",
                              "바꾸기 전의 출력 (마스크가 미래를 가립니다: 자기 어텐션에 attn_mask를 "
                              "넘기십시오)"))
        expect_true(float((out2[2:] - out[2:]).abs().max()) > 1e-3,
                    say("changing the inputs at steps 2 and 3 does not change their outputs.",
                        "단계 2와 3의 입력을 바꿔도 그 단계들의 출력이 바뀌지 않습니다."))
        other = memory.clone()
        other[1:] = torch.randn(4, 2, 8)
        expect_true(float((layer(y, other, mask) - out).abs().max()) > 1e-3,
                    say("the output does not depend on memory: the cross-attention must read it.",
                        "출력이 memory에 따라 달라지지 않습니다: 교차 어텐션이 memory를 읽어야 합니다."))
        pad = torch.tensor([[False] * 5, [False, False, True, True, True]])   # utterance 1: 2 frames
        padded = memory.clone()
        padded[2:, 1] = 100.0                                      # junk where utterance 1 is padding
        expect_close(say("DecoderLayer on utterance 1 with junk in its padded memory frames",
                         "memory의 패딩 프레임에 쓰레기 값을 넣은 발화 1에 대한 DecoderLayer"),
                     layer(y, padded, mask, pad)[:, 1], layer(y[:, 1:], memory[:2, 1:], mask)[:, 0].numpy(),
                     rtol=1e-4, atol=1e-5, what=say("the same utterance with its two real frames only "
                                                    "(pass memory_padding_mask to the cross-attention)",
                                                    "실제 프레임 두 개만 가진 같은 발화 "
                                                    "(교차 어텐션에 memory_padding_mask를 넘기십시오)"))
        for parameter in layer.parameters():                       # every sub-layer outputs 0 ...
            parameter.zero_()
        for norm in (layer.norm1, layer.norm2, layer.norm3):
            norm.weight.fill_(1.0)
        expect_close(say("DecoderLayer with every attention and feed-forward weight set to zero",
                         "어텐션과 피드포워드의 가중치를 모두 0으로 둔 DecoderLayer"), layer(y, memory, mask),
                     y.numpy(), rtol=1e-5, atol=1e-6,
                     what=say("y itself (each sub-layer adds to the residual stream: y = y + ...)",
                              "y 자신 (각 부분 층은 잔차 흐름에 더해집니다: y = y + ...)"))
    _passed("DecoderLayer")


# --------------------------------------------------------------------- decoder_step, greedy
# Precomputed once with a correct lab and the given Decoder (torch.manual_seed(3) for the
# weights, then torch.manual_seed(4) for the memory; </s>'s output bias raised by 1.5): the
# logits of Decoder.forward over y_in = STEP_INPUTS with the causal mask, no cache.
STEP_INPUTS = [[BOS, BOS], [5, 7], [9, 3], [4, 4]]             # (U, B) = (4, 2)
STEP_LOGITS = np.array([  # (U, B, V) = (4, 2, 13)
    [[0.3091, 0.8441, 2.6147, -0.4868, 0.6291, -0.3791, 1.2335, 0.4874, 0.0826, -0.0301, 0.1064, -0.2709, 0.9141],
     [0.2219, 0.7135, 2.5602, -0.4968, 0.4064, -0.3081, 1.2016, 0.5451, -0.0363, -0.1369, -0.0207, -0.5801, 0.8225]],
    [[0.0744, 0.8771, 2.2911, -0.5830, 1.0386, -0.7832, 0.7860, -0.3386, -0.6401, 0.4904, -0.4483, 0.3156, 1.5873],
     [-0.2090, 0.5981, 2.4778, -0.6295, 0.2474, -0.8620, 0.1368, -0.3505, -1.0124, -0.2207, -0.4959, -0.4190, 1.0573]],
    [[0.0588, 0.3512, 2.0149, -0.6056, 0.4894, -0.5252, -0.7700, -0.4730, -0.0619, 0.5220, -0.0819, 1.1255, 0.7866],
     [-0.1815, -0.3779, 1.5424, -0.6356, -0.3163, -0.2237, -1.1418, -0.6306, -0.1085, 0.9317, -0.0477, 0.4981, 0.7496]],
    [[-0.2099, 0.7083, 2.0410, -0.7147, 0.8703, 0.0613, -0.5296, -0.1419, -0.8341, 0.8568, -0.6133, -0.1167, 0.8844],
     [-0.1836, 0.6410, 1.9612, -0.6676, 0.7027, 0.0420, -0.5035, -0.2449, -0.9419, 0.6962, -0.7726, -0.1916, 0.7998]],
])
# ... and greedy_decode's outputs (weights seed 5, memory seed 6, (T, B, d) = (6, 5, 16), max_len 7)
GREEDY_OUTPUTS = [[1, 7, 7, 7, 7], [1, 1, 1, 1, 1, 1, 7], [7, 7, 7, 7], [7, 7, 7, 7, 7, 7, 7], [7, 7, 7, 7, 7]]


def _decoder(Decoder, seed, eos_bias=1.5):
    torch.manual_seed(seed)
    decoder = Decoder(V, 16, 4, 24, 2).eval()                  # d = 16, n_h = 4, d_ff = 24, 2 layers
    with torch.no_grad():
        decoder.out.bias[EOS] += eos_bias
    return decoder


def check_decoder_step(decoder_step, Decoder) -> None:
    decoder = _decoder(Decoder, 3)
    torch.manual_seed(4)
    memory = torch.randn(5, 2, 16)                              # (T, B, d)
    y_in = torch.tensor(STEP_INPUTS)
    with torch.no_grad():
        cache = None
        for u in range(4):
            logits, cache = _pair("decoder_step(decoder, y_prev, memory, cache)",
                                  decoder_step(decoder, y_in[u], memory, cache))
            expect_shape(say("logits returned by decoder_step", "decoder_step이 돌려준 logits"), logits, (2, V), "B, V")
            expect_true(isinstance(cache, (list, tuple)) and len(cache) == 2,
                        say(f"the cache should be a list of one (k, v) pair per layer (2 here), got {describe(cache)}.",
                            f"cache는 층마다 (k, v) 쌍 하나씩을 담은 리스트여야 하는데 (여기서는 2개) "
                            f"{describe(cache)}입니다."))
            k, v = _pair("cache[0]", cache[0])
            expect_shape(say(f"the cached keys of layer 0 after step u = {u}", f"단계 u = {u} 뒤 층 0에 캐시된 키"),
                         k, (2, 4, u + 1, 4), "B, n_h, u + 1, d_head")
            expect_close(say(f"decoder_step's logits at step u = {u}", f"단계 u = {u}에서 decoder_step의 logits"),
                         logits, STEP_LOGITS[u], rtol=1e-3, atol=2e-3,
                         what=say(f"the logits of the whole prefix recomputed without a cache (precomputed), "
                                  f"position {u}: check the position u = length of the cache, and that each step's "
                                  f"keys and values are appended once",
                                  f"캐시 없이 접두부 전체를 다시 계산한 logits (미리 계산한 값)의 위치 {u}: "
                                  f"위치 u = 캐시의 길이인지, 각 단계의 키와 값이 한 번씩만 덧붙여지는지 "
                                  f"확인하십시오"))
    _passed("decoder_step")


def check_greedy_decode(greedy_decode, Decoder) -> None:
    decoder = _decoder(Decoder, 5)
    torch.manual_seed(6)
    memory = torch.randn(6, 5, 16)
    outputs = greedy_decode(decoder, memory, 7)
    expect_true(isinstance(outputs, list) and len(outputs) == 5 and all(isinstance(o, list) for o in outputs),
                say(f"greedy_decode should return a list of B = 5 lists of ints, got {describe(outputs)}.",
                    f"greedy_decode는 int 리스트 B = 5개의 리스트를 돌려주어야 하는데 {describe(outputs)}입니다."))
    for b, (tokens, want) in enumerate(zip(outputs, GREEDY_OUTPUTS)):
        expect_true(EOS not in tokens, say(f"greedy_decode's output {b} contains </s> (= 2): leave it out.",
                                           f"greedy_decode의 출력 {b}에 </s> (= 2)가 들어 있습니다: 빼십시오."))
        expect_true(len(tokens) <= 7, say(f"greedy_decode's output {b} has {len(tokens)} tokens, more than max_len = 7.",
                                          f"greedy_decode의 출력 {b}에 토큰이 {len(tokens)}개 있어 max_len = 7보다 "
                                          f"많습니다."))
        if [int(t) for t in tokens] != want:
            raise CheckFailed(say(f"greedy_decode's output {b} is {tokens}, expected {want} (precomputed: the argmax "
                                  f"at each step, fed back, stopping at the first </s> or after max_len = 7).",
                                  f"greedy_decode의 출력 {b}가 {tokens}인데, 기대값은 {want}입니다 (미리 계산한 값: "
                                  f"각 단계의 argmax를 다시 입력으로 넣고, 처음 나온 </s>에서 또는 max_len = 7 "
                                  f"뒤에 멈춤)."))
    _passed("greedy_decode")


# ---------------------------------------------------------------------------- beam_search

def _table_scorer(Scorer, probabilities):
    return Scorer(len(next(iter(probabilities.values()))), seed=0, sharpness=1.0,
                  table={k: np.log(np.maximum(p, 1e-9)).tolist() for k, p in probabilities.items()})


# Worked by hand. Tokens: <pad> <s> </s> a(3) b(4).
# "" -> a 0.55, b 0.4494;  "a" -> </s> 0.4, a 0.3, b 0.3;  "b" -> </s> 0.9, a 0.05, b 0.05.
# Greedy takes a, then </s>: 0.55 * 0.4 = 0.22. Beam 2 also keeps b, and b </s> = 0.45 * 0.9 = 0.405.
GREEDY_MISSES = {"": [1e-4, 2e-4, 3e-4, 0.55, 0.4494], "3": [1e-4, 2e-4, 0.4, 0.3, 0.2997],
                 "4": [1e-4, 2e-4, 0.9, 0.05, 0.0497]}     # tiny differences: no ties anywhere
# "" -> </s> 0.5, a 0.4;  "a" -> </s> 0.9.  [] has probability 0.5 (1 step), [a] 0.36 (2 steps).
SHORT_OR_LONG = {"": [0.04, 0.06, 0.5, 0.4], "3": [0.0004, 0.0006, 0.9, 0.099],
                 "3 3": [0.0004, 0.0006, 0.999, 0.0]}


def _run_beam(beam_search, scorer, beam, max_len, length_penalty):
    result = beam_search(scorer, beam, max_len, length_penalty)
    expect_true(isinstance(result, list) and result and all(isinstance(r, (tuple, list)) and len(r) == 2
                                                            for r in result),
                say(f"beam_search should return a list of (tokens, score) pairs, got {describe(result)}.",
                    f"beam_search는 (tokens, score) 쌍의 리스트를 돌려주어야 하는데 {describe(result)}입니다."))
    tokens = [[int(z) for z in t] for t, _ in result]
    expect_true(not any(EOS in t for t in tokens),
                say(f"beam_search returned {tokens}: leave </s> (= 2) out of a finished hypothesis.",
                    f"beam_search가 {tokens}을(를) 돌려주었습니다: 끝난 가설에서 </s> (= 2)는 빼십시오."))
    return tokens, [float(as_array("score", s)) for _, s in result]


def check_beam_search_scores(beam_search, Scorer) -> None:
    scorer = _table_scorer(Scorer, GREEDY_MISSES)
    tokens, scores = _run_beam(beam_search, scorer, 2, 3, 0.0)
    expect_true(tokens == [[4], [3]],
                say(f"beam_search(scorer, beam=2, max_len=3) returned {tokens}; expected [[4], [3]]: step 1 keeps "
                    f"a and b, step 2's two best extensions are b </s> (0.405) and a </s> (0.22), both finished, "
                    f"so the beam is empty and the search stops.",
                    f"beam_search(scorer, beam=2, max_len=3)가 {tokens}을(를) 돌려주었는데, 기대값은 [[4], [3]]입니다: "
                    f"단계 1은 a와 b를 남기고, 단계 2의 가장 좋은 두 확장은 b </s> (0.405)와 a </s> (0.22)로 둘 다 "
                    f"끝났으므로 빔이 비고 탐색이 멈춥니다."))
    expect_close(say("their scores", "그 점수"), np.array(scores), np.log([0.4494 * 0.9, 0.55 * 0.4]), rtol=1e-4,
                 what=say("log(0.4494 * 0.9) and log(0.55 * 0.4) (sums of log-probabilities, not probabilities)",
                          "log(0.4494 * 0.9)와 log(0.55 * 0.4) (확률이 아니라 로그 확률의 합)"))
    _passed("beam_search scores", "beam_search 점수")


def check_beam_search_length_penalty(beam_search, Scorer) -> None:
    scorer = _table_scorer(Scorer, SHORT_OR_LONG)
    tokens, _ = _run_beam(beam_search, scorer, 2, 3, 0.0)
    expect_true(tokens[0] == [], say(f"with length_penalty = 0, [] (log 0.5) beats [3] (log 0.36); got {tokens}.",
                                     f"length_penalty = 0이면 [] (log 0.5)가 [3] (log 0.36)을 이깁니다. 받은 값: "
                                     f"{tokens}."))
    tokens, scores = _run_beam(beam_search, scorer, 2, 3, 1.0)
    expect_true(tokens[0] == [3],
                say(f"with length_penalty = 1, [3] scores log(0.36) / 2 = -0.511 (two steps: a, </s>) and [] "
                    f"scores log(0.5) / 1 = -0.693, so [3] comes first; got {tokens}.",
                    f"length_penalty = 1이면 [3]의 점수는 log(0.36) / 2 = -0.511 (두 단계: a, </s>), []의 점수는 "
                    f"log(0.5) / 1 = -0.693이므로 [3]이 먼저 와야 합니다. 받은 값: {tokens}."))
    expect_close(say("the score of [3] with length_penalty = 1", "length_penalty = 1일 때 [3]의 점수"),
                 np.array(scores[0]), np.log(0.4 * 0.9) / 2, rtol=1e-3, what="log(0.4 * 0.9) / 2")
    _passed("beam_search length penalty", "beam_search 길이 벌점")


def check_beam_search_wide(beam_search, Scorer) -> None:
    scorer = _table_scorer(Scorer, GREEDY_MISSES)
    greedy, _ = _run_beam(beam_search, scorer, 1, 3, 0.0)
    expect_true(greedy[0] == [3], say(f"beam_search with beam = 1 should be greedy: a (0.55), then </s> (0.4), "
                                      f"so [3] first; got {greedy}.",
                                      f"beam = 1인 beam_search는 탐욕 디코딩이어야 합니다: a (0.55), 다음에 </s> "
                                      f"(0.4)이므로 [3]이 먼저입니다. 받은 값: {greedy}."))
    wide, _ = _run_beam(beam_search, scorer, 3, 3, 0.0)
    expect_true(wide[0] == [4], say(f"beam_search with beam = 3 should find [4] (0.405) first; got {wide}.",
                                    f"beam = 3인 beam_search는 [4] (0.405)를 맨 먼저 찾아야 합니다. 받은 값: {wide}."))
    _passed("beam_search beam widths", "beam_search 빔 너비")


# ------------------------------------------------------------------------ word_error_rate

WER_HAND = [  # references, hypotheses, (S, D, I, N), worked by hand
    (["one two three"], ["one two three"], (0, 0, 0, 3)),
    (["one two three"], ["one three"], (0, 1, 0, 3)),
    (["one two three"], ["one two two three"], (0, 0, 1, 3)),
    (["one two three"], ["one four three"], (1, 0, 0, 3)),
    (["one two", "three"], ["", "three three"], (0, 2, 1, 3)),
    (["four"], ["five six seven"], (1, 0, 2, 1)),
]


def _wer(word_error_rate, references, hypotheses):
    result = word_error_rate(references, hypotheses)
    keys = {"wer", "substitutions", "deletions", "insertions", "reference_words"}
    expect_true(isinstance(result, dict) and keys <= set(result),
                say(f"word_error_rate should return a dict with keys {sorted(keys)}, got {describe(result)}.",
                    f"word_error_rate는 키가 {sorted(keys)}인 dict를 돌려주어야 하는데 {describe(result)}입니다."))
    return result


def check_word_error_rate(word_error_rate) -> None:
    for references, hypotheses, (S, D, I, N) in WER_HAND:
        result = _wer(word_error_rate, references, hypotheses)
        if not np.isclose(float(result["wer"]), (S + D + I) / N):
            raise CheckFailed(say(f"word_error_rate({references}, {hypotheses})['wer'] is {result['wer']}, expected "
                                  f"(S + D + I) / N = {S + D + I} / {N} (worked by hand): errors over the number of "
                                  f"*reference* words.",
                                  f"word_error_rate({references}, {hypotheses})['wer']가 {result['wer']}인데, 기대값은 "
                                  f"(S + D + I) / N = {S + D + I} / {N}입니다 (손으로 계산한 값): 오류 수를 *정답* "
                                  f"단어의 수로 나눕니다."))
    _passed("word_error_rate")


def check_word_error_rate_counts(word_error_rate) -> None:
    for references, hypotheses, (S, D, I, N) in WER_HAND:
        result = _wer(word_error_rate, references, hypotheses)
        got = tuple(int(result[k]) for k in ("substitutions", "deletions", "insertions"))
        if got != (S, D, I):
            raise CheckFailed(say(f"word_error_rate({references}, {hypotheses}) counted (S, D, I) = {got}, expected "
                                  f"{(S, D, I)} (worked by hand).",
                                  f"word_error_rate({references}, {hypotheses})가 센 (S, D, I) = {got}인데, 기대값은 "
                                  f"{(S, D, I)}입니다 (손으로 계산한 값)."))
    _passed("word_error_rate counts", "word_error_rate 개수")
