"""Visible self-checks of lab 2 (seq2seq).

They run in your notebook and explain in words what is wrong. They use small cases worked
out by hand, PyTorch's own ``F.cross_entropy(..., ignore_index=...)`` and ``nn.GRU`` run
on one unpadded utterance at a time as independent references, and your own ``step`` where
a part is built on it. Passing them is a good sign, not a guarantee: the grader tests more
cases.
"""
from __future__ import annotations

import numpy as np
import torch

from speechcourse.checks import CheckFailed, as_array, expect_close, expect_shape, expect_true

PAD, BOS, EOS, V = 0, 1, 2, 13


def _passed(what: str) -> None:
    print(f"✓ {what} passed")


def _pair(name, result):
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                f"{name} should return a pair: `return a, b`.")
    return result


def _seeded(cls, seed, *args):
    torch.manual_seed(seed)
    return cls(*args)


# ---------------------------------------------------------------------- masked_cross_entropy

def check_masked_cross_entropy(masked_cross_entropy) -> None:
    # by hand: logits 0 everywhere, so -log p = log V for every real token, whatever the mask
    logits = torch.zeros(3, 2, V)
    targets = torch.tensor([[4, 5], [6, PAD], [PAD, PAD]])
    got = as_array("masked_cross_entropy(zeros, targets)", masked_cross_entropy(logits, targets))
    expect_true(got.size == 1, f"masked_cross_entropy should return a scalar tensor, got shape {got.shape}.")
    if np.isclose(got.item(), np.log(V) * 3 / 6, rtol=1e-4):
        raise CheckFailed("masked_cross_entropy averages over all U * B positions, padding included: "
                          "divide by the number of real (non-PAD) tokens instead.")
    expect_close("masked_cross_entropy with all-zero logits", got.reshape(()), np.log(V), rtol=1e-4,
                 what="log(13), the cross-entropy of a uniform guess")
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.standard_normal((5, 4, V)).astype(np.float32)).requires_grad_()
    targets = torch.from_numpy(rng.integers(3, V, size=(5, 4)))
    targets[3:, 0], targets[1:, 2] = PAD, PAD
    loss = masked_cross_entropy(logits, targets)
    expect_true(isinstance(loss, torch.Tensor) and loss.requires_grad,
                "masked_cross_entropy must return a torch tensor that autograd can differentiate "
                "(no .item(), no numpy inside).")
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=PAD)
    expect_close("masked_cross_entropy on a random padded batch", loss.detach().reshape(()), want.item(),
                 rtol=1e-4, atol=1e-6, what="F.cross_entropy(..., ignore_index=PAD)")
    loss.backward()
    expect_true(float(logits.grad[3:, 0].abs().sum()) == 0.0,
                "the gradient of masked_cross_entropy reaches logits at padded positions.")
    _passed("masked_cross_entropy")


# ----------------------------------------------------------------------------- shift_targets

def _shift(shift_targets):
    # two utterances: "three one four" (ids 6 4 7) and "nine" (12)
    labels = torch.tensor([[6, 12], [4, PAD], [7, PAD]])      # (N, B) = (3, 2)
    lengths = torch.tensor([3, 1])
    y_in, y_out = _pair("shift_targets(labels, lengths)", shift_targets(labels, lengths))
    y_in = expect_shape("y_in returned by shift_targets", y_in, (4, 2), "N + 1, B")
    y_out = expect_shape("y_out returned by shift_targets", y_out, (4, 2), "N + 1, B")
    return y_in.astype(int), y_out.astype(int)


def check_shift_targets_inputs(shift_targets) -> None:
    y_in, _ = _shift(shift_targets)
    want = np.array([[BOS, BOS], [6, 12], [4, PAD], [7, PAD]])
    if np.array_equal(y_in[:3], want[1:]):
        raise CheckFailed("y_in holds the digits themselves: the decoder's input at step 0 is <s> "
                          "(= 1), and at step u the digit before the one it must predict.")
    if not np.array_equal(y_in, want):
        raise CheckFailed(f"y_in for 'three one four' (6 4 7) and 'nine' (12) should be "
                          f"{want.T.tolist()} (one list per utterance), got {y_in.T.tolist()}.")
    _passed("shift_targets inputs")


def check_shift_targets_outputs(shift_targets) -> None:
    _, y_out = _shift(shift_targets)
    want = np.array([[6, 12], [4, EOS], [7, PAD], [EOS, PAD]])
    if y_out[3, 1] == EOS and y_out[1, 1] != EOS:
        raise CheckFailed("y_out puts </s> at the end of the padded array for 'nine': it goes right "
                          "after each utterance's own last digit, at index lengths[b].")
    if not np.array_equal(y_out, want):
        raise CheckFailed(f"y_out for 'three one four' (6 4 7) and 'nine' (12) should be "
                          f"{want.T.tolist()} (one list per utterance), got {y_out.T.tolist()}.")
    _passed("shift_targets outputs")


# ----------------------------------------------------------------------------------- Encoder

def _encoder_case(Encoder, seed=0, F=5, H=4):
    encoder = _seeded(Encoder, seed, F, H)
    expect_true(isinstance(getattr(encoder, "rnn", None), torch.nn.GRU),
                "Encoder must keep self.rnn = nn.GRU(n_in, hidden) from the given __init__.")
    rng = np.random.default_rng(seed)
    lengths = [4, 7, 2]
    x = torch.zeros(9, 3, F)                                   # (T, B, F): padded past the longest
    for b, n in enumerate(lengths):
        x[:n, b] = torch.from_numpy(rng.standard_normal((n, F)).astype(np.float32))
    with torch.no_grad():
        states, context = _pair("Encoder.forward(x, lengths)", encoder(x, torch.tensor(lengths)))
        # independent reference: the same GRU on each utterance alone, without padding
        alone = [encoder.rnn(x[:n, b:b + 1])[0][:, 0] for b, n in enumerate(lengths)]
    states = expect_shape("states returned by Encoder.forward", states, (9, 3, H), "T, B, H")
    context = expect_shape("context returned by Encoder.forward", context, (3, H), "B, H")
    return lengths, states, context, [a.numpy() for a in alone]


def check_encoder_context(Encoder) -> None:
    lengths, states, context, alone = _encoder_case(Encoder)
    for b, n in enumerate(lengths):
        if not np.allclose(context[b], alone[b][-1], atol=1e-5) and n < 9:
            raise CheckFailed(
                f"the context of utterance {b} ({n} real frames, padded to 9) is not the GRU's "
                f"state after its frame {n - 1}: the context must ignore padding (use "
                f"pack_padded_sequence, or take the state at lengths[b] - 1).")
    expect_close("context", context, np.stack([a[-1] for a in alone]), atol=1e-5,
                 what="the GRU's last state on each utterance run alone")
    _passed("Encoder context")


def check_encoder_states(Encoder) -> None:
    lengths, states, _, alone = _encoder_case(Encoder, seed=1)
    for b, n in enumerate(lengths):
        expect_close(f"states[:{n}, {b}]", states[:n, b], alone[b], atol=1e-5,
                     what="the GRU's states on utterance b run alone")
        if np.any(states[n:, b] != 0):
            raise CheckFailed(f"states[{n}:, {b}] (padding after utterance {b}) should be zero, "
                              "so that nothing later can mistake padding for speech.")
    _passed("Encoder states")


# ----------------------------------------------------------------------------------- Decoder

def _decoder(Decoder, seed=0, emb=3, H=4):
    decoder = _seeded(Decoder, seed, V, emb, H)
    for name, kind in [("embed", torch.nn.Embedding), ("cell", torch.nn.GRUCell), ("out", torch.nn.Linear)]:
        expect_true(isinstance(getattr(decoder, name, None), kind),
                    f"Decoder must keep self.{name} from the given __init__.")
    return decoder


def check_decoder_step(Decoder) -> None:
    decoder = _decoder(Decoder)
    rng = np.random.default_rng(2)
    y_prev = torch.tensor([BOS, 5, 9])
    s_prev = torch.from_numpy(rng.standard_normal((3, 4)).astype(np.float32))
    context = torch.from_numpy(rng.standard_normal((3, 4)).astype(np.float32))
    with torch.no_grad():
        logits, s = _pair("Decoder.step(y_prev, s_prev, context)", decoder.step(y_prev, s_prev, context))
        want_s = decoder.cell(torch.cat([decoder.embed(y_prev), context], -1), s_prev)
        want_logits = decoder.out(want_s)
    logits = expect_shape("logits returned by Decoder.step", logits, (3, V), "B, V")
    s = expect_shape("s returned by Decoder.step", s, (3, 4), "B, H")
    expect_close("s returned by Decoder.step", s, want_s, atol=1e-5,
                 what="self.cell(torch.cat([self.embed(y_prev), context], -1), s_prev)")
    expect_close("logits returned by Decoder.step", logits, want_logits, atol=1e-5, what="self.out(s)")
    _passed("Decoder.step")


def check_decoder_forward(Decoder) -> None:
    decoder = _decoder(Decoder, seed=3)
    rng = np.random.default_rng(3)
    y_in = torch.tensor([[BOS, BOS], [5, 7], [6, 3], [9, PAD]])        # (U, B) = (4, 2)
    context = torch.from_numpy(rng.standard_normal((2, 4)).astype(np.float32))
    with torch.no_grad():
        got = expect_shape("Decoder.forward(context, y_in)", decoder(context, y_in), (4, 2, V), "U, B, V")
        s, want = context, []
        for u in range(4):
            logits, s = decoder.step(y_in[u], s, context)
            want.append(logits.numpy())
        reset = [decoder.step(y_in[u], context, context)[0].numpy() for u in range(4)]
    if not np.allclose(got, np.stack(want), atol=1e-5) and np.allclose(got, np.stack(reset), atol=1e-5):
        raise CheckFailed("Decoder.forward starts every step from the context: carry the state s "
                          "returned by one step into the next (only s_0 is the context).")
    expect_close("Decoder.forward(context, y_in)", got, np.stack(want), atol=1e-5,
                 what="your step run over y_in, starting from s = context")
    _passed("Decoder.forward")


# ----------------------------------------------------------------------------- greedy_decode

def _greedy_case(Decoder, seed, B):
    """A decoder (emb 3, H 6) with large weights, and B contexts whose outputs (by your own
    step, greedily) end at as many different steps as the decoder allows."""
    decoder = _seeded(Decoder, seed, V, 3, 6)
    with torch.no_grad():
        for p in decoder.parameters():
            p.mul_(2.0)
    pool = torch.from_numpy(np.random.default_rng(seed).standard_normal((80, 6)).astype(np.float32))
    lengths = [len(_own_greedy(decoder, c, 6)) for c in pool]
    order = sorted(range(len(pool)), key=lambda i: (sum(lengths[j] == lengths[i] for j in range(i)), i))
    return decoder, pool[order[:B]]


def _own_greedy(decoder, context, max_len):
    out = []
    with torch.no_grad():
        y, s = torch.tensor([BOS]), context[None]
        for _ in range(max_len):
            logits, s = decoder.step(y, s, context[None])
            y = logits.argmax(-1)
            if int(y) == EOS:
                break
            out.append(int(y))
    return out


def _as_lists(name, result, B):
    expect_true(isinstance(result, (list, tuple)) and len(result) == B,
                f"{name} should return a list of B = {B} lists of ints.")
    return [[int(t) for t in seq] for seq in result]


def check_greedy_decode_eos(greedy_decode, Decoder) -> None:
    decoder, contexts = _greedy_case(Decoder, 11, 12)
    for b in range(12):
        want = _own_greedy(decoder, contexts[b], 6)
        got = _as_lists("greedy_decode(decoder, context, 6)", greedy_decode(decoder, contexts[b:b + 1], 6), 1)[0]
        if got != want:
            hint = ""
            if EOS in got:
                hint = " It contains </s> (= 2): stop at the first </s>, and leave it out."
            elif got and all(t == got[0] for t in got) and len(got) > len(want):
                hint = " Feed back the token predicted at each step (not <s> again)."
            raise CheckFailed(f"greedy_decode on one utterance returned {got}, expected {want} (your "
                              f"step from <s> and s_0 = context, fed its own argmax, stopped at "
                              f"</s>).{hint}")
    _passed("greedy_decode stops at </s>")


def check_greedy_decode_batch(greedy_decode, Decoder) -> None:
    """A batch must decode each utterance exactly as your greedy_decode does it alone."""
    decoder, contexts = _greedy_case(Decoder, 17, 10)
    alone = [_as_lists("greedy_decode(decoder, context, 6)", greedy_decode(decoder, contexts[b:b + 1], 6), 1)[0]
             for b in range(10)]
    got = _as_lists("greedy_decode(decoder, context, 6)", greedy_decode(decoder, contexts, 6), 10)
    if got != alone:
        raise CheckFailed(f"greedy_decode on a batch of 10 gave output lengths {[len(s) for s in got]}, "
                          f"but each utterance alone gives {[len(s) for s in alone]}: each utterance "
                          f"stops at its own </s>, and the batch goes on until all have stopped.")
    _passed("greedy_decode on a batch")
