"""Visible self-checks of lab 2 (seq2seq).

They run in your notebook and explain in words what is wrong. They use small cases worked
out by hand, PyTorch's ``F.cross_entropy(..., ignore_index=...)`` (the definition of the
masked loss), properties any correct answer has, and expected values precomputed by the
course's reference implementation: the checks load known weights (stored in
``ch02_seq2seq.npz`` next to this file) into your modules and compare what they return.
That is why your ``Encoder`` and ``Decoder`` must keep the layers ``__init__`` creates.
Passing the checks is a good sign, not a guarantee: the grader tests more cases.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speechcourse.checks import CheckFailed, describe, expect_close, expect_shape, expect_true
from speechcourse.language import say
from speechcourse.selfcheck import self_check

PAD, BOS, EOS, V = 0, 1, 2, 13
DATA = Path(__file__).with_suffix(".npz")

# The problems the checks pose; their answers are in DATA.
ENCODER_CASES = {"encoder0": (0, 5, 4, (4, 7, 2)), "encoder1": (1, 5, 4, (4, 7, 2))}  # seed, F, H, lengths
DECODER_CASES = {"decoder": (3, 3, 4)}                                              # seed, emb, H
GREEDY_CASES = {"greedy_eos": (11, 12), "greedy_batch": (17, 10)}                    # seed, B


def _expected(key: str) -> np.ndarray:
    with np.load(DATA) as data:
        return data[key]


def _state(prefix: str) -> dict:
    with np.load(DATA) as data:
        start = f"{prefix}/w/"
        return {key[len(start):]: torch.from_numpy(data[key]) for key in data.files if key.startswith(start)}


def encoder_inputs(seed, F, lengths, T=9):
    """x (T, B, F) float32, zero-padded past each utterance's length; lengths (B,) long."""
    rng = np.random.default_rng(seed)
    x = torch.zeros(T, len(lengths), F)                        # (T, B, F)
    for b, n in enumerate(lengths):
        x[:n, b] = torch.from_numpy(rng.standard_normal((n, F)).astype(np.float32))
    return x, torch.tensor(lengths)


def decoder_inputs(seed, H):
    """(y_prev (3,), s_prev (3, H), context (3, H)) for a step; y_in (4, 3) for teacher forcing."""
    rng = np.random.default_rng(seed)
    y_prev = torch.tensor([BOS, 5, 9])
    s_prev = torch.from_numpy(rng.standard_normal((3, H)).astype(np.float32))
    context = torch.from_numpy(rng.standard_normal((3, H)).astype(np.float32))
    y_in = torch.tensor([[BOS, BOS, BOS], [5, 7, 12], [6, 3, PAD], [9, PAD, PAD]])  # (U, B)
    return y_prev, s_prev, context, y_in


def greedy_pool(seed):
    """(80, 6) candidate contexts; the greedy checks use the ones stored in DATA."""
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((80, 6)).astype(np.float32))


def tensor_values(name: str, value, shape=None, dims=None) -> np.ndarray:
    """A returned torch tensor as a float64 array (checked for shape), or a failure in words."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(say(f"{name}: expected a torch tensor, got {describe(value)}.",
                              f"{name}: torch 텐서여야 하는데 {describe(value)}입니다."))
    array = value.detach().cpu().double().numpy()
    return array if shape is None else expect_shape(name, array, shape, dims)


def _pair(name, result):
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                say(f"{name} should return a pair (`return a, b`), got {describe(result)}.",
                    f"{name}은(는) 쌍을 돌려주어야 하는데 (`return a, b`) {describe(result)}입니다."))
    return result


def _load(module, part: str, state: dict, cls: str) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError) as error:
        raise CheckFailed(say(
            f"could not load known weights into your {cls}{part} ({str(error).splitlines()[0]}). "
            f"Keep the layers that __init__ creates, with their names and sizes.",
            f"여러분의 {cls}{part}에 알려진 가중치를 불러올 수 없었습니다 ({str(error).splitlines()[0]}). "
            f"__init__이 만드는 층을 그 이름과 크기 그대로 두십시오.")) from None


# ---------------------------------------------------------------------- masked_cross_entropy

@self_check("masked_cross_entropy")
def check_masked_cross_entropy(masked_cross_entropy) -> None:
    # by hand: logits 0 everywhere, so -log p = log V for every real token, whatever the mask
    logits = torch.zeros(3, 2, V)
    targets = torch.tensor([[4, 5], [6, PAD], [PAD, PAD]])
    got = tensor_values("masked_cross_entropy(zeros, targets)", masked_cross_entropy(logits, targets))
    expect_true(got.size == 1, say(f"masked_cross_entropy should return a scalar tensor, got shape {got.shape}.",
                                   f"masked_cross_entropy는 스칼라 텐서를 돌려주어야 하는데 모양이 {got.shape}입니다."))
    if np.isclose(got.item(), np.log(V) * 3 / 6, rtol=1e-4):
        raise CheckFailed(say("masked_cross_entropy averages over all U * B positions, padding included: "
                              "divide by the number of real (non-PAD) tokens instead.",
                              "masked_cross_entropy가 패딩을 포함한 U * B개 위치 전체에 대해 평균을 냅니다: "
                              "대신 실제 (PAD가 아닌) 토큰의 수로 나누십시오."))
    expect_close(say("masked_cross_entropy with all-zero logits", "logits가 모두 0일 때 masked_cross_entropy"),
                 got.reshape(()), np.log(V), rtol=1e-4,
                 what=say("log(13) = 2.565, the cross-entropy of a uniform guess",
                          "log(13) = 2.565, 균등하게 추측했을 때의 교차 엔트로피"))
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.standard_normal((5, 4, V)).astype(np.float32)).requires_grad_()
    targets = torch.from_numpy(rng.integers(3, V, size=(5, 4)))
    targets[3:, 0], targets[1:, 2] = PAD, PAD
    loss = masked_cross_entropy(logits, targets)
    expect_true(isinstance(loss, torch.Tensor) and loss.requires_grad,
                say("masked_cross_entropy must return a torch tensor that autograd can differentiate "
                    "(no .item(), no numpy inside).",
                    "masked_cross_entropy는 autograd가 미분할 수 있는 torch 텐서를 돌려주어야 합니다 "
                    "(안에서 .item()이나 numpy를 쓰지 마십시오)."))
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=PAD)
    expect_close(say("masked_cross_entropy on a random padded batch", "패딩이 있는 무작위 배치에서 masked_cross_entropy"),
                 loss.detach().reshape(()), want.item(),
                 rtol=1e-4, atol=1e-6, what="F.cross_entropy(..., ignore_index=PAD)")
    loss.backward()
    expect_true(float(logits.grad[3:, 0].abs().sum()) == 0.0,
                say("the gradient of masked_cross_entropy reaches logits at padded positions.",
                    "masked_cross_entropy의 기울기가 패딩 위치의 logits에 닿습니다."))


# ----------------------------------------------------------------------------- shift_targets

def _shift(shift_targets):
    # two utterances: "three one four" (ids 6 4 7) and "nine" (12)
    labels = torch.tensor([[6, 12], [4, PAD], [7, PAD]])      # (N, B) = (3, 2)
    lengths = torch.tensor([3, 1])
    y_in, y_out = _pair("shift_targets(labels, lengths)", shift_targets(labels, lengths))
    y_in = tensor_values(say("y_in returned by shift_targets", "shift_targets가 돌려준 y_in"), y_in, (4, 2), "N + 1, B")
    y_out = tensor_values(say("y_out returned by shift_targets", "shift_targets가 돌려준 y_out"), y_out, (4, 2), "N + 1, B")
    return y_in.astype(int), y_out.astype(int)


@self_check("shift_targets inputs", "shift_targets 입력")
def check_shift_targets_inputs(shift_targets) -> None:
    y_in, _ = _shift(shift_targets)
    want = np.array([[BOS, BOS], [6, 12], [4, PAD], [7, PAD]])
    if np.array_equal(y_in[:3], want[1:]):
        raise CheckFailed(say("y_in holds the digits themselves: the decoder's input at step 0 is <s> "
                              "(= 1), and at step u the digit before the one it must predict.",
                              "y_in에 숫자 자체가 들어 있습니다: 단계 0에서 디코더의 입력은 <s> (= 1)이고, "
                              "단계 u에서는 예측해야 할 숫자의 바로 앞 숫자입니다."))
    if not np.array_equal(y_in, want):
        raise CheckFailed(say(f"y_in for 'three one four' (6 4 7) and 'nine' (12) should be "
                              f"{want.T.tolist()} (one list per utterance), got {y_in.T.tolist()}.",
                              f"'three one four' (6 4 7)와 'nine' (12)의 y_in은 {want.T.tolist()}여야 "
                              f"하는데 (발화마다 리스트 하나) {y_in.T.tolist()}입니다."))


@self_check("shift_targets outputs", "shift_targets 출력")
def check_shift_targets_outputs(shift_targets) -> None:
    _, y_out = _shift(shift_targets)
    want = np.array([[6, 12], [4, EOS], [7, PAD], [EOS, PAD]])
    if y_out[3, 1] == EOS and y_out[1, 1] != EOS:
        raise CheckFailed(say("y_out puts </s> at the end of the padded array for 'nine': it goes right "
                              "after each utterance's own last digit, at index lengths[b].",
                              "y_out이 'nine'의 </s>를 패딩된 배열의 끝에 둡니다: </s>는 각 발화의 마지막 "
                              "숫자 바로 뒤, 인덱스 lengths[b]에 옵니다."))
    if not np.array_equal(y_out, want):
        raise CheckFailed(say(f"y_out for 'three one four' (6 4 7) and 'nine' (12) should be "
                              f"{want.T.tolist()} (one list per utterance), got {y_out.T.tolist()}.",
                              f"'three one four' (6 4 7)와 'nine' (12)의 y_out은 {want.T.tolist()}여야 "
                              f"하는데 (발화마다 리스트 하나) {y_out.T.tolist()}입니다."))


# ----------------------------------------------------------------------------------- Encoder

def _encoder_case(Encoder, case):
    seed, F, H, lengths = ENCODER_CASES[case]
    encoder = Encoder(F, H)
    expect_true(isinstance(getattr(encoder, "rnn", None), torch.nn.GRU),
                say("Encoder must keep self.rnn = nn.GRU(n_in, hidden) from the given __init__.",
                    "Encoder는 주어진 __init__의 self.rnn = nn.GRU(n_in, hidden)을 그대로 두어야 합니다."))
    _load(encoder.rnn, ".rnn", _state(case), "Encoder")
    x, lens = encoder_inputs(seed, F, lengths)
    with torch.no_grad():
        states, context = _pair("Encoder.forward(x, lengths)", encoder(x, lens))
    states = tensor_values(say("states returned by Encoder.forward", "Encoder.forward가 돌려준 states"),
                           states, (9, 3, H), "T, B, H")
    context = tensor_values(say("context returned by Encoder.forward", "Encoder.forward가 돌려준 context"),
                            context, (3, H), "B, H")
    return lengths, states, context


@self_check("Encoder context", "Encoder의 context")
def check_encoder_context(Encoder) -> None:
    lengths, _, context = _encoder_case(Encoder, "encoder0")
    want, padded_end = _expected("encoder0/context"), _expected("encoder0/context_padded_end")
    for b, n in enumerate(lengths):
        if not np.allclose(context[b], want[b], atol=1e-5) and np.allclose(context[b], padded_end[b], atol=1e-5):
            raise CheckFailed(say(
                f"the context of utterance {b} ({n} real frames, padded to 9) is the GRU's state "
                f"at the end of the padding: the context must ignore padding (use "
                f"pack_padded_sequence, or take the state at lengths[b] - 1 = {n - 1}).",
                f"발화 {b} (실제 프레임 {n}개, 9개로 패딩됨)의 context가 패딩 끝에서의 GRU 상태입니다: "
                f"context는 패딩을 무시해야 합니다 (pack_padded_sequence를 쓰거나, "
                f"lengths[b] - 1 = {n - 1}에서의 상태를 취하십시오)."))
    expect_close("context", context, want, atol=1e-5,
                 what=say("the GRU's state after each utterance's last real frame",
                          "각 발화의 마지막 실제 프레임 뒤의 GRU 상태"))


@self_check("Encoder states", "Encoder의 states")
def check_encoder_states(Encoder) -> None:
    lengths, states, _ = _encoder_case(Encoder, "encoder1")
    want = _expected("encoder1/states")
    for b, n in enumerate(lengths):
        expect_close(f"states[:{n}, {b}]", states[:n, b], want[:n, b], atol=1e-5,
                     what=say(f"the GRU's states over the {n} real frames of utterance {b}",
                              f"발화 {b}의 실제 프레임 {n}개에 걸친 GRU 상태"))
        if np.any(states[n:, b] != 0):
            raise CheckFailed(say(f"states[{n}:, {b}] (padding after utterance {b}) should be zero, "
                                  "so that nothing later can mistake padding for speech.",
                                  f"states[{n}:, {b}] (발화 {b} 뒤의 패딩)은 0이어야 합니다. 그래야 뒤에서 "
                                  "아무것도 패딩을 음성으로 착각하지 않습니다."))


# ----------------------------------------------------------------------------------- Decoder

def _decoder(Decoder, case, emb, H):
    decoder = Decoder(V, emb, H)
    for name, kind in [("embed", torch.nn.Embedding), ("cell", torch.nn.GRUCell), ("out", torch.nn.Linear)]:
        expect_true(isinstance(getattr(decoder, name, None), kind),
                    say(f"Decoder must keep self.{name} from the given __init__.",
                        f"Decoder는 주어진 __init__의 self.{name}을(를) 그대로 두어야 합니다."))
    _load(decoder, "", _state(case), "Decoder")
    return decoder


@self_check("Decoder.step")
def check_decoder_step(Decoder) -> None:
    seed, emb, H = DECODER_CASES["decoder"]
    decoder = _decoder(Decoder, "decoder", emb, H)
    y_prev, s_prev, context, _ = decoder_inputs(seed, H)
    with torch.no_grad():
        logits, s = _pair("Decoder.step(y_prev, s_prev, context)", decoder.step(y_prev, s_prev, context))
    logits = tensor_values(say("logits returned by Decoder.step", "Decoder.step이 돌려준 logits"), logits, (3, V), "B, V")
    s = tensor_values(say("s returned by Decoder.step", "Decoder.step이 돌려준 s"), s, (3, H), "B, H")
    expect_close(say("s returned by Decoder.step", "Decoder.step이 돌려준 s"), s, _expected("decoder/step_s"), atol=1e-5,
                 what=say("self.cell(torch.cat([self.embed(y_prev), context], -1), s_prev), "
                          "embedding first",
                          "self.cell(torch.cat([self.embed(y_prev), context], -1), s_prev), "
                          "임베딩이 먼저"))
    expect_close(say("logits returned by Decoder.step", "Decoder.step이 돌려준 logits"), logits,
                 _expected("decoder/step_logits"),
                 atol=1e-5, what="self.out(s)")


@self_check("Decoder.forward")
def check_decoder_forward(Decoder) -> None:
    seed, emb, H = DECODER_CASES["decoder"]
    decoder = _decoder(Decoder, "decoder", emb, H)
    _, _, context, y_in = decoder_inputs(seed, H)
    want = _expected("decoder/forward_logits")
    with torch.no_grad():
        got = tensor_values("Decoder.forward(context, y_in)", decoder(context, y_in), (4, 3, V), "U, B, V")
        # property: step 0 starts from s_0 = context, so it is one step from the context
        first = tensor_values(say("logits returned by Decoder.step", "Decoder.step이 돌려준 logits"),
                              _pair("Decoder.step", decoder.step(y_in[0], context, context))[0])
        if not np.allclose(first, want[0], atol=1e-5):
            raise CheckFailed(say("Decoder.step does not give the expected logits: make check_decoder_step "
                                  "pass first.",
                                  "Decoder.step이 기대한 logits를 내지 않습니다: 먼저 check_decoder_step을 "
                                  "통과시키십시오."))
        reset = [tensor_values("Decoder.step", decoder.step(y_in[u], context, context)[0]) for u in range(4)]
    if not np.allclose(got, want, atol=1e-5) and np.allclose(got, np.stack(reset), atol=1e-5):
        raise CheckFailed(say("Decoder.forward starts every step from the context: carry the state s "
                              "returned by one step into the next (only s_0 is the context).",
                              "Decoder.forward가 모든 단계를 context에서 시작합니다: 한 단계가 돌려준 상태 s를 "
                              "다음 단계로 넘기십시오 (context는 s_0뿐입니다)."))
    if np.allclose(got[0], want[0], atol=1e-5) and not np.allclose(got, want, atol=1e-5):
        u = int(np.argmax([not np.allclose(a, b, atol=1e-5) for a, b in zip(got, want)]))
        raise CheckFailed(say(f"Decoder.forward is right at step 0 but not at step {u}: step u reads "
                              f"y_in[u] and the state s returned by step u - 1.",
                              f"Decoder.forward가 단계 0에서는 맞지만 단계 {u}에서는 틀립니다: 단계 u는 "
                              f"y_in[u]와 단계 u - 1이 돌려준 상태 s를 읽습니다."))
    expect_close("Decoder.forward(context, y_in)", got, want, atol=1e-5,
                 what=say("the expected logits (s_0 = context, then one step per row of y_in)",
                          "기대한 logits (s_0 = context, 그다음 y_in의 행마다 한 단계)"))


# ----------------------------------------------------------------------------- greedy_decode

def _greedy_case(Decoder, case):
    decoder = _decoder(Decoder, case, 3, 6)
    contexts = torch.from_numpy(_expected(f"{case}/contexts"))
    expected = [[int(t) for t in row if t >= 0] for row in _expected(f"{case}/outputs")]
    return decoder, contexts, expected


def _as_lists(name, result, B):
    expect_true(isinstance(result, (list, tuple)) and len(result) == B,
                say(f"{name} should return a list of B = {B} lists of ints, got {describe(result)}.",
                    f"{name}은(는) int 리스트 B = {B}개의 리스트를 돌려주어야 하는데 {describe(result)}입니다."))
    return [[int(t) for t in seq] for seq in result]


@self_check("greedy_decode stops at </s>", "greedy_decode가 </s>에서 멈춤")
def check_greedy_decode_eos(greedy_decode, Decoder) -> None:
    decoder, contexts, expected = _greedy_case(Decoder, "greedy_eos")
    for b, want in enumerate(expected):
        got = _as_lists("greedy_decode(decoder, context, 6)", greedy_decode(decoder, contexts[b:b + 1], 6), 1)[0]
        if got != want:
            hint = ""
            if EOS in got:
                hint = say(" It contains </s> (= 2): stop at the first </s>, and leave it out.",
                           " 출력에 </s> (= 2)가 들어 있습니다: 처음 나온 </s>에서 멈추고, </s>는 빼십시오.")
            elif got[:len(want)] == want and len(got) > len(want):
                hint = say(f" It is right up to the </s> predicted after {len(want)} tokens, then goes "
                           f"on: stop there.",
                           f" 토큰 {len(want)}개 뒤에 예측된 </s>까지는 맞지만 그 뒤로도 계속됩니다: "
                           f"거기서 멈추십시오.")
            elif got and all(t == got[0] for t in got) and len(got) > len(want):
                hint = say(" Feed back the token predicted at each step (not <s> again).",
                           " 각 단계에서 예측한 토큰을 다시 입력으로 넣으십시오 (<s>를 다시 넣지 말고).")
            raise CheckFailed(say(f"greedy_decode on one utterance returned {got}, expected {want} (from "
                                  f"<s> and s_0 = context, feeding back its own argmax, stopping at the "
                                  f"first </s>, which is left out).{hint}",
                                  f"발화 하나에서 greedy_decode가 {got}을(를) 돌려주었는데, 기대값은 {want}입니다 "
                                  f"(<s>와 s_0 = context에서 시작해 자기 argmax를 다시 입력으로 넣고, 처음 나온 "
                                  f"</s>에서 멈추며 </s>는 뺌).{hint}"))


@self_check("greedy_decode on a batch", "배치에서 greedy_decode")
def check_greedy_decode_batch(greedy_decode, Decoder) -> None:
    """A batch must decode each utterance exactly as your greedy_decode does it alone.

    (Whether one utterance alone is decoded right is check_greedy_decode_eos's question.)
    """
    decoder, contexts, expected = _greedy_case(Decoder, "greedy_batch")
    B = len(expected)
    alone = [_as_lists("greedy_decode(decoder, context, 6)", greedy_decode(decoder, contexts[b:b + 1], 6), 1)[0]
             for b in range(B)]
    got = _as_lists("greedy_decode(decoder, context, 6)", greedy_decode(decoder, contexts, 6), B)
    if got != alone:
        raise CheckFailed(say(f"greedy_decode on a batch of {B} gave output lengths {[len(s) for s in got]}, "
                              f"but each utterance alone gives {[len(s) for s in alone]}: each utterance "
                              f"stops at its own </s>, and the batch goes on until all have stopped.",
                              f"발화 {B}개의 배치에서 greedy_decode의 출력 길이는 {[len(s) for s in got]}인데, "
                              f"발화를 하나씩 따로 디코딩하면 {[len(s) for s in alone]}입니다: 각 발화는 자기 "
                              f"</s>에서 멈추고, 배치는 모두 멈출 때까지 계속됩니다."))


# ----------------------------------------------------------------------------- the book's curve

def book_curve(source: str | None = None) -> tuple[dict[int, float], str]:
    """({n digits: sequence accuracy}, a label) of the model chapter 2 trained, for your plot.

    source: None for both sources together (test_by_length as a whole), "synthetic" for the
    unseen synthetic voices, "real" for the unseen real speakers (george and lucas).
    """
    if source not in (None, "synthetic", "real"):
        raise ValueError(say(f"unknown source {source!r}; choose None, 'synthetic' or 'real'",
                             f"알 수 없는 source {source!r}입니다. None, 'synthetic', 'real' 중에서 고르십시오."))
    accuracy = _expected("book/accuracy_by_length" if source is None else f"book/{source}/accuracy_by_length")
    steps, hidden, layers = (int(_expected(f"book/{k}")) for k in ("steps", "hidden", "layers"))
    label = say(f"the book's model: bidirectional, {layers} layer{'s' * (layers > 1)} of {hidden} units, "
                f"{steps} steps",
                f"책의 모델: 양방향, {hidden}개 유닛의 층 {layers}개, {steps} 스텝")
    return {n + 1: float(a) for n, a in enumerate(accuracy)}, label
