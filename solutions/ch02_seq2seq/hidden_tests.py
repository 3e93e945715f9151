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
from speechcourse.language import say

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
                say(f"{name} should return a pair, got {describe(result)}.",
                    f"{name}은(는) 쌍을 돌려주어야 하는데 {describe(result)}입니다."))
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
        expect_true(got.size == 1, say(f"masked_cross_entropy should return one number (a scalar "
                                       f"tensor), got an array of shape {got.shape}.",
                                       f"masked_cross_entropy는 수 하나(스칼라 텐서)를 돌려주어야 하는데 "
                                       f"모양 {got.shape}인 배열입니다."))
        expect_close(say(f"masked_cross_entropy(logits, targets) with (U, B) = ({U}, {B}) and "
                         f"{int((targets != PAD).sum())} real tokens",
                         f"(U, B) = ({U}, {B}), 실제 토큰 {int((targets != PAD).sum())}개일 때 "
                         f"masked_cross_entropy(logits, targets)"), got.reshape(()), want.item(),
                     rtol=1e-4, atol=1e-5,
                     what=say("F.cross_entropy(..., ignore_index=PAD), the mean over real tokens",
                              "F.cross_entropy(..., ignore_index=PAD), 곧 실제 토큰에 대한 평균"))
        _expect_differentiable("masked_cross_entropy(logits, targets)", call, "logits")
        if pad:   # the lab says inputs are not modified: e.g. no targets[targets == PAD] = -100
            _expect_inputs_kept("masked_cross_entropy", ("logits", "targets"), (logits, targets),
                                student.observe.masked_cross_entropy(logits.clone(), targets.clone()))
        expect_close(say(f"the gradient of masked_cross_entropy with respect to logits, (U, B) = ({U}, {B})",
                         f"logits에 대한 masked_cross_entropy의 기울기, (U, B) = ({U}, {B})"),
                     call.grads["0"], leaf.grad.numpy(), rtol=1e-3, atol=1e-6,
                     what=say("the gradient of F.cross_entropy(..., ignore_index=PAD)",
                              "F.cross_entropy(..., ignore_index=PAD)의 기울기"))
    # One problem too large for finite differences (106k logits: 213k evaluations of the loss,
    # against one backward()), so gradients made up in the sandbox without autograd cannot pass
    # (DEVELOPERS.md, "What the grader trusts").
    logits, targets = _loss_case(99, 32, 256, True)
    call = student.gradients(wrt=(0,)).masked_cross_entropy(logits.clone(), targets.clone())
    leaf = logits.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(leaf.reshape(-1, V), targets.reshape(-1), ignore_index=PAD).backward()
    _expect_differentiable(say("masked_cross_entropy(logits, targets) with (U, B) = (32, 256)",
                               "(U, B) = (32, 256)일 때 masked_cross_entropy(logits, targets)"), call, "logits")
    expect_close(say("the gradient of masked_cross_entropy with respect to logits, (U, B) = (32, 256)",
                     "logits에 대한 masked_cross_entropy의 기울기, (U, B) = (32, 256)"),
                 call.grads["0"], leaf.grad.numpy(), rtol=1e-3, atol=1e-7,
                 what=say("the gradient of F.cross_entropy(..., ignore_index=PAD)",
                          "F.cross_entropy(..., ignore_index=PAD)의 기울기"))


def _expect_inputs_kept(function, names, before, observed):
    """Fail if ``function`` changed an argument in place (the lab says inputs are not modified)."""
    changed = observed.changed(list(before))
    for index, name in enumerate(names):
        changed = [path.replace(f"args[{index}]", name) for path in changed]
    expect_true(not changed,
                say(f"{function} changed its argument {', '.join(changed)} in place; the caller still "
                    f"needs it. Work on a copy or on new tensors (the lab says inputs are not modified).",
                    f"{function}이(가) 인자 {', '.join(changed)}을(를) 제자리에서 바꾸었습니다. 호출한 쪽이 "
                    f"아직 그 값을 씁니다. 복사본이나 새 텐서로 작업하십시오 (실습은 입력을 바꾸지 않는다고 "
                    f"합니다)."))


def _expect_differentiable(name, call, towards):
    expect_true(call.differentiable,
                say(f"{name}: the value is right, but no gradient can flow back to {towards}: "
                    f"{call.reason}. Training calls backward() on this, so build it from torch "
                    f"operations on the tensors you are given.",
                    f"{name}: 값은 맞지만 {towards}(으)로 기울기가 거슬러 흐를 수 없습니다: "
                    f"{call.reason}. 학습은 이 값에 backward()를 호출하므로, 주어진 텐서에 torch 연산을 "
                    f"써서 만드십시오."))


def _expect_parameter_gradients(name, call, module, prefix=""):
    """Every parameter of the reference ``module`` got the same gradient in the student's module."""
    for pname, parameter in module.named_parameters():
        got = call.params.get(prefix + pname, "missing")
        expect_true(not (isinstance(got, str) and got == "missing"),
                    say(f"{name}: the module has no parameter {pname!r}; keep the layers the notebook creates.",
                        f"{name}: 모듈에 매개변수 {pname!r}이(가) 없습니다. 노트북이 만드는 층을 그대로 "
                        f"두십시오."))
        expect_true(got is not None,
                    say(f"{name}: no gradient reaches the parameter {pname!r}, so training would never change "
                        f"it. Is something detached (.detach(), .item(), .numpy(), torch.no_grad()) on the "
                        f"way from it to the output?",
                        f"{name}: 매개변수 {pname!r}에 기울기가 닿지 않으므로 학습이 이 매개변수를 결코 바꾸지 "
                        f"못합니다. 매개변수에서 출력까지 가는 길에 떼어 낸 것(.detach(), .item(), .numpy(), "
                        f"torch.no_grad())이 있습니까?"))
        expect_close(say(f"{name}: the gradient of {pname}", f"{name}: {pname}의 기울기"), got,
                     parameter.grad.numpy(), rtol=1e-3,
                     atol=1e-5, what=say("the reference's gradient", "참조 구현의 기울기"))


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
    expect_dtype(say(f"{which} returned by shift_targets (token ids: the lab asks for long tensors)",
                     f"shift_targets가 돌려준 {which} (토큰 id: 실습은 long 텐서를 요구합니다)"),
                 result[index], "int64")
    got = expect_shape(say(f"{which} returned by shift_targets", f"shift_targets가 돌려준 {which}"),
                       result[index], (N + 1, B), "N + 1, B")
    return got, ref.shift_targets(labels, lengths)[index].numpy()


def _expect_tokens(name, got, want, lengths):
    if not np.array_equal(got, want):
        u, b = (int(i) for i in np.argwhere(got != want)[0])
        raise CheckFailed(say(f"{name}[{u}, {b}] is {int(got[u, b])}, expected {int(want[u, b])} "
                              f"(utterance {b} has {int(lengths[b])} digits; <pad> = 0, <s> = 1, "
                              f"</s> = 2). Column {b}: got {got[:, b].astype(int).tolist()}, expected "
                              f"{want[:, b].tolist()}.",
                              f"{name}[{u}, {b}]이(가) {int(want[u, b])}이어야 하는데 {int(got[u, b])}입니다 "
                              f"(발화 {b}: 숫자 {int(lengths[b])}개; <pad> = 0, <s> = 1, </s> = 2). "
                              f"열 {b}: 받은 값 {got[:, b].astype(int).tolist()}, 기대값 "
                              f"{want[:, b].tolist()}."))


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
    states = expect_shape(say("states returned by Encoder.forward", "Encoder.forward가 돌려준 states"),
                          states, (T, B, H), "T, B, H")
    context = expect_shape(say("context returned by Encoder.forward", "Encoder.forward가 돌려준 context"),
                           context, (B, H), "B, H")
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
            expect_close(say(f"the context of utterance {b} ({length} frames) run alone, unpadded",
                             f"패딩 없이 따로 실행한 발화 {b} (프레임 {length}개)의 context"),
                         alone[0], want[b], rtol=1e-4, atol=1e-5,
                         what=say("the reference context", "참조 구현의 context"))
            expect_close(say(f"the context of utterance {b} ({length} frames) in a batch padded to "
                             f"{x.shape[0]} frames",
                             f"프레임 {x.shape[0]}개로 패딩된 배치 안에서 발화 {b} (프레임 {length}개)의 "
                             f"context"), context[b], alone[0], rtol=1e-4, atol=1e-5,
                         what=say("its context when run alone (padding must not change the context)",
                                  "따로 실행했을 때의 context (패딩이 context를 바꾸면 안 됩니다)"))
        # the gradient of the context reaches the frames and every weight of the GRU
        (g_context,) = _random_like(seed, (len(lengths), H))
        call = encoder.gradients(wrt=(0,), grad_output=(None, g_context)).forward(x.clone(), n.clone())
        _expect_differentiable(say("Encoder.forward's context", "Encoder.forward의 context"), call,
                               say("the frames x and the GRU's weights", "프레임 x와 GRU의 가중치"))
        (want_x,) = _reference_gradients(module, lambda x_: module(x_, n), [x], (None, g_context))
        expect_close(say("the gradient of the context with respect to the frames x",
                         "프레임 x에 대한 context의 기울기"), call.grads["0"], want_x,
                     rtol=1e-3, atol=1e-5, what=say("the reference's gradient", "참조 구현의 기울기"))
        _expect_parameter_gradients(say("Encoder.forward's context", "Encoder.forward의 context"), call, module)


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
            expect_close(say(f"states[:{length}, {b}] (the real frames of utterance {b})",
                             f"states[:{length}, {b}] (발화 {b}의 실제 프레임)"),
                         states[:length, b], want[:length, b], rtol=1e-4, atol=1e-5,
                         what=say("the GRU's states", "GRU의 상태"))
            expect_close(say(f"states[{length}:, {b}] (padding after utterance {b}'s {length} frames)",
                             f"states[{length}:, {b}] (발화 {b}의 프레임 {length}개 뒤의 패딩)"),
                         states[length:, b], np.zeros_like(want[length:, b]), atol=0.0,
                         what=say("zeros", "0"))
        (g_states,) = _random_like(20 + seed, tuple(x.shape[:2]) + (H,))
        call = encoder.gradients(wrt=(0,), grad_output=(g_states, None)).forward(x.clone(), n.clone())
        _expect_differentiable(say("Encoder.forward's states", "Encoder.forward의 states"), call,
                               say("the frames x and the GRU's weights", "프레임 x와 GRU의 가중치"))
        (want_x,) = _reference_gradients(module, lambda x_: module(x_, n), [x], (g_states, None))
        expect_close(say("the gradient of the states with respect to the frames x",
                         "프레임 x에 대한 states의 기울기"), call.grads["0"], want_x,
                     rtol=1e-3, atol=1e-5, what=say("the reference's gradient", "참조 구현의 기울기"))
        _expect_parameter_gradients(say("Encoder.forward's states", "Encoder.forward의 states"), call, module)


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
    logits = expect_shape(say("logits returned by Decoder.step", "Decoder.step이 돌려준 logits"), logits,
                          (B, V), "B, V")
    expect_shape(say("s returned by Decoder.step", "Decoder.step이 돌려준 s"), s, (B, H), "B, H")
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
    for got, want, what in ((logits, want_logits, "logits"), (s.numpy(), want_s, say("state", "상태"))):
        want = want.numpy()
        good = np.all(np.isfinite(got)) and np.allclose(got, want, rtol=1e-4, atol=1e-5)
        if not good:
            raise CheckFailed(say(f"{judged} is judged against your Decoder.step, but your step is not right "
                                  f"yet: on the inputs this test gives it, its {what} differ from the "
                                  f"reference decoder's (see test_decoder_step). Fix step first.",
                                  f"{judged}은(는) 여러분의 Decoder.step을 기준으로 판정하는데, step이 아직 "
                                  f"맞지 않습니다: 이 테스트가 주는 입력에서 step의 {what}이(가) 참조 디코더의 "
                                  f"것과 다릅니다 (test_decoder_step을 보십시오). step부터 고치십시오."))
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
            expect_close(say(f"s returned by Decoder.step (B = {B})", f"Decoder.step이 돌려준 s (B = {B})"),
                         s.numpy(), want_s, rtol=1e-4, atol=1e-5,
                         what="cell([embed(y_prev); context], s_prev)")
            expect_close(say(f"logits returned by Decoder.step (B = {B})",
                             f"Decoder.step이 돌려준 logits (B = {B})"), logits, want_logits,
                         rtol=1e-4, atol=1e-5, what="out(s)")
            # gradients flow to s_prev, to the context and to every weight
            g_logits, g_s = _random_like(10 + seed + B, (B, V), (B, H))
            call = decoder.gradients(wrt=(1, 2), grad_output=(g_logits, g_s)).step(y_prev, s_prev, context)
            _expect_differentiable(f"Decoder.step (B = {B})", call,
                                   say("s_prev, the context and the weights", "s_prev, context, 가중치"))
            want_s_prev, want_context = _reference_gradients(
                module, lambda s_, c_: module.step(y_prev, s_, c_), [s_prev, context], (g_logits, g_s))
            for key, what, want in (("1", "s_prev", want_s_prev),
                                    ("2", say("the context", "context"), want_context)):
                expect_true(call.grads[key] is not None,
                            say(f"Decoder.step (B = {B}): no gradient reaches {what}; is it detached?",
                                f"Decoder.step (B = {B}): {what}에 기울기가 닿지 않습니다. 떼어 냈습니까(detach)?"))
                expect_close(say(f"the gradient of Decoder.step with respect to {what} (B = {B})",
                                 f"{what}에 대한 Decoder.step의 기울기 (B = {B})"),
                             call.grads[key], want, rtol=1e-3, atol=1e-5,
                             what=say("the reference's gradient", "참조 구현의 기울기"))
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
                             what=say(f"the logits of your step at u = {u}, fed y_in[{u}] and the state "
                                      f"the step before it produced (starting from the context)",
                                      f"u = {u}에서 y_in[{u}]와 바로 앞 단계가 만든 상태(처음에는 context)를 "
                                      f"받은 여러분의 step의 logits"))
            # teacher forcing trains the decoder: the gradient reaches the context and every weight
            (g_logits,) = _random_like(30 + seed + U, (U, B, V))
            call = decoder.gradients(wrt=(0,), grad_output=g_logits).forward(context, y_in)
            _expect_differentiable(f"Decoder.forward (U = {U}, B = {B})", call,
                                   say("the context and the weights", "context와 가중치"))
            (want_context,) = _reference_gradients(module, lambda c_: module(c_, y_in), [context], g_logits)
            expect_true(call.grads["0"] is not None,
                        say(f"Decoder.forward (U = {U}, B = {B}): no gradient reaches the context, so the "
                            f"encoder would never learn; is the context detached?",
                            f"Decoder.forward (U = {U}, B = {B}): context에 기울기가 닿지 않으므로 인코더가 "
                            f"결코 학습하지 못합니다. context를 떼어 냈습니까(detach)?"))
            expect_close(say(f"the gradient of Decoder.forward with respect to the context (U = {U}, B = {B})",
                             f"context에 대한 Decoder.forward의 기울기 (U = {U}, B = {B})"),
                         call.grads["0"], want_context, rtol=1e-3, atol=1e-5,
                         what=say("the reference's gradient", "참조 구현의 기울기"))
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
                    more = say(" It contains </s> (= 2): stop there, and leave </s> out.",
                               " 결과에 </s> (= 2)가 들어 있습니다: 거기서 멈추고, </s>는 빼십시오.")
                elif len(got) > len(expected[b]):
                    more = say(" It goes on after the step that predicted </s>.",
                               " </s>를 예측한 단계 뒤에도 계속됩니다.")
                raise CheckFailed(say(
                    f"greedy_decode on one utterance (max_len = {max_len}) returned {got}, expected "
                    f"{expected[b]} (your decoder's step, starting from <s> and the context, fed "
                    f"its own most likely token at each step, stopped at the first </s>).{more}",
                    f"발화 하나에 대한 greedy_decode (max_len = {max_len})가 {expected[b]}을(를) 돌려주어야 "
                    f"하는데 {got}을(를) 돌려주었습니다 (기대값은 여러분의 디코더 step이 <s>와 context에서 "
                    f"시작해 단계마다 가장 가능성 높은 자기 토큰을 다시 받고, 첫 </s>에서 멈춘 결과)."
                    f"{more}"))


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
                raise CheckFailed(say(
                    f"greedy_decode on a batch of {contexts.shape[0]} returned {batch[b]} for "
                    f"utterance {b}, but {alone[b]} for the same utterance alone. Output lengths in "
                    f"the batch: {[len(s) for s in batch]}, alone: {[len(s) for s in alone]}. Each "
                    f"utterance must stop at its own </s>, and the batch only when all have "
                    f"stopped (or after max_len steps).",
                    f"greedy_decode가 배치 {contexts.shape[0]}개에서는 발화 {b}에 대해 {batch[b]}을(를), "
                    f"같은 발화를 따로 주면 {alone[b]}을(를) 돌려주었습니다. 출력 길이: 배치에서 "
                    f"{[len(s) for s in batch]}, 따로 {[len(s) for s in alone]}. 발화마다 자기 </s>에서 "
                    f"멈추고, 배치는 모든 발화가 멈췄을 때(또는 max_len 단계 뒤)에만 멈춰야 합니다."))
