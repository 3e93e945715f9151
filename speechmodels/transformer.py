"""Self-attention for speech (chapter 4), and the pieces chapter 5's decoder builds on.

Shapes follow book/notation.md: sequences are time-major, ``(T, B, d)``; inside attention
the heads get their own axis, ``(B, n_h, T, d_head)`` with ``d_head = d_model / n_h``.

Masks use PyTorch's ``nn.MultiheadAttention`` conventions, so its weights and masks can be
used unchanged:

* ``key_padding_mask`` ``(B, T)`` bool, **True on padding** (a key nobody may look at);
* ``attn_mask`` ``(U, T)`` bool, **True where looking is forbidden** (e.g. ``causal_mask``),
  or float, added to the scores (0 allowed, -inf forbidden).

Interface for a decoder with a key/value cache (chapter 5)::

    mha = MultiHeadAttention(d_model, n_heads)
    k, v = mha.keys_values(memory)                 # (B, n_h, T, d_head) each, computed once
    out, weights = mha.attend(y, k, v, key_padding_mask=pad)   # y (U, B, d) -> out (U, B, d)

    # self-attention one step at a time: append this step's keys and values to the cache
    k_u, v_u = mha.keys_values(y_u)                # y_u (1, B, d) -> (B, n_h, 1, d_head)
    k, v = torch.cat([k, k_u], dim=2), torch.cat([v, v_u], dim=2)
    out_u, _ = mha.attend(y_u, k, v)               # no causal mask needed: the cache is the past

``mha(query, key, value, ...)`` is ``attend(query, *keys_values(key, value), ...)``.

The encoder (``SelfAttentionEncoder``) maps frames ``x (T, B, F)`` and ``lengths (B,)`` to
``states (T', B, d_model)`` (zero on padding) and ``lengths' (B,)``: a front end (a linear
projection of frames already stacked by the corpus loader, optionally after strided
convolutions that shorten the time axis further), sinusoidal positions, ``n_layers``
pre-norm encoder layers and a final LayerNorm.
"""
from __future__ import annotations

import math

import torch
from torch import nn


# ---------------------------------------------------------------------------- positions

def sinusoidal_positions(T: int, d: int) -> torch.Tensor:
    """P (T, d): P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(t / 10000^(2i/d)).

    Vaswani et al. (2017), section 3.5; t counts from 0. An odd d drops the last cosine.
    """
    t = torch.arange(T, dtype=torch.float32)[:, None]                  # (T, 1)
    two_i = torch.arange(0, d, 2, dtype=torch.float32)                 # (ceil(d/2),)
    angle = t / torch.pow(10000.0, two_i / d)                          # (T, ceil(d/2))
    P = torch.zeros(T, d)                                              # (T, d)
    P[:, 0::2] = torch.sin(angle)
    P[:, 1::2] = torch.cos(angle[:, : d // 2])
    return P


# ---------------------------------------------------------------------------- masks

def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) bool, True on padding: t >= lengths[b]."""
    return torch.arange(T, device=lengths.device)[None, :] >= lengths[:, None]


def causal_mask(U: int, T: int | None = None) -> torch.Tensor:
    """(U, T) bool, True where step u may not look: at positions t > u (T defaults to U).

    With T > U (a cache holding T - U earlier steps), query u sits at position T - U + u.
    """
    T = U if T is None else T
    return torch.ones(U, T, dtype=torch.bool).triu(diagonal=T - U + 1)


def _allowed(key_padding_mask, attn_mask, B: int, U: int, T: int, dtype) -> torch.Tensor | None:
    """One additive mask (B, 1, U, T) from the two optional masks; None if neither is given."""
    if key_padding_mask is None and attn_mask is None:
        return None
    bias = torch.zeros(B, 1, U, T, dtype=dtype)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            bias = bias.masked_fill(attn_mask[None, None], float("-inf"))
        else:
            bias = bias + attn_mask[None, None].to(dtype)
    if key_padding_mask is not None:
        bias = bias.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    return bias


# ---------------------------------------------------------------------------- attention

def scaled_dot_product(q, k, v, bias=None):
    """softmax(q k^T / sqrt(d_head) + bias) v over the last two axes.

    q (..., U, d_head), k (..., T, d_head), v (..., T, d_v), bias broadcastable to (..., U, T).
    Returns out (..., U, d_v) and the weights (..., U, T), each row summing to 1.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])         # (..., U, T)
    if bias is not None:
        scores = scores + bias
    weights = torch.softmax(scores, dim=-1)                             # (..., U, T)
    return weights @ v, weights


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(T, B, d_model) -> (B, n_h, T, d_head): head h holds features h*d_head .. (h+1)*d_head-1."""
    T, B, d_model = x.shape
    return x.reshape(T, B, n_heads, d_model // n_heads).permute(1, 2, 0, 3)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, n_h, T, d_head) -> (T, B, n_h * d_head): the inverse of `split_heads`."""
    B, n_heads, T, d_head = x.shape
    return x.permute(2, 0, 1, 3).reshape(T, B, n_heads * d_head)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: project, split into heads, attend, merge, project.

    W_q, W_k, W_v, W_o are ``nn.Linear(d_model, d_model)``. Loading a
    ``torch.nn.MultiheadAttention``'s weights: ``in_proj_weight`` is [W_q; W_k; W_v] stacked
    along rows (``chunk(3)``), ``in_proj_bias`` likewise, ``out_proj`` is ``W_o``
    (see `from_torch`).
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model = {d_model} is not divisible by n_heads = {n_heads}")
        self.n_heads = n_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """The same layer, with the weights of a ``torch.nn.MultiheadAttention``."""
        ours = cls(mha.embed_dim, mha.num_heads)
        with torch.no_grad():
            for linear, w, b in zip((ours.W_q, ours.W_k, ours.W_v), mha.in_proj_weight.chunk(3),
                                    mha.in_proj_bias.chunk(3)):
                linear.weight.copy_(w)
                linear.bias.copy_(b)
            ours.W_o.weight.copy_(mha.out_proj.weight)
            ours.W_o.bias.copy_(mha.out_proj.bias)
        return ours

    def keys_values(self, key: torch.Tensor, value: torch.Tensor | None = None):
        """key (T, B, d_model) [value: the same, default key] -> k, v (B, n_h, T, d_head)."""
        value = key if value is None else value
        return split_heads(self.W_k(key), self.n_heads), split_heads(self.W_v(value), self.n_heads)

    def attend(self, query, k, v, key_padding_mask=None, attn_mask=None):
        """query (U, B, d_model) against projected k, v (B, n_h, T, d_head).

        Returns out (U, B, d_model) and weights (B, n_h, U, T).
        """
        q = split_heads(self.W_q(query), self.n_heads)                  # (B, n_h, U, d_head)
        B, _, U, _ = q.shape
        bias = _allowed(key_padding_mask, attn_mask, B, U, k.shape[2], q.dtype)
        heads, weights = scaled_dot_product(q, k, v, bias)             # (B, n_h, U, d_head)
        return self.W_o(merge_heads(heads)), weights

    def forward(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None):
        """Self-attention when key and value are left out: query (U, B, d) -> (U, B, d), weights."""
        key = query if key is None else key
        k, v = self.keys_values(key, key if value is None else value)
        return self.attend(query, k, v, key_padding_mask, attn_mask)


# ---------------------------------------------------------------------------- layers

class FeedForward(nn.Sequential):
    """Position-wise: Linear(d_model, d_ff), ReLU, dropout, Linear(d_ff, d_model)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))


class EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer (Xiong et al. 2020):

        x = x + dropout(SelfAttention(LayerNorm(x)))
        x = x + dropout(FeedForward(LayerNorm(x)))
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, key_padding_mask=None, attn_mask=None):
        """x (T, B, d_model) -> (T, B, d_model), attention weights (B, n_h, T, T)."""
        attended, weights = self.attention(self.norm1(x), key_padding_mask=key_padding_mask,
                                           attn_mask=attn_mask)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.norm2(x)))
        return x, weights


class StridedConvFront(nn.Module):
    """``n_convs`` times Conv1d(kernel 3, stride 2, padding 1) + ReLU: T -> ceil(T / 2^n_convs)."""

    def __init__(self, n_in: int, d_model: int, n_convs: int = 2):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(n_in if i == 0 else d_model, d_model, 3, stride=2, padding=1)
                                   for i in range(n_convs))

    def forward(self, x, lengths):
        """x (T, B, F) -> (T', B, d_model), lengths' (B,) with T' = ceil(T / 2^n)."""
        h = x.permute(1, 2, 0)                                          # (B, F, T): channels first
        for conv in self.convs:
            h = torch.relu(conv(h))
            lengths = (lengths - 1) // 2 + 1
        return h.permute(2, 0, 1), lengths                              # (T', B, d_model)


class SelfAttentionEncoder(nn.Module):
    """Frames -> encoder states with self-attention instead of recurrence.

    front: "linear" (frames already stacked by the loader, e.g. ``load_split(..., stack=4)``)
    or "conv" (``StridedConvFront``: two stride-2 convolutions, T -> T / 4).
    ``positions=False`` leaves out the sinusoidal encodings (chapter 4's ablation).
    """

    def __init__(self, n_in: int, d_model: int = 128, n_heads: int = 4, n_layers: int = 3,
                 d_ff: int = 256, dropout: float = 0.1, front: str = "linear", positions: bool = True):
        super().__init__()
        if front == "linear":
            self.front = nn.Linear(n_in, d_model)
        elif front == "conv":
            self.front = StridedConvFront(n_in, d_model)
        else:
            raise ValueError(f"front must be 'linear' or 'conv', got {front!r}")
        self.positions = positions
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.d_model = self.size = d_model                              # size: what a decoder attends over

    def forward(self, x, lengths, return_weights: bool = False):
        """x (T, B, F), lengths (B,) -> states (T', B, d_model), zero on padding, and lengths' (B,).

        With ``return_weights``, also the list of each layer's weights (B, n_h, T', T').
        """
        if isinstance(self.front, nn.Linear):
            h = self.front(x)                                           # (T, B, d_model)
        else:
            h, lengths = self.front(x, lengths)                         # (T', B, d_model)
        T = h.shape[0]
        if self.positions:
            h = h + sinusoidal_positions(T, self.d_model).to(h)[:, None, :]
        h = self.dropout(h)
        pad = padding_mask(lengths, T)                                  # (B, T')
        maps = []
        for layer in self.layers:
            h, weights = layer(h, key_padding_mask=pad)
            maps.append(weights)
        states = self.norm(h).masked_fill(pad.T[:, :, None], 0.0)      # (T', B, d_model)
        return (states, lengths, maps) if return_weights else (states, lengths)


class TextSelfAttentionEncoder(nn.Module):
    """Word embeddings, then a `SelfAttentionEncoder`: chapter 4's encoder for the English -> French task.

    words (S, B) int64, padded with 0 -> states (S, B, d_model), lengths (B,).
    """

    def __init__(self, vocab_size: int, d_model: int = 32, n_heads: int = 2, n_layers: int = 2,
                 d_ff: int = 64, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.encoder = SelfAttentionEncoder(d_model, d_model, n_heads, n_layers, d_ff, dropout)
        self.size = d_model

    def forward(self, words, lengths, return_weights: bool = False):
        return self.encoder(self.embed(words), lengths, return_weights)
