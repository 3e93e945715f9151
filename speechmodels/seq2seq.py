"""A small encoder-decoder recogniser and its training loop, shared by the book's experiments.

Chapter 2 trains `Seq2Seq` (no attention) with `train` for a fixed number of steps and
measures `accuracy_by_length` on the length-stratified test set; chapter 3 trains its
attention model with the same loop, data and budget, so the two curves can share axes.
Any model with the two methods below can be trained and evaluated here:

    model(x, x_lengths, y_in) -> logits (U, B, V)        teacher forcing
    model.greedy(x, x_lengths, max_len) -> list of B lists of token ids, </s> left out

Shapes are time-major as everywhere in the course: x (T, B, F), y_in (U, B).
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from speechcourse.corpus import DIGIT_VOCAB, Split, iterate_batches, make_batch

PAD, BOS, EOS = DIGIT_VOCAB.pad, DIGIT_VOCAB.bos, DIGIT_VOCAB.eos


class BiGRUEncoder(nn.Module):
    """A bidirectional GRU over the frames; padded frames are skipped (packed sequences)."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.rnn = nn.GRU(n_in, hidden, bidirectional=True)

    def forward(self, x, lengths):
        """x (T, B, F), lengths (B,) -> states (T, B, 2H) zero on padding, context (B, 2H)."""
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        packed_states, h_last = self.rnn(packed)          # h_last (2, B, H): forward, backward
        states, _ = pad_packed_sequence(packed_states, total_length=x.shape[0])  # (T, B, 2H)
        context = torch.cat([h_last[0], h_last[1]], dim=-1)   # (B, 2H): end of each direction
        return states, context


class Seq2Seq(nn.Module):
    """Encoder-decoder without attention: one fixed-size context for every decoder step.

    s_0 = tanh(c W_init),  s_u = GRUCell([E y_{u-1}; c], s_{u-1}),  logits_u = s_u W_out + b.
    """

    def __init__(self, n_in: int, hidden: int = 96, emb: int = 32, vocab_size: int = len(DIGIT_VOCAB)):
        super().__init__()
        self.encoder = BiGRUEncoder(n_in, hidden)
        self.init = nn.Linear(2 * hidden, hidden)
        self.embed = nn.Embedding(vocab_size, emb)
        self.cell = nn.GRUCell(emb + 2 * hidden, hidden)
        self.out = nn.Linear(hidden, vocab_size)

    def step(self, y_prev, s_prev, context):
        """y_prev (B,), s_prev (B, H), context (B, 2H) -> logits (B, V), s (B, H)."""
        s = self.cell(torch.cat([self.embed(y_prev), context], dim=-1), s_prev)
        return self.out(s), s

    def forward(self, x, x_lengths, y_in):
        _, context = self.encoder(x, x_lengths)                # (B, 2H)
        s = torch.tanh(self.init(context))                     # (B, H)
        logits = []
        for u in range(y_in.shape[0]):
            step_logits, s = self.step(y_in[u], s, context)
            logits.append(step_logits)
        return torch.stack(logits)                             # (U, B, V)

    @torch.no_grad()
    def greedy(self, x, x_lengths, max_len: int):
        _, context = self.encoder(x, x_lengths)
        s = torch.tanh(self.init(context))
        y = torch.full((x.shape[1],), BOS, dtype=torch.long)
        return _greedy_loop(lambda y, s: self.step(y, s, context), y, s, max_len)


def _greedy_loop(step, y, s, max_len: int) -> list:
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


def sequence_loss(logits, targets):
    """Mean cross-entropy over the non-<pad> positions of targets (U, B)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                       ignore_index=PAD)


def batch_tensors(batch):
    """A corpus Batch as tensors: x (T, B, F), x_lengths (B,), y_in (U, B), y_out (U, B)."""
    return (torch.from_numpy(batch.x), torch.from_numpy(batch.x_lengths),
            torch.from_numpy(batch.y_in), torch.from_numpy(batch.y_out))


def train(model: nn.Module, split: Split, steps: int, batch_size: int = 32, lr: float = 2e-3,
          clip: float = 5.0, seed: int = 0, log_every: int = 0) -> dict:
    """Adam for exactly ``steps`` updates (epochs reshuffled with seeds seed, seed + 1, ...).

    Returns {"losses": per-step training losses, "seconds": wall-clock training time}.
    A fixed number of steps, not of seconds, makes a run reproducible on any machine.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses, started, epoch = [], time.perf_counter(), 0
    model.train()
    while len(losses) < steps:
        for batch in iterate_batches(split, batch_size, seed=seed + epoch):
            x, x_lengths, y_in, y_out = batch_tensors(batch)
            loss = sequence_loss(model(x, x_lengths, y_in), y_out)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            losses.append(loss.item())
            if log_every and len(losses) % log_every == 0:
                print(f"step {len(losses):5d}  loss {np.mean(losses[-log_every:]):.3f}  "
                      f"{time.perf_counter() - started:6.1f} s", flush=True)
            if len(losses) == steps:
                break
        epoch += 1
    model.eval()
    return {"losses": losses, "seconds": time.perf_counter() - started}


def decode_texts(model: nn.Module, split: Split, index, extra: int = 3) -> list[str]:
    """Greedy transcripts of split[index]; at most (longest reference + extra) tokens."""
    batch = make_batch(split, index)
    x, x_lengths, _, _ = batch_tensors(batch)
    max_len = int(batch.y_lengths.max()) + extra
    return [DIGIT_VOCAB.decode(tokens + [EOS]) for tokens in model.greedy(x, x_lengths, max_len)]


def accuracy_by_length(model: nn.Module, split: Split, batch_size: int = 50) -> dict[int, float]:
    """Sequence accuracy (the whole digit string right) for each number of digits."""
    n_digits = split.n_digits
    result = {}
    for n in sorted(set(n_digits.tolist())):
        index = np.flatnonzero(n_digits == n)
        hits = 0
        for start in range(0, len(index), batch_size):
            chunk = index[start:start + batch_size]
            hyps = decode_texts(model, split, chunk)
            hits += sum(h == split.texts[i] for h, i in zip(hyps, chunk))
        result[int(n)] = hits / len(index)
    return result
