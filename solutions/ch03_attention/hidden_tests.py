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
                f"{name}: the value is right, but no gradient can flow back to its inputs: {call.reason}. "
                f"Training calls backward() through this, so build it from torch operations on the "
                f"tensors you are given (no .detach(), .item(), .numpy()).")
    for key, expected in want.items():
        got = call.grads.get(key)
        expect_true(got is not None, f"{name}: no gradient reaches {names[key]}; is something detached on "
                                     f"the way from it to the result?")
        expect_close(f"{name}: the gradient with respect to {names[key]}", got, expected, rtol=1e-3,
                     atol=1e-5, what="the reference's gradient")


# ----------------------------------------------------------------------------- scores

@hidden_test("test_dot_scores")
def _(student):
    for seed, (T, B, H, _) in enumerate(SHAPES):
        rng = np.random.default_rng(seed)
        dtype = np.float64 if seed == 2 else np.float32
        query, keys = _tensor(rng, (B, H), dtype=dtype), _tensor(rng, (T, B, H), dtype=dtype)
        got = _scores(f"dot_scores(query, keys) with (T, B, H) = ({T}, {B}, {H})",
                      student.dot_scores(query, keys), T, B)
        expect_close(f"dot_scores(query, keys) with (T, B, H) = ({T}, {B}, {H})", got,
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
        name = f"dot_scores(query, keys, scaled=True) with (T, B, H) = ({T}, {B}, {H})"
        got = _scores(name, student.dot_scores(query, keys, scaled=True), T, B)
        expect_close(name, got, ref.dot_scores(query, keys, scaled=True).numpy(), **TOL,
                     what=f"query[b] . keys[t, b] / sqrt(H), sqrt({H}) = {math.sqrt(H):.3g}")


@hidden_test("test_general_scores")
def _(student):
    for seed, (T, B, H, H2) in enumerate(UNEQUAL):
        rng = np.random.default_rng(20 + seed)
        query, keys, W = _tensor(rng, (B, H)), _tensor(rng, (T, B, H2)), _tensor(rng, (H, H2))
        name = f"general_scores(query, keys, W) with (T, B, H, H') = ({T}, {B}, {H}, {H2})"
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
        name = f"additive_scores(query, keys, W_q, W_k, v) with (T, B, H, H', A) = ({T}, {B}, {H}, {H2}, {A})"
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
        raise CheckFailed(f"{name} contains {got[~np.isfinite(got)][0]}: the weights must be finite "
                          f"numbers (exp of a large score overflows unless the maximum is subtracted first).")
    return got


def _padding_exactly_zero(name, got, mask):
    padded = ~mask.numpy()
    if np.any(got[padded] != 0):
        t, b = (int(i) for i in np.argwhere((got != 0) & padded)[0])
        raise CheckFailed(f"{name}: weight[{t}, {b}] = {got[t, b]:.3g} on a padded frame (column {b} "
                          f"has {int(mask[:, b].sum())} real frames). Padded frames must get weight "
                          f"exactly 0: set their scores to -inf before the softmax.")


def _sums_to_one(name, got, mask):
    sums = got.sum(axis=0)
    if np.any(np.abs(sums - 1) > 1e-5):
        b = int(np.argmax(np.abs(sums - 1)))
        raise CheckFailed(f"{name}: the weights of column {b} sum to {sums[b]:.6g}, not 1. The softmax "
                          f"runs over the frames (axis 0) of each column, over its real frames only.")


@hidden_test("test_masked_softmax")
def _(student):
    for seed, (T, B, _, _) in enumerate(SHAPES + [(4, 6, 1, 1), (9, 2, 1, 1)]):
        rng = np.random.default_rng(40 + seed)
        scores, lengths = _tensor(rng, (T, B), scale=3.0), _lengths(rng, T, B)
        mask = _mask(lengths, T)
        name = f"masked_softmax(scores, mask) with (T, B) = ({T}, {B}) and lengths {lengths.tolist()}"
        got = _softmax(student, scores, mask, name)
        _padding_exactly_zero(name, got, mask)
        _sums_to_one(name, got, mask)
        expect_close(name, got, ref.masked_softmax(scores, mask).numpy(), **TOL,
                     what="the softmax over each column's real frames")
        if seed in (0, 4):
            G = _tensor(rng, (T, B))
            call = student.gradients(wrt=(0,), grad_output=G).masked_softmax(scores, mask)
            _expect_gradients(name, call, _reference_grads(ref.masked_softmax, (scores, mask), G, (0,)),
                              {"0": "scores"})
        for b in np.flatnonzero(lengths == 1):
            expect_true(got[0, b] == 1.0, f"{name}: column {b} has one real frame, so its weight must be "
                                          f"exactly 1, got {got[0, b]:.6g}.")
        # padding invariance: more padded frames, with any scores (1e4 included), change nothing
        for extra_scale in (10.0, 1e4):
            extra = torch.cat([scores, _tensor(rng, (3, B), scale=extra_scale).abs()])
            longer = _softmax(student, extra, _mask(lengths, T + 3), name + " padded with 3 more frames")
            expect_close(f"masked_softmax with 3 more padded frames (scores of order {extra_scale:g}), frames :{T}",
                         longer[:T], got, **TOL,
                         what="the weights without the extra padding (padding must not change them: fill "
                              "its scores with -inf, a large negative number added to 1e4 can still win)")


    # a mask that is not a prefix (the frames of a batch in another order): the real frames are
    # where the mask says, not the first mask.sum() of each column
    rng = np.random.default_rng(49)
    T, B = 7, 3
    scores, mask = _tensor(rng, (T, B), scale=3.0), _mask([5, 2, 4], T)
    order = torch.from_numpy(rng.permutation(T))
    scores, mask = scores[order], mask[order]
    name = f"masked_softmax(scores, mask) with a mask that is not a prefix of each column: {mask.T.int().tolist()}"
    got = _softmax(student, scores, mask, name)
    _padding_exactly_zero(name, got, mask)
    expect_close(name, got, ref.masked_softmax(scores, mask).numpy(), **TOL,
                 what="the softmax over the frames where mask is True")


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
    name = "masked_softmax(scores, mask) with scores of +-1e4"
    got = _softmax(student, scores, mask, name)
    _padding_exactly_zero(name, got, mask)
    _sums_to_one(name, got, mask)
    expect_close(name, got, ref.masked_softmax(scores, mask).numpy(), **TOL,
                 what="the softmax over each column's real frames")


# ----------------------------------------------------------------------------- attend

def _attend(student, scores, values, mask, name):
    T, B, D = values.shape
    result = student.attend(scores.clone(), values.clone(), mask.clone())
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                f"{name} should return a pair (weights, context), got {describe(result)}.")
    weights = expect_shape(f"weights returned by {name}", result[0], (T, B), "T, B")
    context = expect_shape(f"context returned by {name}", result[1], (B, D), "B, D")
    return weights, context


def _check_attend(student, scores, values, mask, name):
    """weights: the reference's softmax over the real frames; context: the weighted sum of the
    values with those weights (the reference's context)."""
    weights, context = _attend(student, scores, values, mask, name)
    want_weights, want_context = (t.numpy() for t in ref.attend(scores, values, mask))
    expect_close(f"weights returned by {name}", weights, want_weights, **TOL,
                 what="masked_softmax(scores, mask): the softmax over each column's real frames, "
                      "exactly 0 on padding")
    expect_close(f"context returned by {name}", context, want_context, **TOL,
                 what="sum over t of weights[t, b] * values[t, b]")
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
        name = f"attend(scores, values, mask) with (T, B, D) = ({T}, {B}, {D})"
        _, context = _check_attend(student, scores, values, mask, name)
        if seed == 0:                     # gradients to the scores and the values
            G = (_tensor(rng, (T, B)), _tensor(rng, (B, D)))
            call = student.gradients(wrt=(0, 1), grad_output=G).attend(scores, values, mask)
            _expect_gradients(name, call, _reference_grads(ref.attend, (scores, values, mask), G, (0, 1)),
                              {"0": "scores", "1": "values"})
        sdpa = torch.nn.functional.scaled_dot_product_attention(                # PyTorch's own attention
            query[:, None, :], keys.transpose(0, 1), values.transpose(0, 1),
            attn_mask=mask.T[:, None, :])[:, 0]                                 # (B, D)
        expect_close(f"context returned by {name}", context, sdpa.numpy(), **TOL,
                     what="torch.nn.functional.scaled_dot_product_attention on the same query, "
                          "keys, values and mask")
    # scores of +-1e4, +1e4 on padding: a mask added as -1e4 lets the padding win
    rng = np.random.default_rng(69)
    T, B, D = 6, 4, 3
    lengths = np.array([4, 6, 1, 3])
    scores, values = _huge_scores(rng, T, B, lengths), _tensor(rng, (T, B, D))
    _check_attend(student, scores, values, _mask(lengths, T),
                  f"attend(scores, values, mask) with scores of +-1e4 (+1e4 on padding), lengths {lengths.tolist()}")


@hidden_test("test_attend_invariances")
def _(student):
    """Permuting the frames together with their values and mask leaves the context unchanged;
    padded frames, whatever their scores (+1e4 included) and values, change nothing; weights sum to 1."""
    for seed, (T, B, _, D) in enumerate(UNEQUAL[:1] + [(9, 4, 1, 3), (6, 1, 1, 2)]):
        rng = np.random.default_rng(70 + seed)
        scores, values = _tensor(rng, (T, B), scale=2.0), _tensor(rng, (T, B, D))
        lengths = _lengths(rng, T, B)
        mask = _mask(lengths, T)
        name = f"attend(scores, values, mask) with (T, B, D) = ({T}, {B}, {D})"
        weights, context = _check_attend(student, scores, values, mask, name)
        order = torch.from_numpy(rng.permutation(T))
        _, shuffled = _attend(student, scores[order], values[order], mask[order], name + ", frames permuted")
        expect_close(f"the context when the frames, their values and the mask are permuted together "
                     f"(T = {T}, B = {B})", shuffled, context, **TOL,
                     what="the context before (a weighted sum does not depend on the order of the frames)")
        _sums_to_one(f"weights returned by {name}", weights, mask)
        for extra_scale in (10.0, 1e4):
            more_scores = torch.cat([scores, _tensor(rng, (2, B), scale=extra_scale).abs()])
            more_values = torch.cat([values, _tensor(rng, (2, B, D), scale=10.0)])
            more_mask = _mask(lengths, T + 2)
            _, padded = _attend(student, more_scores, more_values, more_mask, name + " padded with 2 more frames")
            expect_close(f"the context with 2 more padded frames (scores of order {extra_scale:g}, large values) "
                         f"after the T = {T} frames", padded, context, **TOL,
                         what="the context without them (padding must not change it)")


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
            return "attend (or the masked_softmax it uses)"
    except (StudentError, CheckFailed, ValueError):
        return "dot_scores or attend"
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
            name = f"AttentionDecoder.step(y_prev, s_prev, states, lengths) with (T, B, H, E) = ({T}, {B}, {H}, {E})"
            expect_true(isinstance(result, (tuple, list)) and len(result) == 3,
                        f"{name} should return (logits, s, weights), got {describe(result)}.")
            logits = expect_shape(f"logits returned by {name}", result[0], (B, V), "B, V")
            s = expect_shape(f"s returned by {name}", result[1], (B, H), "B, H")
            weights = expect_shape(f"weights returned by {name}", result[2], (T, B), "T, B")
            with torch.no_grad():
                want = [t.numpy() for t in module.step(y_prev, s_prev, states, lengths)]
            try:
                expect_close(f"weights returned by {name}", weights, want[2], **TOL,
                             what="the attention of query s_prev on keys key(states), scaled dot "
                                  "product, masked softmax over each utterance's real frames")
                expect_close(f"s returned by {name}", s, want[1], **TOL,
                             what="cell([embed(y_prev); context], s_prev), context = the weighted sum "
                                  "of the values (the encoder states)")
                expect_close(f"logits returned by {name}", logits, want[0], **TOL,
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
                                    f"{name}: no gradient reaches the parameter {pname!r}, so training would "
                                    f"never change it. Is something detached on the way to the output?")
                        if parameter.grad is not None:
                            expect_close(f"{name}: the gradient of {pname}", got, parameter.grad.numpy(),
                                         rtol=1e-3, atol=1e-5, what="the reference's gradient")
            except CheckFailed as error:
                broken = _first_broken_part(student)
                if broken:
                    raise CheckFailed(f"{error} Your step calls {broken}, which is wrong: fix it first "
                                      f"(its own test cell says how).") from None
                raise
