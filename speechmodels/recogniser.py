"""The course's capstone recogniser (chapter 5): a self-attention encoder and a causal
self-attention decoder with cross-attention.

    frames x (T, B, F) --FrontEnd--> --ConvFront--> --SelfAttentionEncoder (chapter 4)--> memory (T, B, d)
    y_in (U, B) --embeddings + positions--> n x DecoderLayer(masked self-attn, cross-attn, FF) --> logits (U, B, V)

The pieces come from `speechmodels.transformer` (multi-head attention with a key/value
interface, feed-forward, positions, masks) and `speechmodels.training` (the front end and
the one training recipe). It has the two methods `speechmodels.training.train` needs:
``model(x, x_lengths, y_in) -> logits`` and ``model.greedy(x, x_lengths, max_len)``.

``mask`` chooses the decoder's self-attention mask while training, for chapter 5's
ablations: "causal" (step u sees t <= u), "none" (sees everything) or "off_by_one" (sees
t <= u + 1, so its own target). Decoding always runs step by step, so it never sees the future.
"""
from __future__ import annotations

import torch
from torch import nn

from speechcourse.corpus import DIGIT_VOCAB
from speechmodels.training import CONFIG, FrontEnd
from speechmodels.transformer import (FeedForward, MultiHeadAttention, SelfAttentionEncoder, causal_mask,
                                      padding_mask, sinusoidal_positions)

PAD, BOS, EOS = DIGIT_VOCAB.pad, DIGIT_VOCAB.bos, DIGIT_VOCAB.eos
ENCODER = {"d_model": 96, "n_heads": 4, "n_layers": 3, "d_ff": 192, "dropout": 0.1, "front": "conv"}
DECODER = {"d_model": 96, "n_heads": 4, "n_layers": 2, "d_ff": 192, "dropout": 0.1}
MASKS = ("causal", "none", "off_by_one")


def decoder_mask(kind: str, U: int) -> torch.Tensor | None:
    """(U, U) bool, True where step u may not look; None for "none"."""
    if kind == "causal":
        return causal_mask(U)
    if kind == "off_by_one":
        return torch.ones(U, U, dtype=torch.bool).triu(diagonal=2)    # sees t = u + 1: its own target
    if kind == "none":
        return None
    raise ValueError(f"mask must be one of {MASKS}, got {kind!r}")


class DecoderLayer(nn.Module):
    """Pre-norm: y += SelfAttn(norm1 y, mask); y += CrossAttn(norm2 y, memory); y += FF(norm3 y)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attention = MultiHeadAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.cross_attention = MultiHeadAttention(d_model, n_heads)
        self.norm3 = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y, memory_kv, attn_mask=None, memory_padding_mask=None, cache=None):
        """y (U, B, d); memory_kv: the cross-attention's (k, v) of the memory, (B, n_h, T, d_head) each.

        Without ``cache``: all U steps at once under ``attn_mask``. With ``cache`` (the (k, v) of
        the earlier steps, or an empty tuple at the first step): y is the next step(s), appended.
        Returns y (U, B, d), the new cache (k, v) and the weights (self (B, n_h, U, U'), cross (B, n_h, U, T)).
        """
        h = self.norm1(y)
        k, v = self.self_attention.keys_values(h)                      # (B, n_h, U, d_head)
        if cache:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        attended, self_weights = self.self_attention.attend(h, k, v, attn_mask=attn_mask)
        y = y + self.dropout(attended)
        attended, cross_weights = self.cross_attention.attend(self.norm2(y), *memory_kv,
                                                              key_padding_mask=memory_padding_mask)
        y = y + self.dropout(attended)
        y = y + self.dropout(self.feed_forward(self.norm3(y)))
        return y, (k, v), (self_weights, cross_weights)


class TransformerDecoder(nn.Module):
    """Token embeddings + sinusoidal positions, n_layers DecoderLayers, LayerNorm, logits."""

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, d_ff: int,
                 dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(DecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)

    def embed_at(self, y, start: int = 0):
        """y (U, B) at positions start .. start + U - 1 -> (U, B, d)."""
        P = sinusoidal_positions(start + y.shape[0], self.embed.embedding_dim)     # (start + U, d)
        return self.dropout(self.embed(y) + P[start:, None, :])

    def memory_kv(self, memory):
        """Each layer's cross-attention keys and values of the memory: computed once per utterance."""
        return [layer.cross_attention.keys_values(memory) for layer in self.layers]

    def forward(self, y_in, memory, memory_padding_mask=None, attn_mask=None, return_weights=False):
        """Teacher forcing: y_in (U, B), memory (T, B, d) -> logits (U, B, V) [, per-layer weights]."""
        y = self.embed_at(y_in)                                        # (U, B, d)
        weights = []
        for layer, kv in zip(self.layers, self.memory_kv(memory)):
            y, _, w = layer(y, kv, attn_mask, memory_padding_mask)
            weights.append(w)
        logits = self.out(self.norm(y))
        return (logits, weights) if return_weights else logits

    def step(self, y_prev, state: dict):
        """One step with the key/value cache. y_prev (B,); state from `start` or the last step.

        Returns logits (B, V) and the new state (the cache holds one more step).
        """
        u = 0 if not state["cache"][0] else state["cache"][0][0].shape[2]
        y = self.embed_at(y_prev[None], start=u)                       # (1, B, d)
        cache = []
        for layer, kv, past in zip(self.layers, state["memory_kv"], state["cache"]):
            y, new, _ = layer(y, kv, None, state["pad"], cache=past)
            cache.append(new)
        return self.out(self.norm(y[0])), dict(state, cache=cache)

    def start(self, memory, memory_padding_mask=None) -> dict:
        """The decoding state before the first step: the memory's keys and values, an empty cache."""
        return {"memory_kv": self.memory_kv(memory), "pad": memory_padding_mask,
                "cache": [() for _ in self.layers]}


class ConvFront(nn.Module):
    """Two Conv1d(kernel 5, stride 1) + ReLU over time: each step sees its neighbours (+-4 steps,
    about 0.7 s at 4x stacked frames) before self-attention; the length is unchanged."""

    def __init__(self, n_in: int, d_model: int, kernel: int = 5):
        super().__init__()
        self.conv1 = nn.Conv1d(n_in, d_model, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2)

    def forward(self, x, lengths):
        """x (T, B, F) -> (T, B, d_model), lengths unchanged; zero frames stay outside each utterance."""
        h = torch.relu(self.conv2(torch.relu(self.conv1(x.permute(1, 2, 0)))))   # (B, d, T)
        return h.permute(2, 0, 1), lengths


class Recogniser(nn.Module):
    """FrontEnd -> SelfAttentionEncoder -> TransformerDecoder; trained by `speechmodels.training.train`."""

    def __init__(self, n_in: int, config: dict = CONFIG, encoder: dict = ENCODER, decoder: dict = DECODER,
                 mask: str = "causal", vocab_size: int = len(DIGIT_VOCAB)):
        super().__init__()
        decoder_mask(mask, 1)                                          # refuse an unknown kind now
        self.front = FrontEnd.from_config(config)
        self.encoder = SelfAttentionEncoder(n_in, encoder["d_model"], encoder["n_heads"], encoder["n_layers"],
                                            encoder["d_ff"], encoder["dropout"])
        if encoder.get("front", "linear") == "conv":          # conformer-lite: local context first
            self.encoder.front = ConvFront(n_in, encoder["d_model"])
        self.decoder = TransformerDecoder(vocab_size, decoder["d_model"], decoder["n_heads"], decoder["n_layers"],
                                          decoder["d_ff"], decoder["dropout"])
        self.mask = mask

    def encode(self, x, x_lengths):
        """x (T, B, F) raw stacked log-mel, x_lengths (B,) -> memory (T, B, d), padding mask (B, T)."""
        memory, lengths = self.encoder(self.front(x, x_lengths), x_lengths)
        return memory, padding_mask(lengths, memory.shape[0])

    def forward(self, x, x_lengths, y_in, return_weights=False):
        memory, pad = self.encode(x, x_lengths)
        return self.decoder(y_in, memory, pad, decoder_mask(self.mask, y_in.shape[0]), return_weights)

    def greedy(self, x, x_lengths, max_len: int):
        from speechmodels.decoding import greedy
        with torch.no_grad():
            memory, pad = self.encode(x, x_lengths)
            return greedy(self.decoder, memory, pad, max_len)
