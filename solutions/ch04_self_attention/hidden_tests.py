"""Hidden tests of lab 4 (self-attention). One per test cell; see DEVELOPERS.md.

Functions get tensors and return tensors. The modules live in the student's sandbox: a test
makes one with ``student.keep.MultiHeadSelfAttention(d_model, n_heads)`` (a handle), loads
known weights with ``handle.keep.load_state_dict(state)`` (strict: the layer names the notebook
gives must be kept) and calls ``handle.forward(...)``; results come back as numpy arrays.

References are independent of the student where PyTorch has one:
``torch.nn.functional.scaled_dot_product_attention`` for attention and
``torch.nn.MultiheadAttention`` for the multi-head layer, whose weights are loaded through the
mapping the notebook documents (``in_proj_weight.chunk(3)`` -> W_q, W_k, W_v; ``out_proj`` ->
W_o). Every module is compared with the reference with known weights, at the sizes students use
(the encoder with two and three layers, the layer with and without padding); a part built on
another is judged against the reference, so a mistake in a part costs the cells of what is built
on it too, and a failed precondition is never a reason to skip a check. Masked tests have scores
of order 1e4 (a mask added as -1e4 fails), the encoder gets a real all-zero frame inside an
utterance and lengths whose longest is shorter than T. Gradients are checked in the sandbox (``student.gradients``): a module whose
output is right but detached loses its cell. Padding invariance and permutation equivariance
are properties, checked without any reference.
"""

import numpy as np
import torch

from autograder.hidden import StudentError, hidden_test, load_sibling, with_weights
from speechcourse.checks import (CheckFailed, as_array, describe, expect_close, expect_dtype, expect_shape,
                                 expect_true)
from speechcourse.language import say

ref = load_sibling(__file__, "reference")
TOL = {"rtol": 1e-4, "atol": 1e-5}


def _t(array):
    return torch.from_numpy(np.asarray(array, dtype=np.float32))


def _randn(seed, *shape):
    return _t(np.random.default_rng(seed).standard_normal(shape))


def _pair(name, result):
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                say(f"{name} should return a pair (out, weights), got {describe(result)}.",
                    f"{name}은(는) 쌍 (out, weights)를 돌려주어야 하는데 {describe(result)}입니다."))
    return result




def _state(module_cls, seed, *args):
    torch.manual_seed(seed)
    module = module_cls(*args)
    with torch.no_grad():                      # LayerNorms start at 1 and 0: make them count too
        for name, parameter in module.named_parameters():
            if "norm" in name:
                parameter.add_(0.3 * torch.randn_like(parameter))
    return module, {k: v.clone() for k, v in module.state_dict().items()}


def _reference_gradients(module, run, inputs, grad_output):
    """Gradients of sum(run(*inputs) * grad_output) for the reference: (input grads); the
    parameters' gradients (if ``module`` is given) are left in its ``.grad``."""
    if module is not None:
        module.zero_grad(set_to_none=True)
    leaves = [tensor.clone().requires_grad_(True) for tensor in inputs]
    outputs = run(*leaves)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    grad_output = grad_output if isinstance(grad_output, tuple) else (grad_output,)
    sum((out * g).sum() for out, g in zip(outputs, grad_output) if g is not None).backward()
    return [leaf.grad.numpy() for leaf in leaves]


def _expect_differentiable(name, call, towards):
    expect_true(call.differentiable,
                say(f"{name}: the value is right, but no gradient can flow back to {towards}: "
                    f"{call.reason}. Training calls backward() on this, so build it from torch "
                    f"operations on the tensors you are given.",
                    f"{name}: 값은 맞지만 {towards}(으)로 기울기가 거슬러 흐를 수 없습니다: "
                    f"{call.reason}. 학습은 이 값에 backward()를 호출하므로, 주어진 텐서에 torch 연산을 "
                    f"써서 만드십시오."))


def _expect_parameter_gradients(name, call, module):
    """Every parameter of the reference ``module`` got the same gradient in the student's module."""
    for pname, parameter in module.named_parameters():
        got = call.params.get(pname, "missing")
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


def _loaded(module_cls, state, *args):
    module = module_cls(*args)
    module.load_state_dict(state)
    return module


def _padding(lengths, T):
    lengths = torch.as_tensor(lengths)
    return torch.arange(T)[None, :] >= lengths[:, None]          # (B, T) True on padding


# ------------------------------------------------------------------ scaled dot-product attention

SDPA_SHAPES = [((), 4, 4, 3, 3), ((2,), 5, 7, 4, 6), ((3, 2), 1, 6, 8, 2), ((2, 3), 7, 3, 5, 1)]


def _sdpa(student, q, k, v, mask, what):
    out, weights = _pair("scaled_dot_product_attention(q, k, v, mask)",
                         student.scaled_dot_product_attention(q, k, v, mask))
    lead, U, T, d_v = tuple(q.shape[:-2]), q.shape[-2], k.shape[-2], v.shape[-1]
    out = expect_shape(say(f"out returned by scaled_dot_product_attention ({what})",
                           f"scaled_dot_product_attention이 돌려준 out ({what})"), out, lead + (U, d_v),
                       "..., U, d_v")
    weights = expect_shape(say(f"weights returned by scaled_dot_product_attention ({what})",
                               f"scaled_dot_product_attention이 돌려준 weights ({what})"), weights,
                           lead + (U, T), "..., U, T")
    return out, weights


def _want_weights(q, k, mask):
    scores = q @ k.transpose(-2, -1) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).numpy()


@hidden_test("test_scaled_dot_product_attention")
def _(student):
    for seed, (lead, U, T, d_k, d_v) in enumerate(SDPA_SHAPES):
        q, k, v = _randn(seed, *lead, U, d_k), _randn(10 + seed, *lead, T, d_k), _randn(20 + seed, *lead, T, d_v)
        what = say(f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, no mask",
                   f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, 마스크 없음")
        out, weights = _sdpa(student, q, k, v, None, what)
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v).numpy()
        expect_close(f"weights ({what})", weights, _want_weights(q, k, None), **TOL,
                     what=say("softmax over the keys of q k^T / sqrt(d_k)", "키에 대한 q k^T / sqrt(d_k)의 소프트맥스"))
        expect_close(f"out ({what})", out, want, **TOL,
                     what="torch.nn.functional.scaled_dot_product_attention(q, k, v)")
    # the lab says the functions do not modify their arguments
    q, k, v = _randn(21, 2, 3, 4), _randn(22, 2, 5, 4), _randn(23, 2, 5, 2)
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[1, :, 3:] = False
    before = [q.clone(), k.clone(), v.clone(), mask.clone()]
    call = student.observe.scaled_dot_product_attention(q, k, v, mask)
    changed = call.changed(before)
    expect_true(not changed, say(f"scaled_dot_product_attention modified its argument(s) {', '.join(changed)}: "
                                 f"the lab asks you to leave q, k, v and mask as they are.",
                                 f"scaled_dot_product_attention이 인자 {', '.join(changed)}을(를) 바꾸었습니다: "
                                 f"실습은 q, k, v, mask를 그대로 두라고 합니다."))
    # gradients reach q, k and v (training backpropagates through attention)
    q, k, v = _randn(25, 2, 4, 3), _randn(26, 2, 6, 3), _randn(27, 2, 6, 5)
    g_out = _randn(28, 2, 4, 5)
    call = student.gradients(wrt=(0, 1, 2), grad_output=(g_out, None)).scaled_dot_product_attention(q, k, v, None)
    _expect_differentiable("scaled_dot_product_attention(q, k, v)", call, say("q, k and v", "q, k, v"))
    wants = _reference_gradients(None, lambda q_, k_, v_: ref.scaled_dot_product_attention(q_, k_, v_)[0],
                                 [q, k, v], g_out)
    for key, name, want in zip("012", "qkv", wants):
        expect_true(call.grads.get(key) is not None,
                    say(f"scaled_dot_product_attention: no gradient reaches {name}; is it detached on the way?",
                        f"scaled_dot_product_attention: {name}에 기울기가 닿지 않습니다. 가는 길에 떼어 "
                        f"냈습니까(detach)?"))
        expect_close(say(f"the gradient of out with respect to {name}", f"{name}에 대한 out의 기울기"),
                     call.grads[key], want, rtol=1e-3,
                     atol=1e-5, what=say("the gradient of softmax(q k^T / sqrt(d_k)) v",
                                         "softmax(q k^T / sqrt(d_k)) v의 기울기"))


@hidden_test("test_attention_mask")
def _(student):
    """A padding mask (B, 1, 1, T) and a per-query mask (U, T), broadcast by the student."""
    B, n_h, U, T, d_k, d_v = 3, 2, 5, 6, 4, 3
    q, k, v = _randn(30, B, n_h, U, d_k), _randn(31, B, n_h, T, d_k), _randn(32, B, n_h, T, d_v)
    lengths = torch.tensor([6, 2, 4])
    padding = ~_padding(lengths, T)[:, None, None, :]                 # (B, 1, 1, T) True = may look
    causal = torch.ones(U, T, dtype=torch.bool).tril(diagonal=1)      # (U, T) each query sees t <= u + 1
    for mask, what in ((padding, say("a padding mask of shape (B, 1, 1, T)", "모양 (B, 1, 1, T)인 패딩 마스크")),
                       (causal, say("a mask of shape (U, T), different for every query",
                                    "쿼리마다 다른, 모양 (U, T)인 마스크"))):
        out, weights = _sdpa(student, q, k, v, mask, what)
        blocked = ~mask.expand(B, n_h, U, T).numpy()
        expect_true(np.all(np.abs(weights[blocked]) < 1e-7),
                    say(f"with {what}, weights is not 0 where the mask is False (largest there: "
                        f"{np.abs(weights[blocked]).max():.3g}): a masked key must get exactly zero weight.",
                        f"{what}일 때 마스크가 False인 곳에서 weights가 0이 아닙니다 (그곳의 최댓값: "
                        f"{np.abs(weights[blocked]).max():.3g}): 가려진 키의 가중치는 정확히 0이어야 합니다."))
        expect_close(say(f"weights with {what}", f"{what}일 때 weights"), weights, _want_weights(q, k, mask), **TOL,
                     what=say("softmax over the allowed keys only", "허용된 키에 대해서만 취한 소프트맥스"))
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).numpy()
        expect_close(say(f"out with {what}", f"{what}일 때 out"), out, want, **TOL,
                     what="torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)")
    # scores of order 1e4, the largest on blocked keys: a mask added as -1e4 lets them win.
    # d_k = 1 and keys spaced far apart, so that every allowed row is exactly one-hot.
    t = torch.arange(T, dtype=torch.float32)
    k = (6.0 * t)[None, None, :, None].expand(B, n_h, T, 1).clone()                # keys 0, 6, 12, ...
    q = torch.full((B, n_h, U, 1), 2000.0)                                         # scores up to 6e4
    v = _randn(33, B, n_h, T, d_v)
    for mask, what in ((padding, say("a padding mask (B, 1, 1, T) and scores of order 1e4",
                                     "패딩 마스크 (B, 1, 1, T)와 크기 1e4 정도의 점수")),
                       (causal, say("a mask (U, T) and scores of order 1e4, the largest on blocked keys",
                                    "마스크 (U, T)와 크기 1e4 정도의 점수 (가장 큰 점수는 가려진 키에)"))):
        out, weights = _sdpa(student, q, k, v, mask, what)
        expect_close(say(f"weights with {what}", f"{what}일 때 weights"), weights, _want_weights(q, k, mask), **TOL,
                     what=say("softmax over the allowed keys only (fill blocked scores with -inf: a "
                              "large negative number added to a score of 1e4 can still win)",
                              "허용된 키에 대해서만 취한 소프트맥스 (가려진 점수는 -inf로 채우십시오: 큰 음수를 "
                              "더해도 1e4 점수는 여전히 이길 수 있습니다)"))
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).numpy()
        expect_close(say(f"out with {what}", f"{what}일 때 out"), out, want, **TOL,
                     what="torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)")


# ------------------------------------------------------------------------------ heads

def _expect_tensor(name, handle):
    """The object behind ``handle`` (kept in the sandbox) is a torch tensor: results cross the wire
    as numpy arrays, so the type is asked where the object lives, through a method only a tensor has."""
    try:
        kind = handle.type()
    except StudentError:
        kind = None
    expect_true(isinstance(kind, str) and kind.startswith("torch."),
                say(f"{name} should return a torch tensor (the lab asks for one; the modules built on it "
                    f"compute with tensors and training backpropagates through them), got something that is "
                    f"not a tensor (a numpy array?). Build it with torch operations.",
                    f"{name}은(는) torch 텐서를 돌려주어야 하는데 (실습이 요구합니다: 그 위에 만든 모듈은 "
                    f"텐서로 계산하고, 학습은 텐서를 거쳐 역전파합니다) 텐서가 아닌 것(numpy 배열?)을 "
                    f"돌려주었습니다. torch 연산으로 만드십시오."))


HEAD_SHAPES = [(5, 2, 12, 3), (4, 3, 8, 8), (7, 1, 6, 1), (1, 2, 10, 2)]   # (T, B, d_model, n_heads)


@hidden_test("test_split_heads")
def _(student):
    for seed, (T, B, d_model, n_heads) in enumerate(HEAD_SHAPES):
        x = _randn(40 + seed, T, B, d_model)
        if seed == 0:
            _expect_tensor(f"split_heads(x, {n_heads})", student.keep.split_heads(x, n_heads))
        got = expect_shape(say(f"split_heads(x, {n_heads}) with x of shape {(T, B, d_model)}",
                               f"x의 모양이 {(T, B, d_model)}일 때 split_heads(x, {n_heads})"),
                           student.split_heads(x, n_heads), (B, n_heads, T, d_model // n_heads),
                           "B, n_heads, T, d_head")
        expect_close(say(f"split_heads(x, {n_heads}) with x of shape {(T, B, d_model)}",
                         f"x의 모양이 {(T, B, d_model)}일 때 split_heads(x, {n_heads})"), got,
                     ref.split_heads(x, n_heads).numpy(), rtol=0, atol=0,
                     what=say("x[t, b, h * d_head + j] at index (b, h, t, j)",
                              "인덱스 (b, h, t, j)에 x[t, b, h * d_head + j]"))


@hidden_test("test_merge_heads")
def _(student):
    for seed, (T, B, d_model, n_heads) in enumerate(HEAD_SHAPES):
        heads = _randn(50 + seed, B, n_heads, T, d_model // n_heads)
        if seed == 0:
            _expect_tensor("merge_heads(x)", student.keep.merge_heads(heads))
        got = expect_shape(say(f"merge_heads(x) with x of shape {tuple(heads.shape)}",
                               f"x의 모양이 {tuple(heads.shape)}일 때 merge_heads(x)"), student.merge_heads(heads),
                           (T, B, d_model), "T, B, d_model")
        expect_close(say(f"merge_heads(x) with x of shape {tuple(heads.shape)}",
                         f"x의 모양이 {tuple(heads.shape)}일 때 merge_heads(x)"), got,
                     ref.merge_heads(heads).numpy(), rtol=0, atol=0,
                     what=say("x[b, h, t, j] at index (t, b, h * d_head + j)",
                              "인덱스 (t, b, h * d_head + j)에 x[b, h, t, j]"))


# ------------------------------------------------------------------ multi-head self-attention

def torch_mha(seed, d_model, n_heads):
    """A seeded torch.nn.MultiheadAttention and its weights under the notebook's names."""
    torch.manual_seed(seed)
    mha = torch.nn.MultiheadAttention(d_model, n_heads)
    with torch.no_grad():
        mha.in_proj_bias.normal_(0, 0.5)                # torch starts the biases at zero
        mha.out_proj.bias.normal_(0, 0.5)
    state = {}
    for name, w, b in zip(("W_q", "W_k", "W_v"), mha.in_proj_weight.detach().chunk(3),
                          mha.in_proj_bias.detach().chunk(3)):
        state[f"{name}.weight"], state[f"{name}.bias"] = w.clone(), b.clone()
    state["W_o.weight"] = mha.out_proj.weight.detach().clone()
    state["W_o.bias"] = mha.out_proj.bias.detach().clone()
    return mha.eval(), state


def _mhsa(handle, x, mask, what, n_heads):
    T, B, d_model = x.shape
    out, weights = _pair("MultiHeadSelfAttention.forward(x, key_padding_mask)", handle.forward(x, mask))
    out = expect_shape(say(f"out of MultiHeadSelfAttention ({what})", f"MultiHeadSelfAttention의 out ({what})"),
                       out, (T, B, d_model), "T, B, d_model")
    weights = expect_shape(say(f"weights of MultiHeadSelfAttention ({what})",
                               f"MultiHeadSelfAttention의 weights ({what})"), weights, (B, n_heads, T, T),
                           "B, n_heads, T, T")
    return out, weights


MHSA_SIZES = [(7, 2, 12, 3), (4, 3, 8, 1), (5, 1, 16, 4), (1, 2, 6, 2)]    # odd T, one head, T = 1


@hidden_test("test_mhsa_matches_torch")
def _(student):
    for seed, (T, B, d_model, n_heads) in enumerate(MHSA_SIZES):
        mha, state = torch_mha(60 + seed, d_model, n_heads)
        handle = with_weights(student, "MultiHeadSelfAttention", state, d_model, n_heads)
        x = _randn(70 + seed, T, B, d_model)
        what = say(f"T = {T}, B = {B}, d_model = {d_model}, n_heads = {n_heads}, no mask",
                   f"T = {T}, B = {B}, d_model = {d_model}, n_heads = {n_heads}, 마스크 없음")
        out, weights = _mhsa(handle, x, None, what, n_heads)
        with torch.no_grad():
            want, want_weights = mha(x, x, x, average_attn_weights=False)
        expect_close(say(f"weights of MultiHeadSelfAttention ({what})", f"MultiHeadSelfAttention의 weights ({what})"),
                     weights, want_weights.numpy(), **TOL,
                     what=say("torch.nn.MultiheadAttention's weights per head",
                              "헤드별 torch.nn.MultiheadAttention의 가중치"))
        expect_close(say(f"out of MultiHeadSelfAttention ({what})", f"MultiHeadSelfAttention의 out ({what})"),
                     out, want.numpy(), **TOL,
                     what=say("torch.nn.MultiheadAttention with the same weights",
                              "같은 가중치를 준 torch.nn.MultiheadAttention"))
        g_out = _randn(75 + seed, T, B, d_model)
        call = handle.gradients(wrt=(0,), grad_output=(g_out, None)).forward(x, None)
        _expect_differentiable(f"MultiHeadSelfAttention ({what})", call, say("x and the weights", "x와 가중치"))
        module = _loaded(ref.MultiHeadSelfAttention, state, d_model, n_heads)
        (want_x,) = _reference_gradients(module, lambda x_: module(x_)[0], [x], g_out)
        expect_close(say(f"the gradient of MultiHeadSelfAttention's out with respect to x ({what})",
                         f"x에 대한 MultiHeadSelfAttention의 out의 기울기 ({what})"), call.grads["0"],
                     want_x, rtol=1e-3, atol=1e-5, what=say("the reference's gradient", "참조 구현의 기울기"))
        _expect_parameter_gradients(f"MultiHeadSelfAttention ({what})", call, module)


@hidden_test("test_mhsa_key_padding")
def _(student):
    """With key_padding_mask: as torch does, and real frames never see padding (padding invariance)."""
    for seed, (lengths, d_model, n_heads) in enumerate([([5, 2, 4], 12, 3), ([3, 7], 8, 1), ([1, 4], 16, 4)]):
        mha, state = torch_mha(80 + seed, d_model, n_heads)
        handle = with_weights(student, "MultiHeadSelfAttention", state, d_model, n_heads)
        T = max(lengths) + 2                                               # padded past the longest, too
        x = _randn(90 + seed, T, len(lengths), d_model)
        pad = _padding(lengths, T)
        what = say(f"lengths {lengths} padded to T = {T}, d_model = {d_model}, n_heads = {n_heads}",
                   f"길이 {lengths}를 T = {T}로 패딩, d_model = {d_model}, n_heads = {n_heads}")
        out, weights = _mhsa(handle, x, pad, what, n_heads)
        with torch.no_grad():
            want, want_weights = mha(x, x, x, key_padding_mask=pad, average_attn_weights=False)
        for b, n in enumerate(lengths):
            expect_close(say(f"weights[{b}, :, :{n}] of MultiHeadSelfAttention ({what})",
                             f"MultiHeadSelfAttention의 weights[{b}, :, :{n}] ({what})"), weights[b, :, :n],
                         want_weights[b, :, :n].numpy(), **TOL,
                         what=say("torch.nn.MultiheadAttention's weights with the same key_padding_mask "
                                  "(padded keys get weight 0)",
                                  "같은 key_padding_mask를 준 torch.nn.MultiheadAttention의 가중치 (패딩된 "
                                  "키의 가중치는 0)"))
            expect_close(say(f"out[:{n}, {b}] of MultiHeadSelfAttention ({what})",
                             f"MultiHeadSelfAttention의 out[:{n}, {b}] ({what})"), out[:n, b],
                         want[:n, b].numpy(), **TOL,
                         what=say("torch.nn.MultiheadAttention with the same key_padding_mask",
                                  "같은 key_padding_mask를 준 torch.nn.MultiheadAttention"))
            for scale in (1.0, 1e5):                                       # 1e5: scores of order 1e5 there
                x_other = x.clone()
                x_other[n:, b] = scale * _randn(99 + b, T - n, d_model)    # change only the padding
                other, _ = _mhsa(handle, x_other, pad, what, n_heads)
                expect_close(say(f"out[:{n}, {b}] after changing only the padded frames of utterance {b}"
                                 f"{' to values of order 1e5' if scale > 1 else ''}",
                                 f"발화 {b}의 패딩 프레임만{' 크기 1e5 정도의 값으로' if scale > 1 else ''} "
                                 f"바꾼 뒤의 out[:{n}, {b}]"),
                             other[:n, b], out[:n, b], **TOL,
                             what=say("the same output as before (padding must not change real frames; fill "
                                      "masked scores with -inf, a large negative number added to a huge "
                                      "score can still win)",
                                      "바꾸기 전과 같은 출력 (패딩이 실제 프레임을 바꾸면 안 됩니다: 가려진 점수를 "
                                      "-inf로 채우십시오. 큰 음수를 더해도 아주 큰 점수는 여전히 이길 수 "
                                      "있습니다)"))


@hidden_test("test_mhsa_head_count")
def _(student):
    for d_model, n_heads in ((10, 3), (8, 3), (6, 4)):
        try:
            student.keep.MultiHeadSelfAttention(d_model, n_heads)
        except StudentError as error:
            expect_true("ValueError" in str(error),
                        say(f"MultiHeadSelfAttention({d_model}, {n_heads}) should raise a ValueError that "
                            f"says d_model is not divisible by n_heads; it {str(error).split(' ', 1)[-1]}.",
                            f"MultiHeadSelfAttention({d_model}, {n_heads})은(는) d_model이 n_heads로 나누어 "
                            f"떨어지지 않는다고 말하는 ValueError를 일으켜야 합니다. 실제로는: {error}."))
            continue
        raise CheckFailed(say(f"MultiHeadSelfAttention({d_model}, {n_heads}) did not raise: {d_model} "
                              f"features cannot be split into {n_heads} heads of equal size. Raise a "
                              f"ValueError that says so in __init__.",
                              f"MultiHeadSelfAttention({d_model}, {n_heads})이(가) 오류를 일으키지 않았습니다: "
                              f"특징 {d_model}개는 같은 크기의 헤드 {n_heads}개로 나눌 수 없습니다. __init__에서 "
                              f"그렇게 말하는 ValueError를 일으키십시오."))
    for d_model, n_heads in ((12, 3), (5, 1), (8, 8)):
        student.keep.MultiHeadSelfAttention(d_model, n_heads)            # these must work


# ------------------------------------------------------------------------------ positions

@hidden_test("test_sinusoidal_positions")
def _(student):
    _expect_tensor("sinusoidal_positions(7, 8)", student.keep.sinusoidal_positions(7, 8))
    for T, d in ((7, 8), (50, 16), (1, 4), (13, 2), (101, 64)):
        P = student.sinusoidal_positions(T, d)
        expect_dtype(say(f"sinusoidal_positions({T}, {d}) (the lab asks for float32, the dtype of the frames)",
                         f"sinusoidal_positions({T}, {d}) (실습은 프레임의 dtype인 float32를 요구합니다)"), P,
                     "float32")
        got = expect_shape(f"sinusoidal_positions({T}, {d})", P, (T, d), "T, d")
        expect_close(f"sinusoidal_positions({T}, {d})", got, ref.sinusoidal_positions(T, d).numpy(),
                     rtol=1e-4, atol=1e-5,
                     what=say("P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(t / 10000^(2i/d)), t from 0",
                              "P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(t / 10000^(2i/d)), t는 0부터"))


# ------------------------------------------------------------------------------ encoder layer

@hidden_test("test_encoder_layer")
def _(student):
    """Pre-norm, residual, feed-forward, judged against the reference with known weights: first with
    W_o's weight zero (the attention sublayer then adds only its bias, so the message can say the
    mistake is in the layer itself), then with every weight, with and without a key_padding_mask.
    The full-weight check is never waived: a wrong attention module costs this cell too."""
    for seed, (lengths, d_model, n_heads, d_ff) in enumerate([([6, 6], 12, 3, 20), ([5, 5, 5], 8, 2, 16),
                                                              ([3], 4, 1, 8), ([4, 7, 2], 8, 2, 16)]):
        T, B = 7 if seed == 3 else max(lengths), len(lengths)
        x = 2 * _randn(110 + seed, T, B, d_model)
        pad = _padding(lengths, T) if seed == 3 else None               # padded, the longest not first
        what = f"T = {T}, B = {B}, d_model = {d_model}, n_heads = {n_heads}, d_ff = {d_ff}"
        for silent in (True, False):
            _, state = _state(ref.EncoderLayer, 100 + seed, d_model, n_heads, d_ff)
            if silent:
                state["attention.W_o.weight"].zero_()
            module = _loaded(ref.EncoderLayer, state, d_model, n_heads, d_ff)
            layer = with_weights(student, "EncoderLayer", state, d_model, n_heads, d_ff)
            out, weights = _pair("EncoderLayer.forward(x, key_padding_mask)", layer.forward(x, pad))
            out = expect_shape(f"EncoderLayer.forward ({what})", out, (T, B, d_model), "T, B, d_model")
            with torch.no_grad():
                want, want_weights = (t.numpy() for t in module(x, pad))
            case = say("with W_o's weight zero, so attention adds only its bias b_o",
                       "W_o의 가중치가 0이라 어텐션은 편향 b_o만 더함") if silent else say("all weights", "모든 가중치")
            if pad is not None:
                case += say(f", key_padding_mask of lengths {lengths}", f", 길이 {lengths}의 key_padding_mask")
                out, want = np.concatenate([out[:n, b] for b, n in enumerate(lengths)]), \
                    np.concatenate([want[:n, b] for b, n in enumerate(lengths)])
            expect_close(f"EncoderLayer.forward(x) ({what}; {case})", out, want, **TOL,
                         what=say("x' = x + attention(norm1(x)), then x' + feed_forward(norm2(x')) (pre-norm)",
                                  "x' = x + attention(norm1(x)), 그다음 x' + feed_forward(norm2(x')) (pre-norm)"))
            if not silent:
                weights = expect_shape(say("weights returned by EncoderLayer.forward",
                                           "EncoderLayer.forward가 돌려준 weights"), weights,
                                       (B, n_heads, T, T), "B, n_heads, T, T")
                for b, n in enumerate(lengths):                         # the real queries' rows
                    expect_close(say(f"the weights weights[{b}, :, :{n}] returned by EncoderLayer.forward "
                                     f"({what}; {case})",
                                     f"EncoderLayer.forward가 돌려준 가중치 weights[{b}, :, :{n}] "
                                     f"({what}; {case})"), weights[b, :, :n], want_weights[b, :, :n], **TOL,
                                 what=say("the weights of its attention on norm1(x)",
                                          "norm1(x)에 대한 그 층의 어텐션 가중치"))
            if silent or pad is not None:
                g_out = _randn(115 + seed, T, B, d_model)
                if pad is not None:
                    g_out = g_out.masked_fill(pad.T[:, :, None], 0.0)  # the loss sees the real frames only
                call = layer.gradients(wrt=(0,), grad_output=(g_out, None)).forward(x, pad)
                _expect_differentiable(f"EncoderLayer.forward ({what})", call, say("x and the weights", "x와 가중치"))
                (want_x,) = _reference_gradients(module, lambda x_: module(x_, pad)[0], [x], g_out)
                expect_close(say(f"the gradient of EncoderLayer's output with respect to x ({what}; {case})",
                                 f"x에 대한 EncoderLayer의 출력의 기울기 ({what}; {case})"),
                             call.grads["0"], want_x, rtol=1e-3, atol=1e-5,
                             what=say("the reference's gradient", "참조 구현의 기울기"))
                if not silent:
                    _expect_parameter_gradients(f"EncoderLayer.forward ({what}; {case})", call, module)


# ------------------------------------------------------------------------------ encoder

def _encoder(student, seed, n_in, d_model, n_heads, d_ff, n_layers, positions):
    _, state = _state(ref.Encoder, seed, n_in, d_model, n_heads, d_ff, n_layers, positions)
    return state, with_weights(student, "Encoder", state, n_in, d_model, n_heads, d_ff, n_layers, positions)


def _encode(encoder, x, lengths, d_model, n_layers, n_heads):
    T, B, _ = x.shape
    states, maps = _pair("Encoder.forward(x, lengths)", encoder.forward(x, torch.as_tensor(lengths)))
    states = expect_shape(say("states returned by Encoder.forward", "Encoder.forward가 돌려준 states"), states,
                          (T, B, d_model), "T, B, d_model")
    expect_true(isinstance(maps, (list, tuple)) and len(maps) == n_layers,
                say(f"Encoder.forward should return (states, maps) with one map per layer ({n_layers}), "
                    f"got maps = {describe(maps)}.",
                    f"Encoder.forward는 층마다 맵이 하나씩({n_layers}개) 있는 (states, maps)를 돌려주어야 "
                    f"하는데 maps = {describe(maps)}입니다."))
    for i, m in enumerate(maps):
        expect_shape(say(f"maps[{i}] returned by Encoder.forward", f"Encoder.forward가 돌려준 maps[{i}]"), m,
                     (B, n_heads, T, T), "B, n_heads, T, T")
    return states


def _reference_states(state, x, lengths, *sizes):
    module = _loaded(ref.Encoder, state, *sizes)
    with torch.no_grad():
        return module, module(x, torch.as_tensor(lengths))[0].numpy()


def _expect_states(name, states, want, lengths, what):
    """The real frames' states equal the reference's (padded frames' states are not judged)."""
    for b, n in enumerate(lengths):
        expect_close(f"{name}: states[:{n}, {b}]", states[:n, b], want[:n, b], **TOL, what=what)


ENCODER_WHAT = ("the reference encoder with the same weights: norm(layers(front(x) + P)), P added once "
                "before the first layer, the layers chained (each takes the previous one's output), "
                "one LayerNorm at the end, padded frames masked out as keys in every layer (from lengths)")
ENCODER_WHAT_KO = ("같은 가중치를 준 참조 인코더: norm(layers(front(x) + P)). P는 첫 층 전에 한 번 더하고, "
                   "층은 사슬로 잇고(각 층이 앞 층의 출력을 받음), 끝에 LayerNorm 하나, 패딩 프레임은 모든 층에서 "
                   "키로서 가림(lengths로)")


@hidden_test("test_encoder_positions")
def _(student):
    """front, + P before any layer, the layers chained, final norm: compared with the reference with
    known weights, with no layers (then the test does not depend on the student's layers) and with
    two and three. The student's sinusoidal_positions is used only after it was checked right for
    the same T and d_model."""
    for seed, (T, B, n_in, d_model, n_heads, n_layers) in enumerate(
            [(9, 2, 5, 8, 1, 0), (4, 1, 3, 12, 1, 0), (6, 3, 4, 4, 1, 0), (7, 2, 5, 8, 2, 2), (5, 3, 4, 12, 3, 3)]):
        d_ff = 8 if n_layers == 0 else 2 * d_model
        P = expect_shape(f"sinusoidal_positions({T}, {d_model})", student.sinusoidal_positions(T, d_model),
                         (T, d_model), "T, d")
        expect_true(np.allclose(P, ref.sinusoidal_positions(T, d_model).numpy(), rtol=1e-4, atol=1e-5),
                    say(f"Encoder cannot be checked while sinusoidal_positions({T}, {d_model}) is wrong: its "
                        f"positions are yours (see the test of sinusoidal_positions).",
                        f"sinusoidal_positions({T}, {d_model})이(가) 틀린 동안에는 Encoder를 확인할 수 없습니다: "
                        f"Encoder의 위치는 여러분의 것입니다 (sinusoidal_positions의 테스트를 보십시오)."))
        sizes = (n_in, d_model, n_heads, d_ff, n_layers, True)
        module, state = _state(ref.Encoder, 120 + seed, *sizes)
        encoder = with_weights(student, "Encoder", state, *sizes)
        x, lengths = _randn(130 + seed, T, B, n_in), [T] * B
        states = _encode(encoder, x, lengths, d_model, n_layers, n_heads)
        with torch.no_grad():
            want = module(x, torch.tensor(lengths))[0].numpy()
        expect_close(say(f"Encoder(..., n_layers={n_layers}).forward states (T = {T}, B = {B}, positions on)",
                         f"Encoder(..., n_layers={n_layers}).forward의 states (T = {T}, B = {B}, 위치 켬)"), states,
                     want, **TOL, what=say("norm(front(x) + P) with no layers", "층이 없을 때 norm(front(x) + P)")
                     if n_layers == 0 else say(ENCODER_WHAT, ENCODER_WHAT_KO))
        if n_layers == 0 or n_layers == 2:
            g_out = _randn(135 + seed, T, B, d_model)
            call = encoder.gradients(wrt=(0,), grad_output=(g_out, [None] * n_layers)).forward(
                x, torch.tensor(lengths))
            _expect_differentiable("Encoder.forward", call, say("x and the weights", "x와 가중치"))
            _reference_gradients(module, lambda x_: module(x_, torch.tensor(lengths))[0], [x], g_out)
            _expect_parameter_gradients(f"Encoder(..., n_layers={n_layers}).forward", call, module)


@hidden_test("test_encoder_padding")
def _(student):
    """Compared with the reference with known weights (two and three layers) on a padded batch whose
    longest utterance is shorter than T and not first, with a real all-zero frame inside an
    utterance (padding comes from lengths, not from zero frames); then each utterance gives the
    same states alone as in the batch."""
    for seed, (lengths, positions, n_layers) in enumerate([([3, 7, 5], True, 2), ([2, 6], False, 2),
                                                           ([4, 1, 6], True, 3)]):
        n_in, d_model, n_heads, d_ff = 4, 8, 2, 16
        sizes = (n_in, d_model, n_heads, d_ff, n_layers, positions)
        state, encoder = _encoder(student, 140 + seed, *sizes)
        T = max(lengths) + 2
        x = _randn(150 + seed, T, len(lengths), n_in)
        for b, n in enumerate(lengths):
            x[n:, b] = 0
        x[1, 0] = 0.0                                    # a real frame of zeros, inside utterance 0
        states = _encode(encoder, x, lengths, d_model, n_layers, n_heads)
        _, want = _reference_states(state, x, lengths, *sizes)
        _expect_states(say(f"Encoder(..., n_layers={n_layers}, positions={positions}).forward(x, lengths) with "
                           f"lengths {lengths}, T = {T}, frame 1 of utterance 0 all zeros",
                           f"길이 {lengths}, T = {T}, 발화 0의 프레임 1이 모두 0일 때 "
                           f"Encoder(..., n_layers={n_layers}, positions={positions}).forward(x, lengths)"),
                       states, want, lengths, say(ENCODER_WHAT, ENCODER_WHAT_KO))
        for b, n in enumerate(lengths):
            alone = _encode(encoder, x[:n, b:b + 1], [n], d_model, n_layers, n_heads)
            expect_close(say(f"states[:{n}, {b}] of utterance {b} ({n} frames) in a batch padded to {T} frames",
                             f"프레임 {T}개로 패딩된 배치 안에서 발화 {b} (프레임 {n}개)의 states[:{n}, {b}]"),
                         states[:n, b], alone[:, 0], **TOL,
                         what=say("its states when encoded alone (padded frames must be masked out as keys "
                                  "in every layer, using lengths)",
                                  "따로 인코딩했을 때의 states (패딩 프레임은 모든 층에서 lengths로 키로서 "
                                  "가려야 합니다)"))


@hidden_test("test_encoder_equivariance")
def _(student):
    """Without positions, shuffling the frames shuffles the states the same way; with them, it does
    not. The unshuffled states are first compared with the reference (known weights): a property
    alone would pass an encoder that ignores its input."""
    n_in, d_model, n_heads, d_ff, n_layers, T = 4, 8, 2, 16, 2, 9
    x = _randn(160, T, 1, n_in)
    perm = torch.from_numpy(np.random.default_rng(161).permutation(T))
    for positions in (False, True):
        sizes = (n_in, d_model, n_heads, d_ff, n_layers, positions)
        state, encoder = _encoder(student, 170, *sizes)
        states = _encode(encoder, x, [T], d_model, n_layers, n_heads)
        _, want = _reference_states(state, x, [T], *sizes)
        _expect_states(f"Encoder(..., positions={positions}).forward(x, lengths)", states, want, [T],
                       say(ENCODER_WHAT, ENCODER_WHAT_KO))
        shuffled = _encode(encoder, x[perm], [T], d_model, n_layers, n_heads)
        if not positions:
            expect_close(say("Encoder(..., positions=False) on shuffled frames x[perm]",
                             "순서를 섞은 프레임 x[perm]에서 Encoder(..., positions=False)"), shuffled,
                         states[perm.numpy()], **TOL,
                         what=say("the states of the unshuffled frames, shuffled the same way (without "
                                  "positions self-attention cannot see order)",
                                  "섞지 않은 프레임의 states를 같은 방식으로 섞은 것 (위치가 없으면 자기 어텐션은 "
                                  "순서를 볼 수 없습니다)"))
        else:
            gap = np.abs(shuffled - states[perm.numpy()]).max()
            expect_true(gap > 1e-3, say("Encoder(..., positions=True) gives the same states, shuffled, for "
                                        "shuffled frames: the positions are not added (check self.positions).",
                                        "Encoder(..., positions=True)가 섞은 프레임에 대해 같은 states를 섞은 "
                                        "순서로 줍니다: 위치가 더해지지 않았습니다 (self.positions를 확인하십시오)."))
