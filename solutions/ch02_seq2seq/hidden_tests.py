"""Hidden tests of lab 2 (seq2seq). One per test cell; see DEVELOPERS.md.

Functions get tensors and return tensors. The modules (``Encoder``, ``Decoder``) live in
the student's sandbox: a test makes one with ``student.keep.Encoder(F, H)``, which hands
back a handle, loads known weights into it with ``handle.keep.load_state_dict(state)``
(strict: the parameter names given in the notebook must be kept) and calls
``handle.forward(...)`` or ``handle.step(...)``. Results come back as numpy arrays.

Where one part is built on another, it is judged on the student's own other part: the
teacher-forced ``forward`` against a loop over the student's ``step``, greedy decoding
against a greedy loop (run here) over the student's ``step``. Each of those steps is first
checked against the reference decoder on the same inputs, so a wrong ``step`` (one that
always prefers </s>, or returns NaN) cannot make a wrong ``forward`` or decoder look right:
those tests fail too, and say that ``step`` must be fixed first.

Values are not enough in a torch lab: ``backward()`` runs in the sandbox
(``student.gradients``) and the gradients that reach the inputs and every parameter are
compared with the reference's, so a loss built with ``.item()`` or a decoder that detaches
the context loses its cell. Dtypes the lab states (int64 token ids) are checked.
"""

import numpy as np
import torch

from autograder.hidden import hidden_test, load_sibling, with_weights
from speechcourse.checks import (CheckFailed, as_array, describe, expect_close, expect_dtype, expect_shape,
                                 expect_true)

ref = load_sibling(__file__, "reference")
PAD, BOS, EOS, V = 0, 1, 2, 13


# ------------------------------------------------------------ handles, here and in the sandbox




# ----------------------------------------------------------------------- problems and weights

def _state(module_cls, seed, *args, scale=1.0):
    """A reference module's state_dict with seeded random weights (uniform, like torch's init)."""
    torch.manual_seed(seed)
    module = module_cls(*args)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(scale)
    return module, {k: v.clone() for k, v in module.state_dict().items()}


def _frames(seed, lengths, F, extra=0):
    """A zero-padded batch x (T, B, F) float32 with T = max(lengths) + extra, and lengths (B,)."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, dtype=np.int64)
    x = np.zeros((lengths.max() + extra, len(lengths), F), dtype=np.float32)  # (T, B, F)
    for b, n in enumerate(lengths):
        x[:n, b] = rng.standard_normal((n, F))
    return torch.from_numpy(x), torch.from_numpy(lengths)


def _reference_gradients(module, run, inputs, grad_output):
    """Gradients of sum(run(*inputs) * grad_output) for the reference ``module``: (input grads);
    the parameters' gradients are left in ``module``'s ``.grad``."""
    module.zero_grad(set_to_none=True)
    leaves = [tensor.clone().requires_grad_(True) for tensor in inputs]
    outputs = run(*leaves)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    grad_output = grad_output if isinstance(grad_output, tuple) else (grad_output,)
    sum((out * g).sum() for out, g in zip(outputs, grad_output) if g is not None).backward()
    return [leaf.grad.numpy() for leaf in leaves]


def _random_like(seed, *shapes):
    rng = np.random.default_rng(seed)
    return tuple(torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) for shape in shapes)


def _pair(name, result):
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                f"{name} should return a pair, got {describe(result)}.")
    return result


# ---------------------------------------------------------------------- masked_cross_entropy

def _loss_case(seed, U, B, pad_fraction):
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy((2.0 * rng.standard_normal((U, B, V))).astype(np.float32))
    targets = rng.integers(3, V, size=(U, B))  # (U, B)
    lengths = rng.integers(1, U + 1, size=B) if pad_fraction else np.full(B, U)
    for b, n in enumerate(lengths):
        targets[n:, b] = PAD
    return logits, torch.from_numpy(targets)


@hidden_test("test_masked_cross_entropy")
def _(student):
    for seed, (U, B, pad) in enumerate([(4, 3, False), (6, 5, True), (1, 1, False), (9, 2, True),
                                        (7, 8, True)]):
        logits, targets = _loss_case(seed, U, B, pad)
        call = student.gradients(wrt=(0,)).masked_cross_entropy(logits.clone(), targets.clone())
        leaf = logits.clone().requires_grad_(True)
        want = torch.nn.functional.cross_entropy(leaf.reshape(-1, V), targets.reshape(-1),
                                                 ignore_index=PAD)
        want.backward()
        got = as_array("masked_cross_entropy(logits, targets)", call.value)
        expect_true(got.size == 1, f"masked_cross_entropy should return one number (a scalar "
                                   f"tensor), got an array of shape {got.shape}.")
        expect_close(f"masked_cross_entropy(logits, targets) with (U, B) = ({U}, {B}) and "
                     f"{int((targets != PAD).sum())} real tokens", got.reshape(()), want.item(),
                     rtol=1e-4, atol=1e-5,
                     what="F.cross_entropy(..., ignore_index=PAD), the mean over real tokens")
        _expect_differentiable("masked_cross_entropy(logits, targets)", call, "logits")
        if pad:   # the lab says inputs are not modified: e.g. no targets[targets == PAD] = -100
            _expect_inputs_kept("masked_cross_entropy", ("logits", "targets"), (logits, targets),
                                student.observe.masked_cross_entropy(logits.clone(), targets.clone()))
        expect_close(f"the gradient of masked_cross_entropy with respect to logits, (U, B) = ({U}, {B})",
                     call.grads["0"], leaf.grad.numpy(), rtol=1e-3, atol=1e-6,
                     what="the gradient of F.cross_entropy(..., ignore_index=PAD)")
    # One problem too large for finite differences (106k logits: 213k evaluations of the loss,
    # against one backward()), so gradients made up in the sandbox without autograd cannot pass
    # (DEVELOPERS.md, "What the grader trusts").
    logits, targets = _loss_case(99, 32, 256, True)
    call = student.gradients(wrt=(0,)).masked_cross_entropy(logits.clone(), targets.clone())
    leaf = logits.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(leaf.reshape(-1, V), targets.reshape(-1), ignore_index=PAD).backward()
    _expect_differentiable("masked_cross_entropy(logits, targets) with (U, B) = (32, 256)", call, "logits")
    expect_close("the gradient of masked_cross_entropy with respect to logits, (U, B) = (32, 256)",
                 call.grads["0"], leaf.grad.numpy(), rtol=1e-3, atol=1e-7,
                 what="the gradient of F.cross_entropy(..., ignore_index=PAD)")


def _expect_inputs_kept(function, names, before, observed):
    """Fail if ``function`` changed an argument in place (the lab says inputs are not modified)."""
    changed = observed.changed(list(before))
    for index, name in enumerate(names):
        changed = [path.replace(f"args[{index}]", name) for path in changed]
    expect_true(not changed,
                f"{function} changed its argument {', '.join(changed)} in place; the caller still "
                f"needs it. Work on a copy or on new tensors (the lab says inputs are not modified).")


def _expect_differentiable(name, call, towards):
    expect_true(call.differentiable,
                f"{name}: the value is right, but no gradient can flow back to {towards}: "
                f"{call.reason}. Training calls backward() on this, so build it from torch "
                f"operations on the tensors you are given.")


def _expect_parameter_gradients(name, call, module, prefix=""):
    """Every parameter of the reference ``module`` got the same gradient in the student's module."""
    for pname, parameter in module.named_parameters():
        got = call.params.get(prefix + pname, "missing")
        expect_true(not (isinstance(got, str) and got == "missing"),
                    f"{name}: the module has no parameter {pname!r}; keep the layers the notebook creates.")
        expect_true(got is not None,
                    f"{name}: no gradient reaches the parameter {pname!r}, so training would never change "
                    f"it. Is something detached (.detach(), .item(), .numpy(), torch.no_grad()) on the "
                    f"way from it to the output?")
        expect_close(f"{name}: the gradient of {pname}", got, parameter.grad.numpy(), rtol=1e-3,
                     atol=1e-5, what="the reference's gradient")


# ----------------------------------------------------------------------------- shift_targets

SHIFT_CASES = [[3], [4, 1, 2], [1, 1], [5, 2, 5, 3], [2, 6, 1, 4, 3, 2]]


def _shift_case(seed, lengths):
    rng = np.random.default_rng(seed)
    N = max(lengths)
    labels = np.full((N, len(lengths)), PAD, dtype=np.int64)  # (N, B)
    for b, n in enumerate(lengths):
        labels[:n, b] = rng.integers(3, V, size=n)
    return torch.from_numpy(labels), torch.tensor(lengths, dtype=torch.long)


def _shifted(student, labels, lengths, which):
    N, B = labels.shape
    call = student.observe.shift_targets(labels.clone(), lengths.clone())
    if which == "y_in":   # the lab says inputs are not modified (costs this one cell)
        _expect_inputs_kept("shift_targets", ("labels", "lengths"), (labels, lengths), call)
    result = _pair("shift_targets(labels, lengths)", call.value)
    index = {"y_in": 0, "y_out": 1}[which]
    expect_dtype(f"{which} returned by shift_targets (token ids: the lab asks for long tensors)",
                 result[index], "int64")
    got = expect_shape(f"{which} returned by shift_targets", result[index], (N + 1, B), "N + 1, B")
    return got, ref.shift_targets(labels, lengths)[index].numpy()


def _expect_tokens(name, got, want, lengths):
    if not np.array_equal(got, want):
        u, b = (int(i) for i in np.argwhere(got != want)[0])
        raise CheckFailed(f"{name}[{u}, {b}] is {int(got[u, b])}, expected {int(want[u, b])} "
                          f"(utterance {b} has {int(lengths[b])} digits; <pad> = 0, <s> = 1, "
                          f"</s> = 2). Column {b}: got {got[:, b].astype(int).tolist()}, expected "
                          f"{want[:, b].tolist()}.")


@hidden_test("test_shift_targets_inputs")
def _(student):
    for seed, lengths in enumerate(SHIFT_CASES):
        labels, n = _shift_case(seed, lengths)
        got, want = _shifted(student, labels, n, "y_in")
        _expect_tokens("y_in", got, want, lengths)


@hidden_test("test_shift_targets_outputs")
def _(student):
    for seed, lengths in enumerate(SHIFT_CASES):
        labels, n = _shift_case(10 + seed, lengths)
        got, want = _shifted(student, labels, n, "y_out")
        _expect_tokens("y_out", got, want, lengths)


# ----------------------------------------------------------------------------------- Encoder

ENCODER_SIZES = [(5, 4), (3, 7)]   # (F, H)


def _encode(encoder, x, lengths, T, B, H):
    states, context = _pair("Encoder.forward(x, lengths)", encoder.forward(x.clone(), lengths.clone()))
    states = expect_shape("states returned by Encoder.forward", states, (T, B, H), "T, B, H")
    context = expect_shape("context returned by Encoder.forward", context, (B, H), "B, H")
    return states, context


@hidden_test("test_encoder_context")
def _(student):
    """The context is the state after each utterance's last real frame: padding cannot change it."""
    for seed, (F, H) in enumerate(ENCODER_SIZES):
        module, state = _state(ref.Encoder, 100 + seed, F, H)
        encoder = with_weights(student, "Encoder", state, F, H)
        lengths = [6, 2, 9, 1, 4]
        x, n = _frames(seed, lengths, F, extra=3)   # padded past the longest utterance, too
        _, context = _encode(encoder, x, n, x.shape[0], len(lengths), H)
        want = module(x, n)[1].detach().numpy()
        for b, length in enumerate(lengths):
            alone = _encode(encoder, x[:length, b:b + 1], n[b:b + 1], length, 1, H)[1]
            expect_close(f"the context of utterance {b} ({length} frames) run alone, unpadded",
                         alone[0], want[b], rtol=1e-4, atol=1e-5, what="the reference context")
            expect_close(f"the context of utterance {b} ({length} frames) in a batch padded to "
                         f"{x.shape[0]} frames", context[b], alone[0], rtol=1e-4, atol=1e-5,
                         what="its context when run alone (padding must not change the context)")
        # the gradient of the context reaches the frames and every weight of the GRU
        (g_context,) = _random_like(seed, (len(lengths), H))
        call = encoder.gradients(wrt=(0,), grad_output=(None, g_context)).forward(x.clone(), n.clone())
        _expect_differentiable("Encoder.forward's context", call, "the frames x and the GRU's weights")
        (want_x,) = _reference_gradients(module, lambda x_: module(x_, n), [x], (None, g_context))
        expect_close("the gradient of the context with respect to the frames x", call.grads["0"], want_x,
                     rtol=1e-3, atol=1e-5, what="the reference's gradient")
        _expect_parameter_gradients("Encoder.forward's context", call, module)


@hidden_test("test_encoder_states")
def _(student):
    """All states: the GRU's state at every real frame, zero on padding."""
    for seed, (F, H) in enumerate(ENCODER_SIZES):
        module, state = _state(ref.Encoder, 200 + seed, F, H)
        encoder = with_weights(student, "Encoder", state, F, H)
        lengths = [3, 7, 1, 5]
        x, n = _frames(10 + seed, lengths, F, extra=2)
        states, _ = _encode(encoder, x, n, x.shape[0], len(lengths), H)
        want = module(x, n)[0].detach().numpy()
        for b, length in enumerate(lengths):
            expect_close(f"states[:{length}, {b}] (the real frames of utterance {b})",
                         states[:length, b], want[:length, b], rtol=1e-4, atol=1e-5,
                         what="the GRU's states")
            expect_close(f"states[{length}:, {b}] (padding after utterance {b}'s {length} frames)",
                         states[length:, b], np.zeros_like(want[length:, b]), atol=0.0,
                         what="zeros")
        (g_states,) = _random_like(20 + seed, tuple(x.shape[:2]) + (H,))
        call = encoder.gradients(wrt=(0,), grad_output=(g_states, None)).forward(x.clone(), n.clone())
        _expect_differentiable("Encoder.forward's states", call, "the frames x and the GRU's weights")
        (want_x,) = _reference_gradients(module, lambda x_: module(x_, n), [x], (g_states, None))
        expect_close("the gradient of the states with respect to the frames x", call.grads["0"], want_x,
                     rtol=1e-3, atol=1e-5, what="the reference's gradient")
        _expect_parameter_gradients("Encoder.forward's states", call, module)


# ----------------------------------------------------------------------------------- Decoder

DECODER_SIZES = [(6, 4), (3, 8)]   # (emb, H)


def _decoder(student, seed, emb, H, scale=1.0):
    module, state = _state(ref.Decoder, seed, V, emb, H, scale=scale)
    return module, with_weights(student, "Decoder", state, V, emb, H)


def _step(decoder, y_prev, s_prev, context):
    """The student's step, checked for shape; returns numpy (logits (B, V), s (B, H))."""
    B, H = s_prev.shape
    logits, s = _pair("Decoder.step(y_prev, s_prev, context)",
                      decoder.step(torch.as_tensor(y_prev), torch.as_tensor(s_prev), torch.as_tensor(context)))
    logits = expect_shape("logits returned by Decoder.step", logits, (B, V), "B, V")
    expect_shape("s returned by Decoder.step", s, (B, H), "B, H")
    return logits, torch.from_numpy(np.asarray(as_array("s", s), dtype=np.float32))  # fed back as float32


def _checked_step(decoder, module, y_prev, s_prev, context, judged: str):
    """The student's step, after checking it agrees with the reference ``module`` on these inputs.

    A test of a part built on ``step`` judges that part against the student's own step, so the
    step itself must be right first (test_decoder_step says how it is not).
    """
    logits, s = _step(decoder, y_prev, s_prev, context)
    with torch.no_grad():
        want_logits, want_s = module.step(torch.as_tensor(y_prev), torch.as_tensor(s_prev, dtype=torch.float32),
                                          torch.as_tensor(context, dtype=torch.float32))
    for got, want, what in ((logits, want_logits, "logits"), (s.numpy(), want_s, "state")):
        want = want.numpy()
        good = np.all(np.isfinite(got)) and np.allclose(got, want, rtol=1e-4, atol=1e-5)
        if not good:
            raise CheckFailed(f"{judged} is judged against your Decoder.step, but your step is not right "
                              f"yet: on the inputs this test gives it, its {what} differ from the "
                              f"reference decoder's (see test_decoder_step). Fix step first.")
    return logits, s


@hidden_test("test_decoder_step")
def _(student):
    for seed, (emb, H) in enumerate(DECODER_SIZES):
        module, decoder = _decoder(student, 300 + seed, emb, H)
        rng = np.random.default_rng(seed)
        for B in (1, 4):
            y_prev = torch.from_numpy(rng.integers(0, V, size=B))
            s_prev = torch.from_numpy(rng.standard_normal((B, H)).astype(np.float32))
            context = torch.from_numpy(rng.standard_normal((B, H)).astype(np.float32))
            logits, s = _step(decoder, y_prev, s_prev, context)
            want_logits, want_s = (t.detach().numpy() for t in module.step(y_prev, s_prev, context))
            expect_close(f"s returned by Decoder.step (B = {B})", s.numpy(), want_s, rtol=1e-4, atol=1e-5,
                         what="cell([embed(y_prev); context], s_prev)")
            expect_close(f"logits returned by Decoder.step (B = {B})", logits, want_logits,
                         rtol=1e-4, atol=1e-5, what="out(s)")
            # gradients flow to s_prev, to the context and to every weight
            g_logits, g_s = _random_like(10 + seed + B, (B, V), (B, H))
            call = decoder.gradients(wrt=(1, 2), grad_output=(g_logits, g_s)).step(y_prev, s_prev, context)
            _expect_differentiable(f"Decoder.step (B = {B})", call, "s_prev, the context and the weights")
            want_s_prev, want_context = _reference_gradients(
                module, lambda s_, c_: module.step(y_prev, s_, c_), [s_prev, context], (g_logits, g_s))
            for key, what, want in (("1", "s_prev", want_s_prev), ("2", "the context", want_context)):
                expect_true(call.grads[key] is not None,
                            f"Decoder.step (B = {B}): no gradient reaches {what}; is it detached?")
                expect_close(f"the gradient of Decoder.step with respect to {what} (B = {B})",
                             call.grads[key], want, rtol=1e-3, atol=1e-5, what="the reference's gradient")
            _expect_parameter_gradients(f"Decoder.step (B = {B})", call, module)


@hidden_test("test_decoder_forward")
def _(student):
    """Teacher forcing, judged on the student's own step: s_0 = context, y_in[u] fed at step u."""
    for seed, (emb, H) in enumerate(DECODER_SIZES):
        module, decoder = _decoder(student, 400 + seed, emb, H)
        rng = np.random.default_rng(seed)
        for U, B in [(5, 3), (1, 2), (4, 1)]:
            y_in = torch.from_numpy(rng.integers(3, V, size=(U, B)))
            y_in[0] = BOS
            context = torch.from_numpy(rng.standard_normal((B, H)).astype(np.float32))
            got = expect_shape("Decoder.forward(context, y_in)", decoder.forward(context, y_in),
                               (U, B, V), "U, B, V")
            s = context
            for u in range(U):
                logits, s = _checked_step(decoder, module, y_in[u], s, context,
                                          f"Decoder.forward (U = {U}, B = {B})")
                expect_close(f"Decoder.forward(context, y_in)[{u}] (U = {U}, B = {B})", got[u], logits,
                             rtol=1e-4, atol=1e-5,
                             what=f"the logits of your step at u = {u}, fed y_in[{u}] and the state "
                                  f"the step before it produced (starting from the context)")
            # teacher forcing trains the decoder: the gradient reaches the context and every weight
            (g_logits,) = _random_like(30 + seed + U, (U, B, V))
            call = decoder.gradients(wrt=(0,), grad_output=g_logits).forward(context, y_in)
            _expect_differentiable(f"Decoder.forward (U = {U}, B = {B})", call, "the context and the weights")
            (want_context,) = _reference_gradients(module, lambda c_: module(c_, y_in), [context], g_logits)
            expect_true(call.grads["0"] is not None,
                        f"Decoder.forward (U = {U}, B = {B}): no gradient reaches the context, so the "
                        f"encoder would never learn; is the context detached?")
            expect_close(f"the gradient of Decoder.forward with respect to the context (U = {U}, B = {B})",
                         call.grads["0"], want_context, rtol=1e-3, atol=1e-5,
                         what="the reference's gradient")
            _expect_parameter_gradients(f"Decoder.forward (U = {U}, B = {B})", call, module)


# ----------------------------------------------------------------------------- greedy_decode

def _eos_problem(seed, emb, H, B, max_len):
    """A decoder and contexts whose greedy outputs end at many different steps (or never)."""
    module, state = _state(ref.Decoder, seed, V, emb, H, scale=2.0)
    rng = np.random.default_rng(seed)
    pool = torch.from_numpy(rng.standard_normal((400, H)).astype(np.float32))
    lengths = np.array([len(seq) for seq in ref.greedy_decode(module, pool, max_len)])
    chosen = []
    # each output length once, then again; max_len (never </s>) and max_len - 1 first: the edges
    for target in ([max_len, max_len - 1] + list(range(0, max_len - 1))) * B:
        hits = [i for i in np.flatnonzero(lengths == target) if i not in chosen]
        if hits:
            chosen.append(hits[0])
        if len(chosen) == B:
            break
    assert len(set(lengths[chosen])) >= 3, "the test's decoder does not vary its output lengths"
    assert max_len in set(lengths[chosen]), "no utterance runs to max_len: the edge is not visited"
    return module, state, pool[chosen]


def _sequences(name, result, B):
    expect_true(isinstance(result, (list, tuple)) and len(result) == B,
                f"{name} should return a list of B = {B} lists of token ids, got {describe(result)}.")
    sequences = []
    for b, seq in enumerate(result):
        array = np.asarray(seq if not isinstance(seq, (list, tuple)) else [np.asarray(t).item() for t in seq])
        expect_true(array.ndim == 1 and (array.size == 0 or array.dtype.kind in "iu"),
                    f"{name}[{b}] should be a list of int token ids, got {seq!r}.")
        sequences.append([int(t) for t in array])
    return sequences


def _expected_greedy(decoder, module, context, max_len):
    """Greedy decoding run here, one utterance at a time, over the student's own (checked) step."""
    expected = []
    for b in range(context.shape[0]):
        y, s, out = torch.tensor([BOS]), context[b:b + 1], []
        for _ in range(max_len):
            logits, s = _checked_step(decoder, module, y, s, context[b:b + 1], "greedy_decode")
            token = int(np.argmax(logits[0]))
            if token == EOS:
                break
            out.append(token)
            y = torch.tensor([token])
        expected.append(out)
    return expected


@hidden_test("test_greedy_decode_eos")
def _(student):
    """Each utterance alone: feed back the prediction, stop at </s> (left out) or max_len."""
    for seed, (emb, H, max_len) in enumerate([(5, 6, 6), (4, 8, 9)]):
        module, state, contexts = _eos_problem(500 + seed, emb, H, 6, max_len)
        decoder = with_weights(student, "Decoder", state, V, emb, H)
        expected = _expected_greedy(decoder, module, contexts, max_len)
        for b in range(contexts.shape[0]):
            got = _sequences(f"greedy_decode(decoder, context, {max_len})",
                             student.greedy_decode(decoder, contexts[b:b + 1], max_len), 1)[0]
            if got != expected[b]:
                more = ""
                if EOS in got:
                    more = " It contains </s> (= 2): stop there, and leave </s> out."
                elif len(got) > len(expected[b]):
                    more = " It goes on after the step that predicted </s>."
                raise CheckFailed(
                    f"greedy_decode on one utterance (max_len = {max_len}) returned {got}, expected "
                    f"{expected[b]} (your decoder's step, starting from <s> and the context, fed "
                    f"its own most likely token at each step, stopped at the first </s>).{more}")


@hidden_test("test_greedy_decode_batch")
def _(student):
    """A batch decodes each utterance exactly as it decodes alone, whatever the others do."""
    for seed, (emb, H, max_len) in enumerate([(5, 6, 6), (4, 8, 9)]):
        module, state, contexts = _eos_problem(600 + seed, emb, H, 7, max_len)
        decoder = with_weights(student, "Decoder", state, V, emb, H)
        _expected_greedy(decoder, module, contexts[:1], max_len)   # the step it is built on is right
        call = student.greedy_decode
        alone = [_sequences("greedy_decode(decoder, context, max_len)", call(decoder, contexts[b:b + 1], max_len),
                            1)[0] for b in range(contexts.shape[0])]
        batch = _sequences("greedy_decode(decoder, context, max_len)", call(decoder, contexts, max_len),
                           contexts.shape[0])
        for b in range(contexts.shape[0]):
            if batch[b] != alone[b]:
                raise CheckFailed(
                    f"greedy_decode on a batch of {contexts.shape[0]} returned {batch[b]} for "
                    f"utterance {b}, but {alone[b]} for the same utterance alone. Output lengths in "
                    f"the batch: {[len(s) for s in batch]}, alone: {[len(s) for s in alone]}. Each "
                    f"utterance must stop at its own </s>, and the batch only when all have "
                    f"stopped (or after max_len steps).")
