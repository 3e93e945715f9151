"""Hidden tests of lab 5 (autoregression). One per test cell; see DEVELOPERS.md.

The modules (``DecoderLayer``, the given ``Decoder``) and the hand-built scorers of beam
search (the given ``Scorer``) live in the student's sandbox: a test makes one with
``student.keep.Decoder(...)`` or ``student.keep.Scorer(...)``, loads known weights into a
module with ``handle.keep.load_state_dict(state)`` and passes the handle to the student's
functions. Expected values come from the reference, run here on the same weights and
tables, so a mistake costs the points of the cell it is in.

Every argument changes the answer somewhere: ``causal_mask`` goes past 64 steps, the layer gets
no mask, the causal one and a band, memories carry huge values on their padding and a real
all-zero frame (padding comes from the mask, never from zero frames), ``greedy_decode`` is run
with a ``memory_padding_mask``. The layer's gradients are checked in the sandbox
(``student.gradients``), as in Labs 3-4. ``causal_mask``'s type is judged where it lives: the
kept result is fed to the given ``MultiHeadAttention`` in the sandbox (numpy has no
``.bool()``). Word error rate cases include alignments where the cost model decides.
"""

import numpy as np
import torch

from autograder.hidden import StudentError, hidden_test, load_sibling, with_weights
from speechcourse.checks import CheckFailed, as_array, describe, expect_close, expect_shape, expect_true
from speechcourse.language import say

ref = load_sibling(__file__, "reference")
PAD, BOS, EOS, V = 0, 1, 2, 13


# ------------------------------------------------------------------------------- helpers



def _seeded(cls, seed, *args, eos_bias=None):
    torch.manual_seed(seed)
    module = cls(*args).eval()
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if "norm" not in name:
                parameter.mul_(1.5)
            else:   # LayerNorm gains and biases away from 1 and 0, so a missing norm shows
                parameter.add_(0.3 * torch.randn_like(parameter))
        if eos_bias is not None:
            module.out.bias[EOS] += eos_bias
    return module, {k: v.clone() for k, v in module.state_dict().items()}


def _memory(seed, T, B, d, lengths=None, zero_frame=True):
    """memory (T, B, d) float32 and its padding mask (B, T), True on padding (or None).

    Padded frames hold huge values (cross-attention scores of order 1e4 and more there: only a
    mask that gives them weight exactly 0 hides them), and frame 1 of utterance 0 is a real frame
    of zeros (padding must come from the mask, not from zero frames)."""
    rng = np.random.default_rng(seed)
    memory = torch.from_numpy(rng.standard_normal((T, B, d)).astype(np.float32))
    if zero_frame and T > 1:
        memory[1, 0] = 0.0
    if lengths is None:
        return memory, None
    pad = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]   # (B, T)
    garbage = torch.from_numpy(3e3 * rng.standard_normal((T, B, d)).astype(np.float32))
    return torch.where(pad.T[:, :, None], garbage, memory), pad


def _reference_grads(module, run, inputs, grad_output):
    """Gradients of sum(run(*inputs) * grad_output): the inputs' (a list) and, in ``.grad``, the
    parameters' of ``module``."""
    module.zero_grad(set_to_none=True)
    leaves = [tensor.clone().requires_grad_(True) for tensor in inputs]
    (run(*leaves) * grad_output).sum().backward()
    return [leaf.grad.numpy() for leaf in leaves]


def _pair(name, result):
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                say(f"{name} should return a pair, got {describe(result)}.",
                    f"{name}은(는) 쌍을 돌려주어야 하는데 {describe(result)}입니다."))
    return result


def _sequences(name, result, B):
    expect_true(isinstance(result, (list, tuple)) and len(result) == B,
                say(f"{name} should return a list of B = {B} lists of token ids, got {describe(result)}.",
                    f"{name}은(는) 토큰 id 리스트 B = {B}개의 리스트를 돌려주어야 하는데 "
                    f"{describe(result)}입니다."))
    sequences = []
    for b, seq in enumerate(result):
        array = np.asarray(seq if not isinstance(seq, (list, tuple)) else [np.asarray(t).item() for t in seq])
        expect_true(array.ndim == 1 and (array.size == 0 or array.dtype.kind in "iu"),
                    say(f"{name}[{b}] should be a list of int token ids, got {seq!r}.",
                        f"{name}[{b}]은(는) int 토큰 id의 리스트여야 하는데 {seq!r}입니다."))
        sequences.append([int(t) for t in array])
    return sequences


# --------------------------------------------------------------------------- causal_mask

def _mask_feeds_the_given_attention(student, U):
    """The mask, kept in the sandbox, fed to the given MultiHeadAttention as attn_mask, there:
    it must work as the decoder uses it (a numpy array or a list has no .bool())."""
    d, n_h = 8, 2
    torch.manual_seed(U)
    module = ref.MultiHeadAttention(d, n_h).eval()
    attention = with_weights(student, "MultiHeadAttention", {k: v.clone() for k, v in module.state_dict().items()},
                             d, n_h)
    y = torch.from_numpy(np.random.default_rng(U).standard_normal((U, 2, d)).astype(np.float32))
    mask = student.keep.causal_mask(U)
    try:
        out, _ = _pair("MultiHeadAttention.forward", attention.forward(y, y, y, None, mask))
    except StudentError as error:
        raise CheckFailed(say(f"causal_mask({U}) does not work as attn_mask of the given MultiHeadAttention "
                              f"(the decoder feeds it there): {error}. Return a ({U}, {U}) torch bool tensor "
                              f"for any U (not a numpy array, a list, or a mask built for a fixed size).",
                              f"causal_mask({U})가 주어진 MultiHeadAttention의 attn_mask로 작동하지 않습니다 "
                              f"(디코더가 거기에 넣습니다): {error}. 어떤 U에 대해서도 ({U}, {U}) torch bool "
                              f"텐서를 돌려주십시오 (numpy 배열, 리스트, 고정된 크기로 만든 마스크가 아니라).")) from None
    with torch.no_grad():
        want = module(y, y, y, attn_mask=ref.causal_mask(U))[0].numpy()
    expect_close(say(f"the given MultiHeadAttention with attn_mask = causal_mask({U})",
                     f"attn_mask = causal_mask({U})를 준, 주어진 MultiHeadAttention"), out, want,
                 rtol=1e-4, atol=1e-5, what=say("the same attention with the reference's causal mask",
                                                "참조 구현의 인과 마스크를 준 같은 어텐션"))


@hidden_test("test_causal_mask")
def _(student):
    for U in (6, 70):
        _mask_feeds_the_given_attention(student, U)
    for U in (1, 2, 3, 6, 11, 64, 65, 100, 130):              # past 64: no mask built for a fixed size
        want = ref.causal_mask(U).numpy()
        got = student.causal_mask(U)
        expect_true(hasattr(got, "dtype") and np.asarray(got).dtype.kind in "biuf",
                    say(f"causal_mask({U}) should return a (U, U) bool tensor, got {describe(got)}.",
                        f"causal_mask({U})는 (U, U) bool 텐서를 돌려주어야 하는데 {describe(got)}입니다."))
        got = expect_shape(f"causal_mask({U})", np.asarray(got).astype(np.float64), (U, U), "U, U")
        expect_true(set(np.unique(got)) <= {0.0, 1.0},
                    say(f"causal_mask({U}) should hold True/False (or 1/0), got values {np.unique(got)[:5]}.",
                        f"causal_mask({U})에는 True/False (또는 1/0)가 들어 있어야 하는데 값이 "
                        f"{np.unique(got)[:5]}입니다."))
        got = got.astype(bool)
        if not np.array_equal(got, want):
            u, t = (int(i) for i in np.argwhere(got != want)[0])
            hint = ""
            if np.array_equal(got, ~want):
                hint = say(" It is the opposite: True marks what is *forbidden*, the future t > u.",
                           " 정반대입니다: True는 *금지된* 곳, 곧 미래 t > u를 표시합니다.")
            elif np.array_equal(got, want.T):
                hint = say(" It is transposed: row u is the query, column t the position it looks at.",
                           " 전치되어 있습니다: 행 u가 쿼리이고, 열 t가 그 쿼리가 보는 위치입니다.")
            elif got[u, t] and t == u:
                hint = say(" A step may look at itself (t = u): only t > u is forbidden.",
                           " 단계는 자기 자신(t = u)을 볼 수 있습니다: t > u만 금지됩니다.")
            elif not got[u, t] and t == u + 1:
                hint = say(" Step u sees step u + 1, whose input is its own target: off by one.",
                           " 단계 u가 단계 u + 1을 봅니다. 그 입력은 단계 u 자신의 목표입니다: 하나 어긋났습니다.")
            raise CheckFailed(say(f"causal_mask({U})[{u}, {t}] is {bool(got[u, t])}, expected "
                                  f"{bool(want[u, t])} (True where step u may not look, at t > u).{hint}",
                                  f"causal_mask({U})[{u}, {t}]이(가) {bool(want[u, t])}이어야 하는데 "
                                  f"{bool(got[u, t])}입니다 (단계 u가 볼 수 없는 곳, 곧 t > u에서 True).{hint}"))


# -------------------------------------------------------------------------- DecoderLayer

LAYER_CASES = [  # (d, n_h, d_ff, U, T, B, memory lengths or None, attn_mask kind)
    (8, 2, 16, 5, 7, 3, [5, 3, 6], "causal"),                # padded, the longest shorter than T, not first
    (12, 3, 20, 1, 4, 1, None, "causal"),
    (16, 4, 24, 7, 9, 2, [2, 9], "causal"),
    (6, 1, 10, 4, 3, 4, None, "causal"),
    (8, 2, 16, 6, 5, 2, [4, 2], None),                       # no mask: every step sees every step
    (8, 2, 16, 6, 5, 3, None, "band"),                       # a mask that is not causal
]


def _attn_mask(kind, U):
    if kind == "causal":
        return ref.causal_mask(U)
    if kind == "band":                                       # True (forbidden) beyond one step either way
        u = torch.arange(U)
        return (u[:, None] - u[None, :]).abs() > 1
    return None


@hidden_test("test_decoder_layer")
def _(student):
    for seed, (d, n_h, d_ff, U, T, B, lengths, kind) in enumerate(LAYER_CASES):
        module, state = _seeded(ref.DecoderLayer, 700 + seed, d, n_h, d_ff)
        layer = with_weights(student, "DecoderLayer", state, d, n_h, d_ff)
        rng = np.random.default_rng(seed)
        y = torch.from_numpy(rng.standard_normal((U, B, d)).astype(np.float32))
        memory, pad = _memory(seed, T, B, d, lengths)
        mask = _attn_mask(kind, U)
        name = say(f"DecoderLayer.forward with (U, T, B, d, n_h) = ({U}, {T}, {B}, {d}, {n_h}), "
                   f"attn_mask {kind or 'None'}{f', memory lengths {lengths}' if lengths else ''}",
                   f"(U, T, B, d, n_h) = ({U}, {T}, {B}, {d}, {n_h}), "
                   f"attn_mask {kind or 'None'}{f', memory 길이 {lengths}' if lengths else ''}일 때 "
                   f"DecoderLayer.forward")
        got = expect_shape("DecoderLayer.forward(y, memory, attn_mask, memory_padding_mask)",
                           layer.forward(y, memory, mask, pad), (U, B, d), "U, B, d")
        with torch.no_grad():
            want = module(y, memory, mask, pad).numpy()
        expect_close(name, got, want, rtol=1e-4, atol=1e-5,
                     what=say("the reference layer with the same weights (pre-norm: y + SelfAttention("
                              "norm1(y)) with attn_mask as given, + CrossAttention(norm2(y), memory) with "
                              "memory_padding_mask as given, + FeedForward(norm3(y)))",
                              "같은 가중치를 준 참조 층 (pre-norm: y + SelfAttention(norm1(y)) (attn_mask는 "
                              "주어진 대로), + CrossAttention(norm2(y), memory) (memory_padding_mask는 주어진 "
                              "대로), + FeedForward(norm3(y)))"))
        if seed in (0, 4):           # gradients reach y, the memory and every parameter, as in the reference
            memory = memory if pad is None else memory.masked_fill(pad.T[:, :, None], 0.0)  # finite gradients
            G = torch.from_numpy(rng.standard_normal((U, B, d)).astype(np.float32))
            call = layer.gradients(wrt=(0, 1), grad_output=G).forward(y, memory, mask, pad)
            expect_true(call.differentiable,
                        say(f"{name}: the value is right, but no gradient can flow back through it: {call.reason}. "
                            f"Training calls backward() through every layer, so build it from torch operations.",
                            f"{name}: 값은 맞지만 이것을 거쳐 기울기가 거슬러 흐를 수 없습니다: {call.reason}. "
                            f"학습은 모든 층을 거쳐 backward()를 호출하므로, torch 연산으로 만드십시오."))
            want_y, want_memory = _reference_grads(module, lambda y_, m_: module(y_, m_, mask, pad), [y, memory], G)
            for key, what, expected in (("0", "y", want_y), ("1", "memory", want_memory)):
                got = call.grads.get(key)
                expect_true(got is not None,
                            say(f"{name}: no gradient reaches {what}; is it detached (.detach(), torch.no_grad()) on "
                                f"the way? The encoder learns through the memory.",
                                f"{name}: {what}에 기울기가 닿지 않습니다. 가는 길에 떼어 냈습니까(.detach(), "
                                f"torch.no_grad())? 인코더는 memory를 거쳐 학습합니다."))
                expect_close(say(f"{name}: the gradient with respect to {what}", f"{name}: {what}에 대한 기울기"),
                             got, expected, rtol=1e-3, atol=1e-5,
                             what=say("the reference's gradient", "참조 구현의 기울기"))
            for pname, parameter in module.named_parameters():
                got = call.params.get(pname, "missing")
                expect_true(not (isinstance(got, str) and got == "missing"),
                            say(f"{name}: the layer has no parameter {pname!r}; keep the layers __init__ creates.",
                                f"{name}: 층에 매개변수 {pname!r}이(가) 없습니다. __init__이 만드는 층을 그대로 "
                                f"두십시오."))
                expect_true(got is not None,
                            say(f"{name}: no gradient reaches the parameter {pname!r}, so training would never "
                                f"change it. Is something detached on the way from it to the output?",
                                f"{name}: 매개변수 {pname!r}에 기울기가 닿지 않으므로 학습이 이 매개변수를 결코 "
                                f"바꾸지 못합니다. 매개변수에서 출력까지 가는 길에 떼어 낸 것(detach)이 있습니까?"))
                expect_close(say(f"{name}: the gradient of {pname}", f"{name}: {pname}의 기울기"), got,
                             parameter.grad.numpy(), rtol=1e-3,
                             atol=1e-5, what=say("the reference's gradient", "참조 구현의 기울기"))


# ------------------------------------------------------------------ decoder_step, greedy

DECODER_CASES = [(16, 4, 24, 2), (12, 2, 16, 1)]    # (d, n_h, d_ff, n_layers)


def _decoder(student, seed, d, n_h, d_ff, n_layers, eos_bias=None):
    module, state = _seeded(ref.Decoder, seed, V, d, n_h, d_ff, n_layers, eos_bias=eos_bias)
    return module, with_weights(student, "Decoder", state, V, d, n_h, d_ff, n_layers)


@hidden_test("test_decoder_step_cache")
def _(student):
    """Teacher-forced one step at a time with the cache: the logits of the full forward pass."""
    for seed, (d, n_h, d_ff, n_layers) in enumerate(DECODER_CASES):
        module, decoder = _decoder(student, 800 + seed, d, n_h, d_ff, n_layers)
        for U, T, B, lengths in [(6, 5, 3, [3, 4, 2]), (4, 3, 1, None)]:
            rng = np.random.default_rng(seed + U)
            y_in = torch.from_numpy(rng.integers(3, V, size=(U, B)))
            y_in[0] = BOS
            memory, pad = _memory(seed, T, B, d, lengths)
            with torch.no_grad():
                want = module(y_in, memory, ref.causal_mask(U), pad).numpy()   # (U, B, V)
            cache = None
            for u in range(U):
                logits, cache = _pair("decoder_step(decoder, y_prev, memory, cache, pad)",
                                      student.decoder_step(decoder, y_in[u], memory, cache, pad))
                logits = expect_shape(say("logits returned by decoder_step", "decoder_step이 돌려준 logits"),
                                      logits, (B, V), "B, V")
                expect_true(isinstance(cache, (list, tuple)) and len(cache) == n_layers,
                            say(f"the cache returned by decoder_step should be a list of n_layers = "
                                f"{n_layers} (k, v) pairs, got {describe(cache)}.",
                                f"decoder_step이 돌려준 cache는 (k, v) 쌍 n_layers = {n_layers}개의 리스트여야 "
                                f"하는데 {describe(cache)}입니다."))
                pairs = []
                for i, pair in enumerate(cache):
                    k, v = _pair(f"cache[{i}]", pair)
                    for name, tensor in (("k", k), ("v", v)):
                        expect_shape(say(f"cache[{i}] {name} after step u = {u}", f"단계 u = {u} 뒤의 cache[{i}] {name}"),
                                     tensor, (B, n_h, u + 1, d // n_h), "B, n_h, u + 1, d_head")
                    pairs.append((torch.as_tensor(k), torch.as_tensor(v)))   # handed back as tensors
                cache = pairs
                expect_close(say(f"decoder_step's logits at step u = {u} (U = {U}, B = {B}, "
                                 f"{n_layers} layer{'s' * (n_layers > 1)}), fed y_in[0 .. {u}] one at a time",
                                 f"y_in[0 .. {u}]을(를) 하나씩 받은, 단계 u = {u}에서 decoder_step의 logits "
                                 f"(U = {U}, B = {B}, 층 {n_layers}개)"),
                             logits, want[u], rtol=1e-4, atol=1e-4,
                             what=say(f"the logits of Decoder.forward(y_in, ...) at position {u}, "
                                      f"computed with a causal mask and no cache",
                                      f"인과 마스크를 쓰고 cache 없이 계산한, 위치 {u}에서 "
                                      f"Decoder.forward(y_in, ...)의 logits"))


def _greedy_problem(seed, d, n_h, d_ff, n_layers, B, max_len, eos_bias, T=6, padded=False):
    """A reference decoder, and memories whose greedy outputs end at many steps (or never);
    with ``padded``, memories of 1 .. T - 1 real frames, huge values on their padding, and
    their padding mask (else None)."""
    module, state = _seeded(ref.Decoder, seed, V, d, n_h, d_ff, n_layers, eos_bias=eos_bias)
    lengths = np.random.default_rng(seed).integers(1, T, size=300) if padded else None
    memory, pad = _memory(seed, T, 300, d, None if lengths is None else lengths.tolist())
    outputs = np.array([len(s) for s in ref.greedy_decode(module, memory, max_len, pad)])
    chosen = []
    for target in ([max_len] + list(range(max_len))) * B:   # each output length once, then again
        hits = [i for i in np.flatnonzero(outputs == target) if i not in chosen]
        if hits:
            chosen.append(hits[0])
        if len(chosen) == B:
            break
    assert len(set(outputs[chosen])) >= 3 and max_len in outputs[chosen], "outputs too alike"
    if padded:
        unmasked = ref.greedy_decode(module, memory[:, chosen], max_len)
        masked = ref.greedy_decode(module, memory[:, chosen], max_len, pad[chosen])
        assert unmasked != masked, "the padding does not change the outputs"
    return module, state, memory[:, chosen], None if pad is None else pad[chosen]


def _uncached_greedy(module, memory, max_len, pad=None):
    """Greedy decoding by recomputing every prefix, one utterance at a time."""
    outputs = []
    for b in range(memory.shape[1]):
        y, out = [BOS], []
        with torch.no_grad():
            for _ in range(max_len):
                U = len(y)
                logits = module(torch.tensor(y)[:, None], memory[:, b:b + 1], ref.causal_mask(U),
                                None if pad is None else pad[b:b + 1])
                z = int(logits[-1, 0].argmax())
                if z == EOS:
                    break
                out.append(z)
                y.append(z)
        outputs.append(out)
    return outputs


@hidden_test("test_greedy_decode")
def _(student):
    for seed, (d, n_h, d_ff, n_layers, padded) in enumerate([case + (False,) for case in DECODER_CASES]
                                                           + [DECODER_CASES[0] + (True,)]):
        max_len = 5 + 2 * (seed % 2)
        module, state, memory, pad = _greedy_problem(900 + seed, d, n_h, d_ff, n_layers, 7, max_len,
                                                     eos_bias=(0.0, 2.0, 1.0)[seed], padded=padded)
        decoder = with_weights(student, "Decoder", state, V, d, n_h, d_ff, n_layers)
        want = _uncached_greedy(module, memory, max_len, pad)
        call = f"greedy_decode(decoder, memory, {max_len}{', memory_padding_mask' if padded else ''})"
        got = _sequences(call, student.greedy_decode(decoder, memory, max_len, pad), memory.shape[1])
        for b in range(memory.shape[1]):
            alone = _sequences("greedy_decode", student.greedy_decode(
                decoder, memory[:, b:b + 1], max_len, None if pad is None else pad[b:b + 1]), 1)[0]
            for what, seq in ((say("alone (B = 1)", "따로 (B = 1)"), alone),
                              (say(f"in a batch of {memory.shape[1]}", f"배치 {memory.shape[1]}개 안에서"), got[b])):
                if seq != want[b]:
                    more = ""
                    if EOS in seq:
                        more = say(" It contains </s> (= 2): stop there, and leave </s> out.",
                                   " 결과에 </s> (= 2)가 들어 있습니다: 거기서 멈추고, </s>는 빼십시오.")
                    elif len(seq) > len(want[b]):
                        more = say(" It goes on after the step that predicted </s>.",
                                   " </s>를 예측한 단계 뒤에도 계속됩니다.")
                    elif padded:
                        more = say(f" The memory of utterance {b} has {int((~pad[b]).sum())} real frames, then "
                                   f"padding with huge values: pass memory_padding_mask on to every step.",
                                   f" 발화 {b}의 memory에는 실제 프레임 {int((~pad[b]).sum())}개 뒤에 아주 큰 값의 "
                                   f"패딩이 있습니다: memory_padding_mask를 모든 단계에 넘기십시오.")
                    raise CheckFailed(say(
                        f"{call} on utterance {b} {what} returned {seq}, "
                        f"expected {want[b]}: greedy decoding that recomputes the whole prefix at "
                        f"every step, with the same weights, stopping at the first </s> or after "
                        f"max_len tokens.{more}",
                        f"발화 {b}에 대해 {what} {call}이(가) {want[b]}을(를) 돌려주어야 하는데 {seq}을(를) "
                        f"돌려주었습니다 (기대값은 같은 가중치로 단계마다 접두사 전체를 다시 계산하고, 첫 </s>에서 "
                        f"또는 토큰 max_len개 뒤에 멈추는 탐욕적 디코딩의 결과).{more}"))


# ---------------------------------------------------------------------------- beam_search

def _hypotheses(name, result):
    expect_true(isinstance(result, (list, tuple)) and len(result) > 0,
                say(f"{name} should return a non-empty list of (tokens, score) pairs, got {describe(result)}.",
                    f"{name}은(는) (tokens, score) 쌍의 비어 있지 않은 리스트를 돌려주어야 하는데 "
                    f"{describe(result)}입니다."))
    hypotheses = []
    for i, item in enumerate(result):
        tokens, score = _pair(f"{name}[{i}]", item)
        tokens = _sequences(f"{name}[{i}] tokens", [tokens], 1)[0]
        score = as_array(say(f"the score of {name}[{i}]", f"{name}[{i}]의 점수"), score)
        expect_true(score.size == 1, say(f"the score of {name}[{i}] should be one number, got shape {score.shape}.",
                                         f"{name}[{i}]의 점수는 수 하나여야 하는데 모양이 {score.shape}입니다."))
        hypotheses.append((tokens, float(score.reshape(()))))
    return hypotheses


def _expect_beam(student, scorer_args, beam, max_len, length_penalty, label):
    scorer = ref.Scorer(*scorer_args)
    want = ref.beam_search(scorer, beam, max_len, length_penalty)
    handle = student.keep.Scorer(*scorer_args)
    name = f"beam_search(scorer, beam={beam}, max_len={max_len}, length_penalty={length_penalty})"
    got = _hypotheses(name, student.beam_search(handle, beam, max_len, length_penalty))
    scores = dict((tuple(t), s) for t, s in want)
    if sorted(tuple(t) for t, _ in got) != sorted(scores):
        extra = [t for t, _ in got if tuple(t) not in scores]
        missing = [list(t) for t in scores if t not in {tuple(g) for g, _ in got}]
        hint = ""
        if any(EOS in t for t, _ in got):
            hint = say(" Some hypotheses contain </s> (= 2): a finished hypothesis leaves the beam, without its </s>.",
                       " 어떤 가설에 </s> (= 2)가 들어 있습니다: 끝난 가설은 </s>를 뺀 채로 빔을 떠납니다.")
        raise CheckFailed(say(f"{name} on {label} returned {len(got)} hypotheses, expected {len(want)}. "
                              f"Unexpected: {extra[:3]}; missing: {missing[:3]}. Keep the {beam} best "
                              f"extensions by total log-probability at each step; those ending in </s> are "
                              f"finished and are not extended again.{hint}",
                              f"{label}에서 {name}이(가) 가설을 {len(want)}개 돌려주어야 하는데 {len(got)}개를 "
                              f"돌려주었습니다. 뜻밖의 가설: {extra[:3]}; 빠진 가설: {missing[:3]}. 단계마다 전체 "
                              f"로그 확률로 가장 좋은 확장 {beam}개를 남기십시오. </s>로 끝나는 확장은 끝난 것이므로 "
                              f"다시 확장하지 않습니다.{hint}"))
    for tokens, score in got:
        expect_close(say(f"the score of hypothesis {tokens} ({label})", f"가설 {tokens}의 점수 ({label})"), score,
                     scores[tuple(tokens)],
                     rtol=1e-5, atol=1e-6,
                     what=say(f"its total log-probability / n ** {length_penalty} (n: steps taken, </s> included)",
                              f"그 가설의 전체 로그 확률 / n ** {length_penalty} (n: 거친 단계 수, </s> 포함)"))
    best_first = [s for _, s in got]
    expect_true(all(a >= b - 1e-6 for a, b in zip(best_first, best_first[1:])),
                say(f"{name} on {label}: the hypotheses are not sorted by score, best first: {best_first[:6]}.",
                    f"{label}에서 {name}: 가설이 점수순(가장 좋은 것 먼저)으로 정렬되어 있지 않습니다: "
                    f"{best_first[:6]}."))
    return got, want


RANDOM_SCORERS = [  # (V, seed, sharpness), beam, max_len
    ((5, 1, 1.5), 3, 5), ((6, 2, 2.5), 4, 6), ((4, 3, 1.0), 2, 7), ((7, 4, 2.0), 8, 4), ((5, 5, 0.5), 3, 3),
]


@hidden_test("test_beam_search_scores")
def _(student):
    """Random scorers: </s> inside the beam at many steps, hypotheses of different lengths,
    some still live when max_len is reached."""
    for scorer_args, beam, max_len in RANDOM_SCORERS:
        _expect_beam(student, scorer_args, beam, max_len, 0.0,
                     say(f"a random scorer with V = {scorer_args[0]}", f"V = {scorer_args[0]}인 무작위 scorer"))


@hidden_test("test_beam_search_length_penalty")
def _(student):
    for (scorer_args, beam, max_len), penalty in zip(RANDOM_SCORERS, (1.0, 0.6, 1.0, 0.5, 2.0)):
        _expect_beam(student, scorer_args, beam, max_len, penalty,
                     say(f"a random scorer with V = {scorer_args[0]}", f"V = {scorer_args[0]}인 무작위 scorer"))


def _wide_table(rank, V=6):
    """The best sequence starts with the first step's `rank`-th most likely token (0-based):
    after it come a sure "zero" (3) and a sure </s>; every other prefix gets random scores."""
    first = np.log(np.array([0.0001, 0.0002, 0.0003] + [0.9 - 0.15 * i for i in range(V - 3)]))
    sure = lambda z: [9.0 if t == z else -9.0 - 0.1 * t for t in range(V)]   # noqa: E731  (no ties)
    z = 3 + rank
    return {"": first.tolist(), str(z): sure(3), f"{z} 3": sure(EOS)}


@hidden_test("test_beam_search_wide")
def _(student):
    """A scorer whose best sequence greedy misses, and narrow beams too: only a wide one finds it."""
    for rank, V in ((1, 5), (3, 7)):
        table = _wide_table(rank, V)
        best = [3 + rank, 3]
        label = say(f"a hand-built scorer whose best sequence {best} starts with the first step's choice number {rank + 1}",
                    f"가장 좋은 열 {best}이(가) 첫 단계의 {rank + 1}번째 후보로 시작하는, 손으로 만든 scorer")
        for beam in (1, rank, rank + 1, rank + 3):
            if beam < 1:
                continue
            got, want = _expect_beam(student, (V, 10 + rank, 1.0, table), beam, 4, 0.0, label)
            if beam > rank:
                expect_true(got[0][0] == best, say(f"beam_search with beam = {beam} on {label} returned "
                                                   f"{got[0][0]} first, expected {best}.",
                                                   f"{label}에서 beam = {beam}인 beam_search가 맨 앞에 {best}을(를) "
                                                   f"돌려주어야 하는데 {got[0][0]}을(를) 돌려주었습니다."))
        greedy = ref.beam_search(ref.Scorer(V, 10 + rank, 1.0, table), 1, 4)
        expect_true(greedy[0][0] != best, say("the test's scorer is not hard for greedy",
                                                "이 테스트의 scorer는 탐욕적 탐색(greedy)에게 어렵지 않습니다"))


# ------------------------------------------------------------------------ word_error_rate

WORDS = ["zero", "one", "two", "three", "four"]


def _strings(seed, n):
    rng = np.random.default_rng(seed)
    references, hypotheses = [], []
    for _ in range(n):
        r = list(rng.choice(WORDS, size=rng.integers(0, 7)))
        h = list(r)
        for _ in range(rng.integers(0, 4)):               # a few random edits of the reference
            kind = rng.integers(0, 3)
            if kind == 0 and h:
                h[rng.integers(0, len(h))] = str(rng.choice(WORDS))
            elif kind == 1 and h:
                del h[rng.integers(0, len(h))]
            else:
                h.insert(rng.integers(0, len(h) + 1), str(rng.choice(WORDS)))
        if rng.random() < 0.1:
            h = []
        references.append(" ".join(r))
        hypotheses.append(" ".join(h))
    if sum(len(r.split()) for r in references) == 0:
        references[0] = "one two"
    return references, hypotheses


WER_CASES = [(["one two three"], ["one two three"]), (["one two three"], ["one three"]),
             (["one"], ["one one one"]), (["two three", ""], ["", "four"]),
             (["zero one", "two"], ["one zero", "two two"]),
             # the cost model decides: keeping a matching word costs more deletions and insertions
             # than substituting (a substitution is one error, not a deletion plus an insertion)
             (["one two three four"], ["zero zero zero one"]), (["one two three"], ["four zero one"]),
             (["one two three four zero"], ["three four zero one two"]),
             (["one two three four zero", "two"], ["three four zero one two", "two"])]


def _wer_result(student, references, hypotheses):
    name = "word_error_rate(references, hypotheses)"
    result = student.word_error_rate(list(references), list(hypotheses))
    keys = {"wer", "substitutions", "deletions", "insertions", "reference_words"}
    expect_true(isinstance(result, dict) and keys <= set(result),
                say(f"{name} should return a dict with keys {sorted(keys)}, got {describe(result)}"
                    f"{' with keys ' + str(sorted(result)) if isinstance(result, dict) else ''}.",
                    f"{name}은(는) 키가 {sorted(keys)}인 dict를 돌려주어야 하는데 "
                    f"{'키가 ' + str(sorted(result)) + '인 ' if isinstance(result, dict) else ''}"
                    f"{describe(result)}입니다."))
    return {key: float(as_array(f"{name}[{key!r}]", result[key]).reshape(())) for key in keys}


@hidden_test("test_word_error_rate")
def _(student):
    cases = WER_CASES + [_strings(seed, n) for seed, n in enumerate((1, 3, 8, 20, 40))]
    for references, hypotheses in cases:
        want = ref.word_error_rate(references, hypotheses)
        got = _wer_result(student, references, hypotheses)
        shown = f"references {list(references)[:3]}{' ...' if len(references) > 3 else ''}, " \
                f"hypotheses {list(hypotheses)[:3]}{' ...' if len(hypotheses) > 3 else ''}"
        expect_close(say(f"word_error_rate(...)['reference_words'] for {shown}",
                         f"{shown}에 대한 word_error_rate(...)['reference_words']"), got["reference_words"],
                     want["reference_words"], what=say("the number of reference words", "참조 단어의 수"))
        errors = want["substitutions"] + want["deletions"] + want["insertions"]
        expect_close(say(f"word_error_rate(...)['wer'] for {shown}", f"{shown}에 대한 word_error_rate(...)['wer']"),
                     got["wer"], want["wer"], rtol=1e-9,
                     atol=1e-9, what=say(f"(S + D + I) / N = {errors} / {want['reference_words']}, the "
                                         f"Levenshtein distance over the number of *reference* words",
                                         f"(S + D + I) / N = {errors} / {want['reference_words']}, 곧 레벤슈타인 "
                                         f"거리를 *참조* 단어의 수로 나눈 값"))


def _substitution_range(reference, hypothesis):
    """(fewest, most) substitutions over all alignments with the fewest errors."""
    r, h = reference.split(), hypothesis.split()
    best = {}
    for i in range(len(r) + 1):
        for j in range(len(h) + 1):
            if i == 0 or j == 0:
                best[i, j] = (i + j, 0, 0)
                continue
            options = []
            e, lo, hi = best[i - 1, j - 1]
            miss = int(r[i - 1] != h[j - 1])
            options.append((e + miss, lo + miss, hi + miss))
            for e, lo, hi in (best[i - 1, j], best[i, j - 1]):
                options.append((e + 1, lo, hi))
            e = min(o[0] for o in options)
            best[i, j] = (e, min(o[1] for o in options if o[0] == e), max(o[2] for o in options if o[0] == e))
    return best[len(r), len(h)][1:]


@hidden_test("test_word_error_rate_counts")
def _(student):
    """S, D and I of a minimal alignment (where several exist, any of them)."""
    cases = WER_CASES + [_strings(100 + seed, n) for seed, n in enumerate((2, 6, 15, 30))]
    for references, hypotheses in cases:
        got = _wer_result(student, references, hypotheses)
        want = ref.word_error_rate(references, hypotheses)
        S, D, I = got["substitutions"], got["deletions"], got["insertions"]
        errors = want["substitutions"] + want["deletions"] + want["insertions"]
        shown = f"references {list(references)[:3]}, hypotheses {list(hypotheses)[:3]}"
        expect_true(S + D + I == errors,
                    say(f"for {shown}: S + D + I = {S:g} + {D:g} + {I:g} = {S + D + I:g}, but the "
                        f"Levenshtein distance is {errors}.",
                        f"{shown}에 대해: S + D + I = {S:g} + {D:g} + {I:g} = {S + D + I:g}이지만 "
                        f"레벤슈타인 거리는 {errors}입니다."))
        extra = sum(len(h.split()) for h in hypotheses) - want["reference_words"]
        expect_true(I - D == extra,
                    say(f"for {shown}: insertions - deletions = {I - D:g}, but the hypotheses have {extra} "
                        f"more words than the references (each insertion adds one, each deletion removes one).",
                        f"{shown}에 대해: 삽입 - 삭제 = {I - D:g}이지만 가설의 단어가 참조보다 {extra}개 "
                        f"많습니다 (삽입은 하나씩 더하고, 삭제는 하나씩 뺍니다)."))
        ranges = [_substitution_range(r, h) for r, h in zip(references, hypotheses)]
        low, high = sum(lo for lo, _ in ranges), sum(hi for _, hi in ranges)
        expect_true(low <= S <= high,
                    say(f"for {shown}: {S:g} substitutions, but every alignment with the fewest errors "
                        f"has between {low} and {high}.",
                        f"{shown}에 대해: 대체가 {S:g}개이지만, 오류가 가장 적은 정렬은 모두 대체가 {low}개에서 "
                        f"{high}개 사이입니다."))
