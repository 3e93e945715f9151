"""Lab 3 reference: attention scores, a masked softmax, attend, and one attention decoder step.

Layout (book/notation.md): a query is (B, H), one per utterance; keys and values are
time-major (T, B, H') and (T, B, D); scores and weights are (T, B), one column per
utterance, and the softmax runs over the frames, axis 0. ``mask`` (T, B) bool is True
on real frames. Token ids follow ``speechcourse.corpus.DIGIT_VOCAB``.

    dot       e_t = q . k_t                  (H = H')      scaled: / sqrt(H)
    general   e_t = q W k_t                  W (H, H')     (Luong et al. 2015)
    additive  e_t = v . tanh(q W_q + k_t W_k)  W_q (H, A), W_k (H', A), v (A,)  (Bahdanau et al. 2015)
    weights   a = softmax of e over the real frames, exactly 0 on padding
    context   c = sum_t a_t v_t              (B, D)

The notebook's solution cells hold exactly these functions and classes (a test checks they agree).
"""
import math

import torch
from torch import nn


def dot_scores(query, keys, scaled=False):
    """query (B, H), keys (T, B, H) -> scores (T, B): e[t, b] = query[b] . keys[t, b].

    With scaled=True the scores are divided by sqrt(H).
    """
    scores = (keys * query[None]).sum(dim=-1)  # (T, B)
    if scaled:
        scores = scores / math.sqrt(query.shape[-1])
    return scores


def general_scores(query, keys, W):
    """query (B, H), keys (T, B, H'), W (H, H') -> scores (T, B): e[t, b] = query[b] @ W @ keys[t, b]."""
    projected = query @ W  # (B, H'): the query in the keys' space
    return (keys * projected[None]).sum(dim=-1)  # (T, B)


def additive_scores(query, keys, W_q, W_k, v):
    """query (B, H), keys (T, B, H'), W_q (H, A), W_k (H', A), v (A,) -> scores (T, B).

    e[t, b] = v . tanh(query[b] @ W_q + keys[t, b] @ W_k)
    """
    hidden = torch.tanh((query @ W_q)[None] + keys @ W_k)  # (T, B, A)
    return hidden @ v  # (T, B)


def masked_softmax(scores, mask):
    """scores (T, B), mask (T, B) bool (True on real frames) -> weights (T, B).

    Softmax over the frames (axis 0) of each column, over its real frames only: padded
    frames get weight exactly 0 and each column's weights sum to 1. Stable for any finite
    scores (+-1e4 included). Every column has at least one real frame.
    """
    scores = scores.masked_fill(~mask, float("-inf"))  # padded frames: exp(-inf) = 0
    return torch.softmax(scores, dim=0)  # (T, B); softmax subtracts the max


def attend(scores, values, mask):
    """scores (T, B), values (T, B, D), mask (T, B) bool -> (weights (T, B), context (B, D)).

    weights = masked_softmax(scores, mask); context[b] = sum_t weights[t, b] * values[t, b].
    """
    weights = masked_softmax(scores, mask)  # (T, B)
    context = (weights[..., None] * values).sum(dim=0)  # (B, D)
    return weights, context


class AttentionDecoder(nn.Module):
    def __init__(self, vocab_size, emb, hidden, enc_size):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb)  # token id -> (emb,)
        self.key = nn.Linear(enc_size, hidden, bias=False)  # keys k_t = h_t W_k: (T, B, H)
        self.init = nn.Linear(enc_size, hidden)  # s_0 from the mean encoder state
        self.cell = nn.GRUCell(emb + enc_size, hidden)  # input: [embedding; context]
        self.out = nn.Linear(hidden + enc_size, vocab_size)  # [state; context] -> logits

    def start(self, states, lengths):
        """s_0 (B, H) = tanh(init(mean of each utterance's real encoder states))."""
        mask = torch.arange(states.shape[0])[:, None] < lengths[None, :]  # (T, B)
        mean = (states * mask[..., None]).sum(0) / lengths[:, None]  # (B, E)
        return torch.tanh(self.init(mean))

    def step(self, y_prev, s_prev, states, lengths):
        """One decoder step with attention.

        y_prev (B,) long, s_prev (B, H), states (T, B, E) encoder states (the values),
        lengths (B,) long real frames per utterance. The query is s_prev; the keys are
        key(states) (T, B, H); scores are scaled dot products; the context is the weighted
        sum of the values `states`. Returns (logits (B, V), s (B, H), weights (T, B)) with
        s = cell([embed(y_prev); context], s_prev) and logits = out([s; context]).
        """
        mask = torch.arange(states.shape[0])[:, None] < lengths[None, :]  # (T, B)
        keys = self.key(states)  # (T, B, H)
        scores = dot_scores(s_prev, keys, scaled=True)  # (T, B)
        weights, context = attend(scores, states, mask)  # (T, B), (B, E)
        s = self.cell(torch.cat([self.embed(y_prev), context], dim=-1), s_prev)  # (B, H)
        return self.out(torch.cat([s, context], dim=-1)), s, weights

    def forward(self, states, lengths, y_in):
        """Teacher forcing: states (T, B, E), lengths (B,), y_in (U, B) -> logits (U, B, V), weights (U, T, B)."""
        s = self.start(states, lengths)  # (B, H)
        logits, weights = [], []
        for u in range(y_in.shape[0]):
            step_logits, s, step_weights = self.step(y_in[u], s, states, lengths)
            logits.append(step_logits)
            weights.append(step_weights)
        return torch.stack(logits), torch.stack(weights)


def plot_alignment(weights, input_labels, output_labels, ax, title=""):
    """Draw weights (U, T) as a heatmap on ax: output steps down, input positions across."""
    ax.imshow(weights, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(output_labels)), output_labels)
    ax.set_xticks(range(len(input_labels)), input_labels, rotation=90)
    ax.set_xlabel("input (keys and values)")
    ax.set_ylabel("output step u (query)")
    ax.set_title(title)
    return ax
