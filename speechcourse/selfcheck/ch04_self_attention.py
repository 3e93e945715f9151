"""Visible self-checks of lab 4 (self-attention).

They run in your notebook and explain in words what is wrong. Their references are PyTorch's
own ``torch.nn.functional.scaled_dot_product_attention`` and ``torch.nn.MultiheadAttention``,
small cases worked out by hand, and properties any right answer has (a layer whose sublayers
output zero is the identity; without positions, shuffled frames give shuffled states; padding
does not change real frames). Passing them is a good sign, not a guarantee: the grader tests
more cases.
"""
from __future__ import annotations

import numpy as np
import torch

from speechcourse.checks import CheckFailed, as_array, describe, expect_close, expect_shape, expect_true
from speechcourse.language import say
from speechcourse.selfcheck import self_check


def _pair(name, result):
    expect_true(isinstance(result, (tuple, list)) and len(result) == 2,
                say(f"{name} should return a pair: `return out, weights`; got {describe(result)}.",
                    f"{name}은(는) 쌍을 돌려주어야 합니다 (`return out, weights`). 받은 값: {describe(result)}."))
    return result


def _randn(seed, *shape):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# ------------------------------------------------------------------ scaled dot-product attention

def _attention(f, q, k, v, mask):
    with torch.no_grad():
        out, weights = _pair("scaled_dot_product_attention(q, k, v, mask)", f(q, k, v, mask))
    lead, U, T, d_v = tuple(q.shape[:-2]), q.shape[-2], k.shape[-2], v.shape[-1]
    out = expect_shape(say("out returned by scaled_dot_product_attention", "scaled_dot_product_attention이 돌려준 out"), out, lead + (U, d_v), "..., U, d_v")
    weights = expect_shape(say("weights returned by scaled_dot_product_attention", "scaled_dot_product_attention이 돌려준 weights"), weights, lead + (U, T),
                           "..., U, T")
    return out, weights


@self_check("scaled_dot_product_attention")
def check_scaled_dot_product_attention(scaled_dot_product_attention) -> None:
    q, k, v = _randn(0, 2, 3, 4), _randn(1, 2, 5, 4), _randn(2, 2, 5, 6)   # (B, U, d_k), (B, T, d_k), (B, T, d_v)
    out, weights = _attention(scaled_dot_product_attention, q, k, v, None)
    if np.allclose(weights.sum(-2), 1, atol=1e-5) and not np.allclose(weights.sum(-1), 1, atol=1e-5):
        raise CheckFailed(say("the weights sum to 1 over the queries (axis -2): the softmax must run over "
                              "the keys, the last axis, so that each query's weights sum to 1.",
                              "가중치가 쿼리 축(axis -2)을 따라 합이 1입니다: 소프트맥스는 마지막 축인 키 축을 "
                              "따라 취해서, 쿼리마다 가중치의 합이 1이 되게 해야 합니다."))
    expect_close(say("each row of weights summed over the keys", "키에 대해 합한 weights의 각 행"), weights.sum(-1), np.ones((2, 3)), atol=1e-5,
                 what="1")
    expect_close("out", out, weights @ v.numpy(), atol=1e-5, what=say("weights @ v, with your own weights", "여러분이 구한 weights로 계산한 weights @ v"))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v).numpy()
    scores = (q @ k.transpose(-2, -1)).numpy()
    if np.allclose(out, (torch.softmax(torch.from_numpy(scores), -1) @ v).numpy(), atol=1e-5):
        raise CheckFailed(say("out is softmax(q k^T) v: divide the scores by sqrt(d_k) before the softmax.",
                              "out이 softmax(q k^T) v입니다: 소프트맥스 전에 점수를 sqrt(d_k)로 나누십시오."))
    expect_close(say("out of scaled_dot_product_attention(q, k, v)", "scaled_dot_product_attention(q, k, v)의 out"), out, want, atol=1e-5,
                 what="torch.nn.functional.scaled_dot_product_attention(q, k, v)")
    # training backpropagates through attention: the gradients must reach q, k and v
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    mine = scaled_dot_product_attention(*leaves, None)[0]
    expect_true(isinstance(mine, torch.Tensor) and mine.requires_grad,
                say("out of scaled_dot_product_attention is not connected to q, k and v for autograd: "
                    "use torch operations only (no .detach(), .numpy() or torch.no_grad()).",
                    "scaled_dot_product_attention의 out이 autograd에서 q, k, v와 이어져 있지 않습니다: "
                    "torch 연산만 쓰십시오 (.detach(), .numpy(), torch.no_grad() 없이)."))
    mine.sum().backward()
    theirs = [t.clone().requires_grad_(True) for t in (q, k, v)]
    torch.nn.functional.scaled_dot_product_attention(*theirs).sum().backward()
    for name, a, b in zip("qkv", leaves, theirs):
        expect_true(a.grad is not None, say(f"no gradient reaches {name} through scaled_dot_product_attention.",
                                            f"scaled_dot_product_attention을 거쳐 {name}에 닿는 기울기가 없습니다."))
        expect_close(say(f"the gradient of sum(out) with respect to {name}", f"{name}에 대한 sum(out)의 기울기"), a.grad, b.grad.numpy(), atol=1e-4,
                     what=say("the gradient through torch.nn.functional.scaled_dot_product_attention (is the "
                          "softmax detached?)", "torch.nn.functional.scaled_dot_product_attention을 거친 기울기 (소프트맥스를 "
                              "detach했습니까?)"))


@self_check("scaled_dot_product_attention with a mask", "마스크가 있을 때 scaled_dot_product_attention")
def check_attention_mask(scaled_dot_product_attention) -> None:
    B, n_h, T = 2, 2, 5
    q, k, v = _randn(3, B, n_h, T, 4), _randn(4, B, n_h, T, 4), _randn(5, B, n_h, T, 3)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])[:, None, None, :]   # (B, 1, 1, T)
    out, weights = _attention(scaled_dot_product_attention, q, k, v, mask)
    if np.abs(weights[1, :, :, 3:]).max() > 1e-7:
        raise CheckFailed(say("utterance 1 has 3 real frames, yet keys 3 and 4 (padding, mask False) get weight "
                              f"up to {np.abs(weights[1, :, :, 3:]).max():.3g}: masked scores must become -inf "
                              "before the softmax (not 0, which still gets weight).",
                              "발화 1의 실제 프레임은 3개인데 키 3과 4 (패딩, mask False)가 최대 "
                              f"{np.abs(weights[1, :, :, 3:]).max():.3g}의 가중치를 받습니다: 가려진 점수는 "
                              "소프트맥스 전에 -inf가 되어야 합니다 (0이면 여전히 가중치를 받습니다)."))
    expect_close(say("each row of weights summed over the keys", "키에 대해 합한 weights의 각 행"), weights.sum(-1), np.ones((B, n_h, T)), atol=1e-5,
                 what=say("1 (the allowed keys share all the weight)", "1 (허용된 키들이 가중치 전부를 나눠 가집니다)"))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).numpy()
    expect_close(say("out with a padding mask", "패딩 마스크가 있을 때 out"), out, want, atol=1e-5,
                 what="torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)")


# ------------------------------------------------------------------------------ heads

# T = 2 frames, B = 1, d_model = 4 features, 2 heads of 2, worked out by hand:
# frame 0 is [0, 1, 2, 3], frame 1 is [4, 5, 6, 7]; head 0 gets features 0-1, head 1 features 2-3.
_X = torch.arange(8, dtype=torch.float32).reshape(2, 1, 4)              # (T, B, d_model)
_HEADS = torch.tensor([[[[0., 1.], [4., 5.]], [[2., 3.], [6., 7.]]]])  # (B, n_h, T, d_head)


@self_check("split_heads")
def check_split_heads(split_heads) -> None:
    got = expect_shape(say("split_heads(x, 2) with x (T, B, d_model) = (2, 1, 4)", "x (T, B, d_model) = (2, 1, 4)일 때 split_heads(x, 2)"), split_heads(_X, 2), (1, 2, 2, 2),
                       "B, n_heads, T, d_head")
    if np.array_equal(got, _X.numpy().reshape(1, 2, 2, 2)):
        raise CheckFailed(say("split_heads reshapes (T, B, d_model) straight to (B, n_heads, T, d_head): head 0 then "
                              "holds frame 0 and head 1 frame 1. Split the features first, (T, B, n_heads, "
                              "d_head), then move the axes (permute or transpose).",
                              "split_heads가 (T, B, d_model)을 곧바로 (B, n_heads, T, d_head)로 reshape합니다: 그러면 "
                              "헤드 0에는 프레임 0이, 헤드 1에는 프레임 1이 들어갑니다. 먼저 특징을 (T, B, n_heads, "
                              "d_head)로 나눈 다음 축을 옮기십시오 (permute나 transpose)."))
    expect_close(say("split_heads(x, 2) for frames [0, 1, 2, 3] and [4, 5, 6, 7]", "프레임 [0, 1, 2, 3]과 [4, 5, 6, 7]에 대한 split_heads(x, 2)"), got, _HEADS.numpy(), atol=0,
                 what=say("head 0 = features 0-1 of each frame, head 1 = features 2-3", "헤드 0 = 각 프레임의 특징 0-1, 헤드 1 = 특징 2-3"))
    expect_shape(say("split_heads(x, 3) with x (T, B, d_model) = (5, 2, 12)", "x (T, B, d_model) = (5, 2, 12)일 때 split_heads(x, 3)"), split_heads(_randn(6, 5, 2, 12), 3),
                 (2, 3, 5, 4), "B, n_heads, T, d_head")


@self_check("merge_heads")
def check_merge_heads(merge_heads) -> None:
    got = expect_shape(say("merge_heads(heads) with heads (B, n_h, T, d_head) = (1, 2, 2, 2)", "heads (B, n_h, T, d_head) = (1, 2, 2, 2)일 때 merge_heads(heads)"), merge_heads(_HEADS),
                       (2, 1, 4), "T, B, d_model")
    expect_close(say("merge_heads of the two heads [[0, 1], [4, 5]] and [[2, 3], [6, 7]]", "두 헤드 [[0, 1], [4, 5]]와 [[2, 3], [6, 7]]의 merge_heads"), got, _X.numpy(), atol=0,
                 what=say("frames [0, 1, 2, 3] and [4, 5, 6, 7]: the heads concatenated frame by frame", "프레임 [0, 1, 2, 3]과 [4, 5, 6, 7]: 헤드들을 프레임별로 이어 붙인 것"))
    expect_shape(say("merge_heads(heads) with heads (B, n_h, T, d_head) = (2, 3, 5, 4)", "heads (B, n_h, T, d_head) = (2, 3, 5, 4)일 때 merge_heads(heads)"), merge_heads(_randn(7, 2, 3, 5, 4)),
                 (5, 2, 12), "T, B, d_model")


# ------------------------------------------------------------------ multi-head self-attention

def _torch_pair(MultiHeadSelfAttention, seed, d_model, n_heads):
    """torch.nn.MultiheadAttention and your layer with its weights, by the notebook's mapping."""
    torch.manual_seed(seed)
    theirs = torch.nn.MultiheadAttention(d_model, n_heads).eval()
    with torch.no_grad():
        theirs.in_proj_bias.normal_(0, 0.5)
        theirs.out_proj.bias.normal_(0, 0.5)
    ours = MultiHeadSelfAttention(d_model, n_heads)
    expect_true(all(isinstance(getattr(ours, n, None), torch.nn.Linear) for n in ("W_q", "W_k", "W_v", "W_o")),
                say("MultiHeadSelfAttention must keep self.W_q, self.W_k, self.W_v and self.W_o from the given __init__.",
                    "MultiHeadSelfAttention은 주어진 __init__의 self.W_q, self.W_k, self.W_v, self.W_o를 그대로 "
                    "두어야 합니다."))
    with torch.no_grad():
        for name, w, b in zip(("W_q", "W_k", "W_v"), theirs.in_proj_weight.chunk(3), theirs.in_proj_bias.chunk(3)):
            getattr(ours, name).weight.copy_(w)
            getattr(ours, name).bias.copy_(b)
        ours.W_o.weight.copy_(theirs.out_proj.weight)
        ours.W_o.bias.copy_(theirs.out_proj.bias)
    return theirs, ours


def _mhsa(layer, x, pad, n_heads):
    T, B, d_model = x.shape
    with torch.no_grad():
        out, weights = _pair("MultiHeadSelfAttention.forward(x, key_padding_mask)", layer(x, pad))
    out = expect_shape(say("out of MultiHeadSelfAttention", "MultiHeadSelfAttention의 out"), out, (T, B, d_model), "T, B, d_model")
    weights = expect_shape(say("weights of MultiHeadSelfAttention", "MultiHeadSelfAttention의 weights"), weights, (B, n_heads, T, T), "B, n_heads, T, T")
    return out, weights


@self_check("MultiHeadSelfAttention against torch.nn.MultiheadAttention",
            "torch.nn.MultiheadAttention과 비교한 MultiHeadSelfAttention")
def check_mhsa_matches_torch(MultiHeadSelfAttention) -> None:
    theirs, ours = _torch_pair(MultiHeadSelfAttention, 0, 12, 3)
    x = _randn(8, 5, 2, 12)
    out, weights = _mhsa(ours, x, None, 3)
    with torch.no_grad():
        want, want_weights = theirs(x, x, x, average_attn_weights=False)
    expect_close(say("weights of MultiHeadSelfAttention(12, 3)", "MultiHeadSelfAttention(12, 3)의 weights"), weights, want_weights.numpy(), atol=1e-5,
                 what=say("torch.nn.MultiheadAttention's weights per head, with the same parameters", "같은 파라미터로 계산한 torch.nn.MultiheadAttention의 헤드별 weights"))
    expect_close(say("out of MultiHeadSelfAttention(12, 3)", "MultiHeadSelfAttention(12, 3)의 out"), out, want.numpy(), atol=1e-5,
                 what=say("torch.nn.MultiheadAttention with the same parameters", "같은 파라미터의 torch.nn.MultiheadAttention"))


@self_check("MultiHeadSelfAttention with key_padding_mask", "key_padding_mask가 있을 때 MultiHeadSelfAttention")
def check_mhsa_key_padding(MultiHeadSelfAttention) -> None:
    theirs, ours = _torch_pair(MultiHeadSelfAttention, 1, 8, 2)
    x = _randn(9, 6, 2, 8)
    pad = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])             # (B, T): utterance 1 has 4 frames
    out, weights = _mhsa(ours, x, pad, 2)
    if np.abs(weights[1, :, :, 4:]).max() > 1e-7:
        raise CheckFailed(say("with key_padding_mask, the padded frames 4 and 5 of utterance 1 still get weight "
                              f"(up to {np.abs(weights[1, :, :, 4:]).max():.3g}) as keys: the mask must hide the "
                              "last axis of the weights, (B, 1, 1, T), for every query and head.",
                              "key_padding_mask가 있는데도 발화 1의 패딩 프레임 4와 5가 키로서 여전히 가중치를 "
                              f"받습니다 (최대 {np.abs(weights[1, :, :, 4:]).max():.3g}): 마스크는 모든 쿼리와 헤드에 "
                              "대해 가중치의 마지막 축을 (B, 1, 1, T)로 가려야 합니다."))
    with torch.no_grad():
        want, _ = theirs(x, x, x, key_padding_mask=pad)
    expect_close(say("out[:4, 1] (the real frames of the padded utterance)", "out[:4, 1] (패딩된 발화의 실제 프레임)"), out[:4, 1], want[:4, 1].numpy(),
                 atol=1e-5, what=say("torch.nn.MultiheadAttention with the same key_padding_mask", "같은 key_padding_mask를 쓴 torch.nn.MultiheadAttention"))
    expect_close(say("out[:, 0] (the unpadded utterance)", "out[:, 0] (패딩 없는 발화)"), out[:, 0], want[:, 0].numpy(), atol=1e-5,
                 what=say("torch.nn.MultiheadAttention with the same key_padding_mask", "같은 key_padding_mask를 쓴 torch.nn.MultiheadAttention"))


@self_check("MultiHeadSelfAttention refuses d_model = 10 with 3 heads",
            "MultiHeadSelfAttention이 헤드 3개의 d_model = 10을 거부함")
def check_mhsa_head_count(MultiHeadSelfAttention) -> None:
    try:
        MultiHeadSelfAttention(10, 3)
    except ValueError:
        return
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - the wrong kind of error, reported in words
        raise CheckFailed(say(f"MultiHeadSelfAttention(10, 3) raised {type(error).__name__}: {error}. Raise a "
                              "ValueError in __init__ that says d_model is not divisible by n_heads.",
                              f"MultiHeadSelfAttention(10, 3)이 {type(error).__name__}을(를) 일으켰습니다: {error}. "
                              "__init__에서 d_model이 n_heads로 나누어떨어지지 않는다고 말하는 ValueError를 "
                              "일으키십시오.")) from None
    raise CheckFailed(say("MultiHeadSelfAttention(10, 3) did not raise: 10 features cannot be split into 3 equal "
                          "heads. Raise a ValueError in __init__ that says so.",
                          "MultiHeadSelfAttention(10, 3)이 오류를 일으키지 않았습니다: 특징 10개는 같은 크기의 헤드 "
                          "3개로 나눌 수 없습니다. __init__에서 그렇게 말하는 ValueError를 일으키십시오."))


# ------------------------------------------------------------------------------ positions

# T = 3, d = 4: the two frequencies are 1 and 1 / 10000^(2/4) = 1/100.
_P = np.array([[0.0, 1.0, 0.0, 1.0],
               [0.8414710, 0.5403023, 0.0099998, 0.9999500],
               [0.9092974, -0.4161468, 0.0199987, 0.9998000]])


@self_check("sinusoidal_positions")
def check_sinusoidal_positions(sinusoidal_positions) -> None:
    got = expect_shape("sinusoidal_positions(3, 4)", sinusoidal_positions(3, 4), (3, 4), "T, d")
    if np.allclose(got[0], [1, 0, 1, 0], atol=1e-6):
        raise CheckFailed(say("sinusoidal_positions(3, 4)[0] is [1, 0, 1, 0]: sin and cos are swapped. Even "
                              "features 2i get the sine, odd features 2i+1 the cosine.",
                              "sinusoidal_positions(3, 4)[0]이 [1, 0, 1, 0]입니다: sin과 cos가 뒤바뀌었습니다. 짝수 "
                              "특징 2i에는 사인이, 홀수 특징 2i+1에는 코사인이 들어갑니다."))
    if np.allclose(got[0], _P[1], atol=1e-4):
        raise CheckFailed(say("sinusoidal_positions starts at t = 1; the first frame is t = 0 (P_0 = [0, 1, 0, 1, ...]).",
                              "sinusoidal_positions가 t = 1에서 시작합니다. 첫 프레임은 t = 0입니다 "
                              "(P_0 = [0, 1, 0, 1, ...])."))
    expect_close("sinusoidal_positions(3, 4)", got, _P, atol=1e-5,
                 what=say("[sin(t), cos(t), sin(t/100), cos(t/100)] for t = 0, 1, 2 (10000^(2/4) = 100)", "t = 0, 1, 2에 대한 [sin(t), cos(t), sin(t/100), cos(t/100)] (10000^(2/4) = 100)"))


# ------------------------------------------------------------------------------ encoder layer

@self_check("EncoderLayer")
def check_encoder_layer(EncoderLayer) -> None:
    torch.manual_seed(0)
    layer = EncoderLayer(8, 2, 16)
    x = 3 * _randn(10, 5, 2, 8) + 1
    with torch.no_grad():
        out, _ = _pair("EncoderLayer.forward(x)", layer(x))
        expect_shape("EncoderLayer.forward(x)", out, (5, 2, 8), "T, B, d_model")
        expect_true(not np.allclose(as_array("out", out), x.numpy(), atol=1e-3),
                    say("EncoderLayer.forward returns its input unchanged: add what the sublayers compute.",
                        "EncoderLayer.forward가 입력을 바꾸지 않고 그대로 돌려줍니다: 부분 층이 계산한 것을 "
                        "더하십시오."))
        # silence both sublayers: the residual paths must carry x through untouched
        layer.attention.W_o.weight.zero_()
        layer.attention.W_o.bias.zero_()
        layer.feed_forward[-1].weight.zero_()
        layer.feed_forward[-1].bias.zero_()
        silent, _ = _pair("EncoderLayer.forward(x)", layer(x))
    silent = as_array("EncoderLayer.forward(x)", silent)
    if np.allclose(silent, 0, atol=1e-5):
        raise CheckFailed(say("with both sublayers outputting zero, EncoderLayer returns zeros: the residual "
                              "connections are missing (x + sublayer(...)).",
                              "두 부분 층이 모두 0을 출력할 때 EncoderLayer가 0을 돌려줍니다: 잔차 연결 "
                              "(x + sublayer(...))이 빠졌습니다."))
    normed = torch.nn.functional.layer_norm(x, (8,)).numpy()
    if np.allclose(silent, normed, atol=1e-4):
        raise CheckFailed(say("with both sublayers outputting zero, EncoderLayer returns LayerNorm(x): that is "
                              "post-norm, LayerNorm(x + sublayer(x)). Pre-norm normalises only the sublayer's "
                              "input: x + sublayer(LayerNorm(x)).",
                              "두 부분 층이 모두 0을 출력할 때 EncoderLayer가 LayerNorm(x)를 돌려줍니다: 이것은 "
                              "post-norm, 곧 LayerNorm(x + sublayer(x))입니다. pre-norm은 부분 층의 입력만 "
                              "정규화합니다: x + sublayer(LayerNorm(x))."))
    expect_close(say("EncoderLayer.forward(x) when both sublayers output zero", "두 부분 층이 모두 0을 출력할 때 EncoderLayer.forward(x)"), silent, x.numpy(), atol=1e-5,
                 what=say("x itself (pre-norm: the residual path is untouched)", "x 자신 (pre-norm: 잔차 경로는 건드리지 않습니다)"))


# ------------------------------------------------------------------------------ encoder

def _states(encoder, x, lengths):
    with torch.no_grad():
        states, maps = _pair("Encoder.forward(x, lengths)", encoder(x, torch.as_tensor(lengths)))
    expect_true(isinstance(maps, (list, tuple)) and len(maps) == len(encoder.layers),
                say(f"Encoder.forward should return (states, maps) with one map per layer, got maps = {describe(maps)}.",
                    f"Encoder.forward는 층마다 맵 하나씩인 (states, maps)를 돌려주어야 하는데 maps = "
                    f"{describe(maps)}입니다."))
    return expect_shape(say("states returned by Encoder.forward", "Encoder.forward가 돌려준 states"), states, (x.shape[0], x.shape[1], encoder.d_model),
                        "T, B, d_model")


@self_check("Encoder adds the positions before the layers", "Encoder가 층들 앞에서 위치를 더함")
def check_encoder_positions(Encoder, sinusoidal_positions) -> None:
    # A property, not the answer: with no layers, adding P_t after the front layer is the same
    # as feeding a positions=False encoder (same weights) frames moved by D_t, where D_t is
    # chosen so that front(x_t + D_t) = front(x_t) + P_t (D = P pinv(W^T); n_in > d_model).
    torch.manual_seed(1)
    with_p = Encoder(16, 8, 2, 16, 0, positions=True)
    without = Encoder(16, 8, 2, 16, 0, positions=False)
    without.load_state_dict(with_p.state_dict())
    x = _randn(11, 6, 1, 16)
    P = torch.as_tensor(sinusoidal_positions(6, 8), dtype=torch.float32)                # (T, d_model)
    D = P @ torch.linalg.pinv(with_p.front.weight.detach().T)                            # (T, n_in)
    moved = _states(without, x + D[:, None, :], [6])
    expect_close("Encoder(..., n_layers=0, positions=True).forward(x)", _states(with_p, x, [6]), moved,
                 atol=1e-4, what=say("the same encoder without positions fed frames whose projection is moved "
                                 "by P: the positions go in once, right after the front layer (also with "
                                 "no layers), and before the final norm", "사영이 P만큼 옮겨진 프레임을 넣은, 위치가 없는 같은 인코더: 위치는 "
                                     "앞쪽 층 바로 뒤에 (층이 없어도) 한 번, 마지막 정규화 전에 "
                                     "더해집니다"))


@self_check("Encoder with padding", "패딩이 있을 때 Encoder")
def check_encoder_padding(Encoder) -> None:
    torch.manual_seed(2)
    encoder = Encoder(4, 8, 2, 16, 2)
    x = _randn(12, 7, 2, 4)
    x[3:, 1] = 0                                            # utterance 1 has 3 frames
    states = _states(encoder, x, [7, 3])
    alone = _states(encoder, x[:3, 1:2], [3])
    expect_close(say("states[:3, 1] of a 3-frame utterance padded to 7 frames", "7 프레임으로 패딩된 3 프레임 발화의 states[:3, 1]"), states[:3, 1], alone[:, 0], atol=1e-5,
                 what=say("its states alone, unpadded (build key_padding_mask from lengths and give it to every layer)", "패딩 없이 그 발화만 넣었을 때의 states (lengths로 key_padding_mask를 만들어 모든 층에 주십시오)"))


@self_check("Encoder without positions is permutation-equivariant, with positions it is not",
            "위치가 없는 Encoder는 순열 등변이고, 위치가 있으면 그렇지 않음")
def check_encoder_equivariance(Encoder) -> None:
    torch.manual_seed(3)
    x, perm = _randn(13, 8, 1, 4), torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])
    encoder = Encoder(4, 8, 2, 16, 2, positions=False)
    expect_close(say("Encoder(..., positions=False) on shuffled frames", "섞은 프레임에서 Encoder(..., positions=False)"), _states(encoder, x[perm], [8]),
                 _states(encoder, x, [8])[perm.numpy()], atol=1e-5,
                 what=say("the states of the unshuffled frames, shuffled the same way", "섞지 않은 프레임의 states를 같은 방식으로 섞은 것"))
    torch.manual_seed(3)
    encoder = Encoder(4, 8, 2, 16, 2, positions=True)
    gap = np.abs(_states(encoder, x[perm], [8]) - _states(encoder, x, [8])[perm.numpy()]).max()
    expect_true(gap > 1e-3, say("with positions=True, shuffled frames still give shuffled states: are the "
                                "positions added when self.positions is True?",
                                "positions=True인데도 섞은 프레임이 여전히 섞인 상태를 냅니다: self.positions가 "
                                "True일 때 위치를 더하고 있습니까?"))
