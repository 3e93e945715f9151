"""The one training recipe every speech model of the book uses (chapters 2-5).

Chapter 2's model without attention, chapter 3's attention models, chapter 4's
self-attention encoder and chapter 5's transformer are trained by the same `train`, on
the same data, with the same `CONFIG` budget, so their accuracy-by-length curves can
share axes. A model only needs two methods:

    model(x, x_lengths, y_in) -> logits (U, B, V)                  teacher forcing
    model.greedy(x, x_lengths, max_len) -> list of B token lists   </s> left out

A model with a criterion of its own (CTC, `speechmodels.ctc`) also has
`model.loss(x, x_lengths, y_in, y_out) -> scalar`, which `train` then minimises instead of
the label-smoothed cross-entropy of `model(x, x_lengths, y_in)`;

with x (T, B, F) *raw* stacked log-mel frames (as `speechcourse.corpus` gives them),
x_lengths (B,) int64 and y_in (U, B) int64. Models put a `FrontEnd` first: it
normalises each utterance by its own mean and variance per feature (over its real
frames only, so padding never counts) and, in training mode only, applies
SpecAugment-style masks. Because the front end is part of the model, the book can feed
a trained model the corpus's features directly.

The recipe (`CONFIG`), tuned so that the model without attention gets short strings right
(corpus v1: 0.96 on 1 and on 2 digits of unseen voices, where earlier recipes gave 0.90 and
0.60; on v2, `book/results/ch02_bottleneck.json`), so that what is left of its fall with
length is the bottleneck and not undertraining:

- per-utterance mean and variance normalisation (`FrontEnd`);
- SpecAugment-style masking while training: `fmasks` frequency masks of up to
  `fmask_width` of the 40 mel bands and `tmasks` time masks of up to `tmask_width`
  encoder steps (4 stacked frames = 80 ms each), on every training utterance;
- a random warp of each training utterance's mel axis by a factor in [1 - `warp`, 1 + `warp`]
  (vocal tract length perturbation: new speakers from the training speakers). Chapter 5's
  capstone turns it off (`experiments/ch05_recogniser.py`, CAPSTONE): there it raised the
  real speakers' WER (`book/results/ch05_ablations.json`, "with_warp");
- dropout `dropout` (encoder input and output, decoder input and output);
- label smoothing `label_smoothing` in the cross-entropy over real (non-<pad>) targets;
- Adam with a one-cycle learning-rate schedule peaking at `lr` after 15% of `steps`;
  gradients clipped to norm `clip`;
- exactly `steps` updates of `batch_size` utterances, epochs reshuffled with seeds
  seed, seed + 1, ...: a fixed number of steps, not of seconds, is reproducible; each batch
  holds utterances of similar length (`speechmodels.batches.bucketed_batches`, sorted
  `bucket_window` batches at a time), so little of the computation is spent on padding.

Evaluation: `evaluate` decodes a split greedily and returns, per number of digits,
sequence accuracy, digit error rate (edit distance / reference digits) and accuracy
at each position of the reference (from the edit-distance alignment), for the whole split
and for each source ("by_source": synthetic voices and real speakers, side by side).
"""
from __future__ import annotations

import time
from typing import Iterable

import numpy as np
import torch
from torch import nn

from speechcourse.corpus import DIGIT_VOCAB, SOURCES, Split
from speechmodels.batches import bucketed_batches, make_batch

PAD, BOS, EOS = DIGIT_VOCAB.pad, DIGIT_VOCAB.bos, DIGIT_VOCAB.eos
N_MELS = 40

# The one budget of every speech experiment in the book (chapters 2-5).
CONFIG = {
    "stack": 4,              # frames stacked into one encoder step: 50 -> 12.5 per second
    "hidden": 96,            # encoder units per direction; decoder units
    "layers": 2,             # bidirectional encoder layers
    "emb": 32,               # decoder's symbol embedding
    "dropout": 0.2,
    "label_smoothing": 0.1,
    "fmasks": 2, "fmask_width": 8,       # frequency masks: up to 8 of 40 mel bands
    "tmasks": 2, "tmask_width": 3,       # time masks: up to 3 encoder steps (240 ms)
    "warp": 0.1,                         # mel axis stretched or squeezed by up to 10%
    "norm": "feature",                   # FrontEnd: per-utterance mean and variance of each feature
    "steps": 2400, "batch_size": 32,
    "bucket_window": 20,     # batches of similar length: utterances sorted 20 batches at a time
    "lr": 3e-3, "warmup": 0.15, "clip": 1.0,
    "seed": 0, "threads": 1,
}


# --------------------------------------------------------------------------- front end

def length_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """lengths (B,) -> mask (T, B) bool, True on real frames t < lengths[b]."""
    return torch.arange(T)[:, None] < lengths.cpu()[None, :]


class FrontEnd(nn.Module):
    """Per-utterance normalisation, then (training mode only) SpecAugment-style masks.

    x (T, B, F) raw stacked log-mel, F = stack * 40 -> (T, B, F), zero on padded frames.
    """

    def __init__(self, fmasks: int = 0, fmask_width: int = 0, tmasks: int = 0, tmask_width: int = 0,
                 warp: float = 0.0, norm: str = "feature"):
        super().__init__()
        if norm not in ("feature", "scalar"):
            raise ValueError(f"norm must be 'feature' or 'scalar', got {norm!r}")
        self.fmasks, self.fmask_width = fmasks, fmask_width
        self.tmasks, self.tmask_width = tmasks, tmask_width
        self.warp, self.norm = warp, norm

    @classmethod
    def from_config(cls, config: dict) -> "FrontEnd":
        """The front end of the one recipe: `CONFIG`'s masks, warp and normalisation."""
        return cls(config["fmasks"], config["fmask_width"], config["tmasks"], config["tmask_width"], config["warp"],
                   config.get("norm", "feature"))

    def forward(self, x, lengths):
        T, B, F = x.shape
        mask = length_mask(lengths, T)[..., None].to(x.dtype)          # (T, B, 1)
        n = mask.sum(0).clamp(min=1)                                     # (B, 1)
        if self.norm == "scalar":       # one mean and variance per utterance: keeps the spectral shape
            n = n * F
            mean = (x * mask).sum((0, 2), keepdim=True)[0] / n           # (B, 1)
        else:                           # per feature: also removes the utterance's average spectrum
            mean = (x * mask).sum(0) / n                                 # (B, F)
        var = (((x - mean) * mask) ** 2).sum(0 if self.norm == "feature" else (0, 2),
                                               keepdim=self.norm == "scalar")
        var = (var[0] if self.norm == "scalar" else var) / n             # (B, F) or (B, 1)
        x = (x - mean) / (var.sqrt() + 1e-3) * mask                      # (T, B, F)
        if self.training:
            x = self._augment(x, lengths)
        return x

    def _augment(self, x, lengths):
        T, B, F = x.shape
        bands = N_MELS if F % N_MELS == 0 else F
        x = x.reshape(T, B, F // bands, bands)                           # (T, B, stack, 40)
        if self.warp:
            x = self._warp(x)
        keep = torch.ones(T, B, 1, bands, dtype=torch.bool)
        band = torch.arange(bands)[None, :]                              # (1, 40)
        for _ in range(self.fmasks):
            width = torch.randint(0, self.fmask_width + 1, (B, 1))       # (B, 1)
            start = (torch.rand(B, 1) * (bands - width + 1)).floor()
            keep &= ~((band >= start) & (band < start + width))[None, :, None, :]
        t = torch.arange(T)[:, None]                                     # (T, 1)
        longest = torch.minimum(torch.full((B,), self.tmask_width), (0.2 * lengths.cpu()).long())
        for _ in range(self.tmasks):
            width = (torch.rand(B) * (longest + 1)).floor()[None, :]     # (1, B)
            start = (torch.rand(B)[None, :] * (lengths.cpu()[None, :] - width + 1)).floor()
            keep &= ~((t >= start) & (t < start + width))[:, :, None, None]
        return (x * keep).reshape(T, B, F)

    def _warp(self, x):
        """Stretch or squeeze each utterance's mel axis by a random factor in [1 - warp, 1 + warp]:
        band j takes the value at band j * factor (linear interpolation, held at the top band).
        A longer or shorter vocal tract moves every formant by about one factor, so this makes
        new speakers out of the training speakers (vocal tract length perturbation, Jaitly and
        Hinton 2013). x (T, B, stack, bands) -> same shape."""
        T, B, S, bands = x.shape
        factor = 1 + (torch.rand(B) * 2 - 1) * self.warp                 # (B,)
        source = (torch.arange(bands)[None, :] * factor[:, None]).clamp(max=bands - 1)   # (B, bands)
        low = source.floor().long().clamp(max=bands - 2)
        frac = (source - low)[None, :, None, :]                           # (1, B, 1, bands)
        index = low[None, :, None, :].expand(T, B, S, bands)
        return (1 - frac) * x.gather(3, index) + frac * x.gather(3, index + 1)


# --------------------------------------------------------------------------- batches, loss

def batch_tensors(batch):
    """A corpus Batch as tensors: x (T, B, F), x_lengths (B,), y_in (U, B), y_out (U, B)."""
    return (torch.from_numpy(batch.x), torch.from_numpy(batch.x_lengths),
            torch.from_numpy(batch.y_in), torch.from_numpy(batch.y_out))


def sequence_loss(logits, targets, label_smoothing: float = 0.0):
    """Mean cross-entropy over the non-<pad> positions of targets (U, B); logits (U, B, V)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                       ignore_index=PAD, label_smoothing=label_smoothing)


# --------------------------------------------------------------------------- training

def train(model: nn.Module, split: Split, config: dict = CONFIG, log_every: int = 0) -> dict:
    """Train ``model`` on ``split`` with the recipe in ``config`` (see the module docstring).

    Returns {"losses": per-step training losses, "seconds": wall-clock seconds,
    "cpu_seconds": process CPU seconds (all threads)}. Leaves the model in eval mode.
    """
    steps = config["steps"]
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config["lr"], total_steps=steps,
                                                   pct_start=config["warmup"])
    losses, epoch = [], 0
    started, cpu_started = time.perf_counter(), time.process_time()
    model.train()
    while len(losses) < steps:
        for batch in bucketed_batches(split, config["batch_size"], seed=config["seed"] + epoch,
                                      window=config["bucket_window"]):
            x, x_lengths, y_in, y_out = batch_tensors(batch)
            if hasattr(model, "loss"):     # a model with its own criterion (CTC: speechmodels.ctc)
                loss = model.loss(x, x_lengths, y_in, y_out)
            else:
                loss = sequence_loss(model(x, x_lengths, y_in), y_out, config["label_smoothing"])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config["clip"])
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if log_every and len(losses) % log_every == 0:
                print(f"step {len(losses):5d}  loss {np.mean(losses[-log_every:]):.3f}  "
                      f"{time.perf_counter() - started:6.1f} s", flush=True)
            if len(losses) == steps:
                break
        epoch += 1
    model.eval()
    return {"losses": losses, "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu_started}


def mean_every(values, k: int = 50) -> list[float]:
    """Means of consecutive chunks of k values (the last chunk may be shorter), rounded."""
    return [round(float(np.mean(values[i:i + k])), 4) for i in range(0, len(values), k)]


# --------------------------------------------------------------------------- evaluation

def decode_texts(model: nn.Module, split: Split, index, extra: int = 3) -> list[str]:
    """Greedy transcripts of split[index]; at most (longest reference + extra) tokens."""
    batch = make_batch(split, index)
    x, x_lengths, _, _ = batch_tensors(batch)
    max_len = int(batch.y_lengths.max()) + extra
    with torch.no_grad():
        tokens = model.greedy(x, x_lengths, max_len)
    return [DIGIT_VOCAB.decode(list(t) + [EOS]) for t in tokens]


def transcribe(model: nn.Module, split: Split, batch_size: int = 50) -> list[str]:
    """Greedy transcripts of every utterance of split, in order."""
    model.eval()
    hyps = []
    for start in range(0, len(split), batch_size):
        hyps += decode_texts(model, split, range(start, min(start + batch_size, len(split))))
    return hyps


def align_words(ref: list, hyp: list) -> tuple[int, list[bool]]:
    """Levenshtein alignment: (edit distance, for each reference word whether it was matched exactly)."""
    R, H = len(ref), len(hyp)
    d = np.zeros((R + 1, H + 1), dtype=np.int64)                      # (R+1, H+1)
    d[:, 0], d[0, :] = np.arange(R + 1), np.arange(H + 1)
    for i in range(1, R + 1):
        for j in range(1, H + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    hit, i, j = [False] * R, R, H                                       # trace back one best path
    while i > 0 and j > 0:
        if d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            hit[i - 1] = ref[i - 1] == hyp[j - 1]
            i, j = i - 1, j - 1
        elif d[i, j] == d[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return int(d[R, H]), hit


def score_by_length(refs: Iterable[str], hyps: Iterable[str]) -> dict:
    """Per number of reference digits n: sequence accuracy, digit error rate, accuracy per position.

    Returns {"accuracy_by_length": {n: acc}, "digit_error_rate_by_length": {n: errors / digits},
    "position_accuracy_by_length": {n: [accuracy of position 1..n]}}, keys n as str.
    """
    groups: dict[int, list] = {}
    for ref, hyp in zip(refs, hyps):
        groups.setdefault(len(ref.split()), []).append((ref.split(), hyp.split()))
    acc, der, pos = {}, {}, {}
    for n in sorted(groups):
        pairs = groups[n]
        aligned = [align_words(r, h) for r, h in pairs]
        acc[str(n)] = round(float(np.mean([r == h for r, h in pairs])), 4)
        der[str(n)] = round(sum(e for e, _ in aligned) / (n * len(pairs)), 4)
        pos[str(n)] = [round(float(v), 4) for v in np.mean([hit for _, hit in aligned], axis=0)]
    return {"accuracy_by_length": acc, "digit_error_rate_by_length": der,
            "position_accuracy_by_length": pos}


def by_source(split: Split, hyps: list[str], score=score_by_length) -> dict:
    """{"synthetic": score(refs, hyps), "real": score(refs, hyps)} over each source's utterances."""
    return {source: score([t for t, s in zip(split.texts, split.sources) if s == source],
                          [h for h, s in zip(hyps, split.sources) if s == source])
            for source in SOURCES if source in split.sources}


def evaluate(model: nn.Module, split: Split) -> dict:
    """`score_by_length` of the model's greedy transcripts of split (both sources pooled), the
    same per source ("by_source": unseen synthetic voices and unseen real speakers side by
    side), and the transcripts."""
    hyps = transcribe(model, split)
    return dict(score_by_length(split.texts, hyps), by_source=by_source(split, hyps), hypotheses=hyps)


def accuracy_by_length(model: nn.Module, split: Split) -> dict[int, float]:
    """Sequence accuracy (the whole digit string right) for each number of digits."""
    scores = score_by_length(split.texts, transcribe(model, split))["accuracy_by_length"]
    return {int(n): a for n, a in scores.items()}
