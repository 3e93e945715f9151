"""Lab 4 reference: self-attention, multi-head attention, positions and a pre-norm encoder, in PyTorch.

Time-major as everywhere in the course: a batch of sequences is ``(T, B, d_model)``.
Inside attention each head gets its own axis: ``(B, n_h, T, d_head)``, d_head = d_model / n_h.

Masks:
* ``scaled_dot_product_attention(q, k, v, mask)``: ``mask`` is bool, broadcastable to
  ``(..., U, T)``, **True where query u may look at key t** (as in
  ``torch.nn.functional.scaled_dot_product_attention``);
* ``key_padding_mask`` ``(B, T)`` bool, **True on padded frames** (as in
  ``torch.nn.MultiheadAttention``).

Loading a ``torch.nn.MultiheadAttention(d_model, n_heads)``'s weights into
``MultiHeadSelfAttention(d_model, n_heads)`` (the mapping the hidden test uses):
``W_q.weight, W_k.weight, W_v.weight = in_proj_weight.chunk(3)`` (rows 0..d-1, d..2d-1,
2d..3d-1), the same for the biases from ``in_proj_bias``, and ``W_o = out_proj``.

The notebook's solution cells hold exactly these functions and classes (a test checks they agree).
"""
import math

import torch
from torch import nn


def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v, over the last two axes, with an optional mask.

    q (..., U, d_k), k (..., T, d_k), v (..., T, d_v); the leading axes (e.g. B, n_h)
    are the same for all three. mask: None, or bool broadcastable to (..., U, T), True
    where query u may look at key t. Returns (out (..., U, d_v), weights (..., U, T)):
    weights[..., u, :] sums to 1 over the allowed keys and is 0 on the others.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., U, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., U, T): over the keys
    return weights @ v, weights


def split_heads(x, n_heads):
    """(T, B, d_model) -> (B, n_heads, T, d_head): head h gets features h*d_head .. (h+1)*d_head - 1."""
    T, B, d_model = x.shape
    x = x.reshape(T, B, n_heads, d_model // n_heads)  # (T, B, n_h, d_head)
    return x.permute(1, 2, 0, 3)  # (B, n_h, T, d_head)


def merge_heads(x):
    """(B, n_heads, T, d_head) -> (T, B, n_heads * d_head): the inverse of split_heads."""
    B, n_heads, T, d_head = x.shape
    return x.permute(2, 0, 1, 3).reshape(T, B, n_heads * d_head)  # (T, B, d_model)


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model = {d_model} must be divisible by n_heads = {n_heads}")
        self.n_heads = n_heads
        self.W_q = nn.Linear(d_model, d_model)  # x -> queries of all heads
        self.W_k = nn.Linear(d_model, d_model)  # x -> keys
        self.W_v = nn.Linear(d_model, d_model)  # x -> values
        self.W_o = nn.Linear(d_model, d_model)  # concatenated heads -> output

    def forward(self, x, key_padding_mask=None):
        """x (T, B, d_model); key_padding_mask None or (B, T) bool, True on padding.

        Returns (out (T, B, d_model), weights (B, n_heads, T, T)).
        """
        q = split_heads(self.W_q(x), self.n_heads)  # (B, n_h, T, d_head)
        k = split_heads(self.W_k(x), self.n_heads)  # (B, n_h, T, d_head)
        v = split_heads(self.W_v(x), self.n_heads)  # (B, n_h, T, d_head)
        mask = None
        if key_padding_mask is not None:
            mask = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, T): every query, every head
        heads, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, n_h, T, d_head)
        return self.W_o(merge_heads(heads)), weights


def sinusoidal_positions(T, d):
    """P (T, d) float32: P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(t / 10000^(2i/d)), t = 0..T-1."""
    t = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    two_i = torch.arange(0, d, 2, dtype=torch.float32)  # (d/2,)
    angles = t / 10000 ** (two_i / d)  # (T, d/2)
    P = torch.zeros(T, d)  # (T, d)
    P[:, 0::2] = torch.sin(angles)
    P[:, 1::2] = torch.cos(angles)
    return P


class EncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = MultiHeadSelfAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))

    def forward(self, x, key_padding_mask=None):
        """Pre-norm: x + attention(norm1(x)), then + feed_forward(norm2(.)).

        x (T, B, d_model) -> (out (T, B, d_model), weights (B, n_heads, T, T)).
        """
        attended, weights = self.attention(self.norm1(x), key_padding_mask)  # (T, B, d_model)
        x = x + attended
        x = x + self.feed_forward(self.norm2(x))
        return x, weights


class Encoder(nn.Module):
    def __init__(self, n_in, d_model, n_heads, d_ff, n_layers, positions=True):
        super().__init__()
        self.front = nn.Linear(n_in, d_model)  # frame (n_in,) -> (d_model,)
        self.layers = nn.ModuleList([EncoderLayer(d_model, n_heads, d_ff) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)  # after the last layer (pre-norm layers leave it out)
        self.positions = positions
        self.d_model = d_model

    def forward(self, x, lengths):
        """x (T, B, n_in) zero-padded, lengths (B,) long.

        Returns (states (T, B, d_model), maps): states = norm(layers(front(x) + P)), with P
        added only if self.positions, and padded frames masked out as keys in every layer;
        maps: a list with each layer's attention weights (B, n_heads, T, T).
        """
        T = x.shape[0]
        h = self.front(x)  # (T, B, d_model)
        if self.positions:
            h = h + sinusoidal_positions(T, self.d_model)[:, None, :]  # P (T, 1, d_model), same for every b
        key_padding_mask = torch.arange(T)[None, :] >= lengths[:, None]  # (B, T): True on padding
        maps = []
        for layer in self.layers:
            h, weights = layer(h, key_padding_mask)
            maps.append(weights)
        return self.norm(h), maps
