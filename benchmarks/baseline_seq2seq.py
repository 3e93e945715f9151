"""Calibration: is the digit corpus learnable, and do long strings need attention?

    .venv/bin/python benchmarks/baseline_seq2seq.py                   # no attention
    .venv/bin/python benchmarks/baseline_seq2seq.py --attention       # dot-product attention

Each trains for --epochs passes (about 10 s each on 2 idle CPU cores), stopping early
if --minutes runs out.

Trains a small GRU encoder-decoder on `train` (frames stacked by 4: 50 -> 12.5 per
second), picks the epoch with the best `valid` sequence accuracy, and prints sequence
accuracy (whole digit string right) per length on `test_by_length` (unseen voices).
Without attention the decoder sees the utterance only through the encoder's final
state (the seed's "information bottleneck"), so accuracy should fall with length.
This is a script that prints numbers, not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from speechcourse.corpus import DIGIT_VOCAB, iterate_batches, load_split, make_batch  # noqa: E402

V = len(DIGIT_VOCAB)


class Seq2Seq(nn.Module):
    def __init__(self, n_in: int, hidden: int, attention: bool):
        super().__init__()
        self.attention = attention
        self.encoder = nn.GRU(n_in, hidden, num_layers=2, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.embed = nn.Embedding(V, hidden)
        self.decoder = nn.GRUCell(hidden + (2 * hidden if attention else 0), hidden)
        self.query = nn.Linear(hidden, 2 * hidden)
        self.out = nn.Linear(hidden + (2 * hidden if attention else 0), V)

    def encode(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, h = self.encoder(packed)
        enc, _ = nn.utils.rnn.pad_packed_sequence(out)                 # (T, B, 2H)
        h0 = torch.tanh(self.bridge(torch.cat([h[-2], h[-1]], -1)))    # (B, H) last layer, both directions
        return enc, h0

    def step(self, y_prev, h, enc, mask):
        e = self.embed(y_prev)                                         # (B, H)
        if not self.attention:
            h = self.decoder(e, h)
            return self.out(h), h
        scores = (enc * self.query(h)[None]).sum(-1)                   # (T, B)
        scores = scores.masked_fill(~mask, -1e9)
        context = (torch.softmax(scores, 0)[..., None] * enc).sum(0)   # (B, 2H)
        h = self.decoder(torch.cat([e, context], -1), h)
        return self.out(torch.cat([h, context], -1)), h

    def forward(self, x, lengths, mask, y_in):                         # teacher forcing
        enc, h = self.encode(x, lengths)
        logits = []
        for u in range(y_in.shape[0]):
            lo, h = self.step(y_in[u], h, enc, mask)
            logits.append(lo)
        return torch.stack(logits)                                     # (U, B, V)

    @torch.no_grad()
    def greedy(self, x, lengths, mask, max_len: int = 12):
        enc, h = self.encode(x, lengths)
        y = torch.full((x.shape[1],), DIGIT_VOCAB.bos, dtype=torch.long)
        out = []
        for _ in range(max_len):
            lo, h = self.step(y, h, enc, mask)
            y = lo.argmax(-1)
            out.append(y)
        return torch.stack(out)                                        # (max_len, B)


def tensors(batch, mean, std):
    if mean is None:   # per-utterance normalisation: each utterance's own mean and std per band
        m = batch.x_mask[..., None]                                    # (T, B, 1)
        n = batch.x_lengths[None, :, None]                             # (1, B, 1)
        mean = (batch.x * m).sum(0, keepdims=True) / n                 # (1, B, F)
        std = np.sqrt((((batch.x - mean) * m) ** 2).sum(0, keepdims=True) / n) + 1e-3
    x = torch.from_numpy(((batch.x - mean) / std).astype(np.float32)) * torch.from_numpy(batch.x_mask[..., None])
    return x, torch.from_numpy(batch.x_lengths), torch.from_numpy(batch.x_mask)


def decode_split(model, split, mean, std, batch_size=100):
    model.eval()
    hyps = []
    for start in range(0, len(split), batch_size):
        b = make_batch(split, range(start, min(start + batch_size, len(split))))
        pred = model.greedy(*tensors(b, mean, std))
        hyps += [DIGIT_VOCAB.decode(pred[:, i].numpy()) for i in range(pred.shape[1])]
    return np.array([h == t for h, t in zip(hyps, split.texts)])      # (N,) bool


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--attention", action="store_true")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock cap on training")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--stack", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--utterance-norm", action="store_true",
                   help="normalise each utterance by its own mean and std (else: train's)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)

    train, valid, tbl = (load_split(s, stack=args.stack) for s in ("train", "valid", "test_by_length"))
    frames = np.concatenate(train.features)
    mean, std = frames.mean(0), frames.std(0) + 1e-5                   # global CMVN from train
    if args.utterance_norm:
        mean = std = None
    model = Seq2Seq(train.features[0].shape[1], args.hidden, args.attention)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss(ignore_index=DIGIT_VOCAB.pad)

    start, epoch, best = time.time(), 0, (-1.0, None)
    while epoch < args.epochs and time.time() - start < args.minutes * 60:
        model.train()
        for batch in iterate_batches(train, 32, seed=epoch):
            x, lengths, mask = tensors(batch, mean, std)
            logits = model(x, lengths, mask, torch.from_numpy(batch.y_in))
            loss = loss_fn(logits.reshape(-1, V), torch.from_numpy(batch.y_out).reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        acc = decode_split(model, valid, mean, std).mean()
        epoch += 1
        print(f"epoch {epoch:2d}  {time.time() - start:5.0f} s  loss {loss.item():.3f}  valid seq acc {acc:.3f}")
        if acc > best[0]:
            best = (acc, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])

    correct = decode_split(model, tbl, mean, std)
    n = tbl.n_digits
    kind = ("with attention" if args.attention else "no attention") + (
        ", per-utterance normalisation" if args.utterance_norm else "")
    print(f"\nGRU encoder-decoder, {kind}, {epoch} epochs; best valid seq acc {best[0]:.3f}")
    print("test_by_length (unseen voices): sequence accuracy per number of digits")
    print(" ".join(f"{k:>5d}" for k in range(1, 11)))
    print(" ".join(f"{correct[n == k].mean():5.2f}" for k in range(1, 11)))
    print(f"overall {correct.mean():.3f}")
    variants = np.array([v.split("+")[1] for v in tbl.voices])
    print("per unseen speaker (variant): " + ", ".join(
        f"{v} {correct[variants == v].mean():.2f}" for v in sorted(set(variants))))


if __name__ == "__main__":
    main()
