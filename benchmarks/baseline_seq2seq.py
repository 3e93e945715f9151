"""Calibration: is the digit corpus learnable, and do long strings need attention?

    .venv/bin/python benchmarks/baseline_seq2seq.py                      # the recipe: > 0.95 on unseen voices
    .venv/bin/python benchmarks/baseline_seq2seq.py --plain --attention none --epochs 12
    .venv/bin/python benchmarks/baseline_seq2seq.py --plain --attention dot --epochs 18
    .venv/bin/python benchmarks/baseline_seq2seq.py --plain --attention dot --utterance-norm --epochs 10

Trains a small GRU encoder-decoder on `train` (frames stacked by 4: 50 -> 12.5 per
second), picks the epoch with the best `valid` sequence accuracy, and prints sequence
accuracy (whole digit string right) on `test` and per length on `test_by_length`
(both: unseen voices). Without attention the decoder sees the utterance only through
the encoder's final state (the seed's "information bottleneck"), so accuracy falls
with length.

The default recipe (data/README.md, "Learnability") is: location-aware attention
(additive attention that also sees a convolution of the previous step's attention
weights, Chorowski et al. 2015), per-utterance mean and variance normalisation,
SpecAugment-style masking (2 frequency masks of up to 8 of the 40 mel bands and
2 time masks of up to 10 frames, at 50 frames/s, before stacking), dropout 0.2,
label smoothing 0.1, and a one-cycle learning-rate schedule peaking at 3e-3 over
20 epochs (about 10-17 s each on 2 CPU cores; --minutes caps the wall clock).
--plain turns every regulariser and the schedule off (constant lr 2e-3), which is
the earlier, untuned baseline. This is a script that prints numbers, not a test:
nothing is asserted.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from speechcourse.corpus import DIGIT_VOCAB, load_split, pad_features  # noqa: E402
from speechmodels.batches import pad_targets  # noqa: E402
from speechcourse.frontend import stack_frames  # noqa: E402

V = len(DIGIT_VOCAB)


class Seq2Seq(nn.Module):
    def __init__(self, n_in: int, hidden: int, attention: str, dropout: float = 0.0, layers: int = 2):
        super().__init__()
        self.attention = attention            # "none", "dot", "additive" or "location"
        att = attention != "none"
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.GRU(n_in, hidden, num_layers=layers, bidirectional=True,
                              dropout=dropout if layers > 1 else 0.0)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.embed = nn.Embedding(V, hidden)
        self.decoder = nn.GRUCell(hidden + (2 * hidden if att else 0), hidden)
        if attention == "dot":
            self.query = nn.Linear(hidden, 2 * hidden)
        elif attention in ("additive", "location"):
            A = hidden
            self.key = nn.Linear(2 * hidden, A, bias=False)
            self.query = nn.Linear(hidden, A)
            self.v = nn.Linear(A, 1, bias=False)
            if attention == "location":
                self.loc_conv = nn.Conv1d(1, 8, kernel_size=9, padding=4, bias=False)
                self.loc_proj = nn.Linear(8, A, bias=False)
        self.out = nn.Linear(hidden + (2 * hidden if att else 0), V)

    def encode(self, x, lengths):
        x = self.drop(x)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, h = self.encoder(packed)
        enc, _ = nn.utils.rnn.pad_packed_sequence(out)
        enc = self.drop(enc)
        h0 = torch.tanh(self.bridge(torch.cat([h[-2], h[-1]], -1)))
        return enc, h0

    def init_state(self, enc, mask):
        keys = self.key(enc) if self.attention in ("additive", "location") else None
        prev = mask.float() / mask.float().sum(0, keepdim=True)           # (T, B) uniform
        return keys, prev

    def step(self, y_prev, h, enc, mask, keys, prev):
        """One decoder step; prev (T, B) = the previous step's attention weights."""
        e = self.drop(self.embed(y_prev))
        if self.attention == "none":
            h = self.decoder(e, h)
            return self.out(self.drop(h)), h, prev
        if self.attention == "dot":
            scores = (enc * self.query(h)[None]).sum(-1)
        else:
            s = keys + self.query(h)[None]
            if self.attention == "location":   # where it looked last step: helps it move on
                f = self.loc_conv(prev.t()[:, None])                        # (B, 8, T)
                s = s + self.loc_proj(f.permute(2, 0, 1))                   # (T, B, A)
            scores = self.v(torch.tanh(s)).squeeze(-1)
        scores = scores.masked_fill(~mask, -1e9)
        w = torch.softmax(scores, 0)
        context = (w[..., None] * enc).sum(0)
        h = self.decoder(torch.cat([e, context], -1), h)
        return self.out(self.drop(torch.cat([h, context], -1))), h, w

    def forward(self, x, lengths, mask, y_in):
        enc, h = self.encode(x, lengths)
        keys, prev = self.init_state(enc, mask)
        logits = []
        for u in range(y_in.shape[0]):
            lo, h, prev = self.step(y_in[u], h, enc, mask, keys, prev)
            logits.append(lo)
        return torch.stack(logits)

    @torch.no_grad()
    def greedy(self, x, lengths, mask, max_len=12):
        enc, h = self.encode(x, lengths)
        keys, prev = self.init_state(enc, mask)
        y = torch.full((x.shape[1],), DIGIT_VOCAB.bos, dtype=torch.long)
        out = []
        for _ in range(max_len):
            lo, h, prev = self.step(y, h, enc, mask, keys, prev)
            y = lo.argmax(-1)
            out.append(y)
        return torch.stack(out)


def warp(f, alpha, axis):
    """Resample axis of f by factor alpha (linear interpolation): output index i reads input i*alpha."""
    n = f.shape[axis]
    if axis == 0:
        m = max(2, int(round(n / alpha)))
        pos = np.linspace(0, n - 1, m)
    else:
        m = n
        pos = np.clip(np.arange(n) * alpha, 0, n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo).astype(np.float32)
    if axis == 0:
        return f[lo] * (1 - w[:, None]) + f[hi] * w[:, None]
    return f[:, lo] * (1 - w) + f[:, hi] * w


def prepare(feats, args, rng, train, mean, std):
    """Utterances (T_i, 40) -> padded, stacked (T, B, 40*stack) tensor, lengths, mask.

    Training only (train=True): optional time stretch and mel-axis warp, then, after
    normalisation, optional Gaussian noise and SpecAugment-style frequency and time
    masks (set to 0, the normalised mean). Evaluation sees clean, normalised features.
    """
    out = []
    for f in feats:
        f = f.astype(np.float32)
        if train and args.speed > 0:
            f = warp(f, rng.uniform(1 - args.speed, 1 + args.speed), 0)
        if train and args.vtlp > 0:
            f = warp(f, rng.uniform(1 - args.vtlp, 1 + args.vtlp), 1)
        if args.utterance_norm:
            f = (f - f.mean(0)) / (f.std(0) + 1e-3)
        else:
            f = (f - mean) / std
        if train:
            if args.noise > 0:
                f = f + rng.normal(0, args.noise, f.shape).astype(np.float32)
            T = len(f)
            for _ in range(args.fmask):
                w = rng.integers(0, args.fmask_width + 1)
                s = rng.integers(0, 40 - w + 1)
                f[:, s:s + w] = 0
            for _ in range(args.tmask):
                w = rng.integers(0, min(args.tmask_width, int(0.2 * T)) + 1)
                s = rng.integers(0, T - w + 1)
                f[s:s + w] = 0
        if len(f) < args.stack:
            f = np.concatenate([f, np.zeros((args.stack - len(f), 40), np.float32)])
        out.append(stack_frames(f, args.stack))
    x, lengths, mask = pad_features(out)
    x = torch.from_numpy(x) * torch.from_numpy(mask[..., None])
    return x, torch.from_numpy(lengths), torch.from_numpy(mask)


def decode_split(model, split, args, mean, std, bs=100):
    model.eval()
    hyps = []
    for s in range(0, len(split), bs):
        idx = range(s, min(s + bs, len(split)))
        pred = model.greedy(*prepare([split.features[i] for i in idx], args, None, False, mean, std))
        hyps += [DIGIT_VOCAB.decode(pred[:, i].numpy()) for i in range(pred.shape[1])]
    return np.array([h == t for h, t in zip(hyps, split.texts)])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--attention", default="location", choices=["none", "dot", "additive", "location"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock cap on training")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2, help="encoder GRU layers (bidirectional)")
    p.add_argument("--stack", type=int, default=4, help="frames stacked into one encoder step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (Adam)")
    p.add_argument("--schedule", default="onecycle", choices=["const", "onecycle"])
    p.add_argument("--utterance-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="normalise each utterance by its own mean and std per band (else: train's)")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--fmask", type=int, default=2, help="frequency masks per training utterance")
    p.add_argument("--fmask-width", type=int, default=8, help="max mel bands per frequency mask")
    p.add_argument("--tmask", type=int, default=2, help="time masks per training utterance")
    p.add_argument("--tmask-width", type=int, default=10, help="max frames (20 ms) per time mask")
    p.add_argument("--noise", type=float, default=0.0, help="std of Gaussian noise added to normalised features")
    p.add_argument("--speed", type=float, default=0.0, help="time-stretch features by 1 +- this (0.1: +-10%%)")
    p.add_argument("--vtlp", type=float, default=0.0, help="warp the mel axis by 1 +- this (VTLP-like)")
    p.add_argument("--plain", action="store_true",
                   help="the untuned baseline: no dropout, masks or label smoothing, constant lr 2e-3, "
                        "global normalisation (unless --utterance-norm is given)")
    args = p.parse_args()
    if args.plain:
        args.dropout = args.label_smoothing = args.noise = args.speed = args.vtlp = 0.0
        args.fmask = args.tmask = 0
        args.schedule, args.lr = "const", 2e-3
        args.utterance_norm = "--utterance-norm" in sys.argv
    print(" ".join(f"{k}={v}" for k, v in vars(args).items()), flush=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    train, valid, test, tbl = (load_split(s) for s in ("train", "valid", "test", "test_by_length"))
    frames = np.concatenate(train.features)
    mean, std = frames.mean(0), frames.std(0) + 1e-5
    model = Seq2Seq(40 * args.stack, args.hidden, args.attention, args.dropout, args.layers)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * math.ceil(len(train) / args.batch)
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.15)
             if args.schedule == "onecycle" else None)
    loss_fn = nn.CrossEntropyLoss(ignore_index=DIGIT_VOCAB.pad, label_smoothing=args.label_smoothing)

    start, epoch, best = time.time(), 0, (-1.0, None, 0)
    while epoch < args.epochs and time.time() - start < args.minutes * 60:
        model.train()
        order = np.random.default_rng(epoch).permutation(len(train))
        for s in range(0, len(order), args.batch):
            idx = order[s:s + args.batch]
            x, lengths, mask = prepare([train.features[i] for i in idx], args, rng, True, mean, std)
            y_in, y_out, _, _ = pad_targets([train.texts[i] for i in idx])
            logits = model(x, lengths, mask, torch.from_numpy(y_in))
            loss = loss_fn(logits.reshape(-1, V), torch.from_numpy(y_out).reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if sched is not None:
                sched.step()
        acc = decode_split(model, valid, args, mean, std).mean()
        epoch += 1
        print(f"epoch {epoch:2d}  {time.time() - start:5.0f} s  loss {loss.item():.3f}  valid seq acc {acc:.3f}",
              flush=True)
        if acc >= best[0]:
            best = (acc, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
    train_s = time.time() - start
    model.load_state_dict(best[1])
    ct = decode_split(model, test, args, mean, std)
    correct = decode_split(model, tbl, args, mean, std)
    n = tbl.n_digits
    print(f"\nGRU encoder-decoder, attention: {args.attention}, {epoch} epochs in {train_s:.0f} s; "
          f"best valid seq acc {best[0]:.3f} (epoch {best[2]})")
    print(f"test (unseen voices, {len(test)} utterances): sequence accuracy {ct.mean():.3f}")
    print("test_by_length (unseen voices): sequence accuracy per number of digits")
    print(" ".join(f"{k:>5d}" for k in range(1, 11)))
    print(" ".join(f"{correct[n == k].mean():5.2f}" for k in range(1, 11)))
    print(f"overall {correct.mean():.3f}")
    variants = np.array([v.split("+")[1] for v in tbl.voices])
    print("per unseen speaker (variant): " + ", ".join(
        f"{v} {correct[variants == v].mean():.2f}" for v in sorted(set(variants))))

if __name__ == "__main__":
    main()
