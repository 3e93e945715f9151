"""Chapter 2's encoder-decoder without attention, and the bidirectional GRU encoder chapter 3 reuses.

`Seq2Seq` follows the model interface of `speechmodels.training` (which trains and
evaluates it with the one shared recipe):

    model(x, x_lengths, y_in) -> logits (U, B, V)        teacher forcing
    model.greedy(x, x_lengths, max_len) -> list of B lists of token ids, </s> left out

Shapes are time-major as everywhere in the course: x (T, B, F) raw stacked log-mel
frames, y_in (U, B).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from speechcourse.corpus import DIGIT_VOCAB
from speechmodels.training import FrontEnd, batch_tensors, sequence_loss  # noqa: F401 (re-exported)

PAD, BOS, EOS = DIGIT_VOCAB.pad, DIGIT_VOCAB.bos, DIGIT_VOCAB.eos


class BiGRUEncoder(nn.Module):
    """A bidirectional GRU over the frames; padded frames are skipped (packed sequences)."""

    def __init__(self, n_in: int, hidden: int, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.rnn = nn.GRU(n_in, hidden, num_layers=layers, bidirectional=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.size = 2 * hidden                                  # H_enc of the states

    def forward(self, x, lengths):
        """x (T, B, F), lengths (B,) -> states (T, B, 2H) zero on padding, context (B, 2H)."""
        packed = pack_padded_sequence(self.drop(x), lengths.cpu(), enforce_sorted=False)
        packed_states, h_last = self.rnn(packed)          # h_last (2 layers, B, H): last layer's two at the end
        states, _ = pad_packed_sequence(packed_states, total_length=x.shape[0])  # (T, B, 2H)
        context = torch.cat([h_last[-2], h_last[-1]], dim=-1)   # (B, 2H): end of each direction
        return self.drop(states), context


class Seq2Seq(nn.Module):
    """Encoder-decoder without attention: one fixed-size context for every decoder step.

    s_0 = tanh(c W_init),  s_u = GRUCell([E y_{u-1}; c], s_{u-1}),  logits_u = s_u W_out + b.
    """

    def __init__(self, n_in: int, hidden: int = 96, emb: int = 32, vocab_size: int = len(DIGIT_VOCAB),
                 layers: int = 1, dropout: float = 0.0, front: FrontEnd | None = None):
        super().__init__()
        self.front = front if front is not None else FrontEnd()
        self.encoder = BiGRUEncoder(n_in, hidden, layers, dropout)
        self.init = nn.Linear(2 * hidden, hidden)
        self.embed = nn.Embedding(vocab_size, emb)
        self.cell = nn.GRUCell(emb + 2 * hidden, hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def encode(self, x, x_lengths):
        """x (T, B, F) raw frames -> context c (B, 2H)."""
        _, context = self.encoder(self.front(x, x_lengths), x_lengths)
        return context

    def step(self, y_prev, s_prev, context):
        """y_prev (B,), s_prev (B, H), context (B, 2H) -> logits (B, V), s (B, H)."""
        s = self.cell(torch.cat([self.drop(self.embed(y_prev)), context], dim=-1), s_prev)
        return self.out(self.drop(s)), s

    def forward(self, x, x_lengths, y_in):
        context = self.encode(x, x_lengths)                    # (B, 2H)
        s = torch.tanh(self.init(context))                     # (B, H)
        logits = []
        for u in range(y_in.shape[0]):
            step_logits, s = self.step(y_in[u], s, context)
            logits.append(step_logits)
        return torch.stack(logits)                             # (U, B, V)

    @torch.no_grad()
    def greedy(self, x, x_lengths, max_len: int):
        context = self.encode(x, x_lengths)
        s = torch.tanh(self.init(context))
        y = torch.full((x.shape[1],), BOS, dtype=torch.long)
        return greedy_loop(lambda y, s: self.step(y, s, context), y, s, max_len)


def greedy_loop(step, y, s, max_len: int) -> list:
    """Run ``step(y_prev, s) -> (logits, s)`` greedily; per utterance, stop at </s>."""
    outputs, done = [[] for _ in range(len(y))], np.zeros(len(y), dtype=bool)
    for _ in range(max_len):
        logits, s = step(y, s)
        y = logits.argmax(dim=-1)                              # (B,)
        for b, token in enumerate(y.tolist()):
            if not done[b]:
                done[b] = token == EOS
                if not done[b]:
                    outputs[b].append(token)
        if done.all():
            break
    return outputs


def from_config(n_in: int, config: dict) -> Seq2Seq:
    """The chapter 2 model with the sizes and regularisation of a training CONFIG."""
    front = FrontEnd.from_config(config)
    return Seq2Seq(n_in, hidden=config["hidden"], emb=config["emb"], layers=config["layers"],
                   dropout=config["dropout"], front=front)
