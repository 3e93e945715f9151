"""Connectionist temporal classification (CTC, Graves et al. 2006) on chapter 3's encoder.

The same `FrontEnd` and bidirectional GRU encoder as chapter 3's attention models, but no
decoder: a linear layer turns each encoder state into a distribution over the blank and
the ten digits, one per encoder frame,

    log_probs = log_softmax(h_t W + b)            (T, B, C), C = 1 + 10, class 0 = blank

and the loss is `torch.nn.CTCLoss`: minus the log of the summed probability of every
frame labelling that collapses to the transcript (repeats merged, then blanks dropped).
Every frame's output sees the whole utterance through the encoder; what CTC assumes is that
the outputs of different frames are conditionally independent given the input.

The model interface of `speechmodels.training`, with the one hook that training needs:

    model.loss(x, x_lengths, y_in, y_out) -> scalar   train() uses it instead of the
                                                      cross-entropy of model(x, x_lengths, y_in)
    model(x, x_lengths, y_in=None) -> log_probs (T, B, C)   y_in is ignored
    model.greedy(x, x_lengths, max_len) -> B token lists     best path, in DIGIT_VOCAB ids
    model.posteriors(x, x_lengths) -> (T, B, C) per-frame probabilities (for the book's spikes)

Labels: CTC class c >= 1 is the digit whose `DIGIT_VOCAB` id is c + 2 (`zero` = 3 -> 1, ...,
`nine` = 12 -> 10); class 0 is the blank. Label smoothing, a cross-entropy notion, is not
used: the CTC loss has no per-position targets to smooth.
"""
from __future__ import annotations

import torch
from torch import nn

from speechcourse.corpus import DIGIT_VOCAB
from speechmodels.seq2seq import BiGRUEncoder
from speechmodels.training import FrontEnd

BLANK = 0
FIRST_DIGIT = 3                                     # DIGIT_VOCAB id of "zero"
LABELS = ["_"] + DIGIT_VOCAB.tokens[FIRST_DIGIT:]   # CTC class -> symbol; "_" is the blank


def to_ctc(tokens: torch.Tensor) -> torch.Tensor:
    """DIGIT_VOCAB ids of digits -> CTC classes (1..10)."""
    return tokens - (FIRST_DIGIT - 1)


def ctc_targets(y_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder targets y_out (U, B) (y1 .. yn </s> <pad> ..) -> CTC targets (B, N) padded with
    the blank, and their lengths (B,) = n: the digits only, as CTC classes."""
    digits = y_out >= FIRST_DIGIT                                        # (U, B) not <pad> or </s>
    lengths = digits.sum(0)                                              # (B,)
    targets = torch.where(digits, to_ctc(y_out), torch.zeros_like(y_out)).T   # (B, U)
    return targets[:, :max(int(lengths.max()), 1)], lengths


def best_path(log_probs: torch.Tensor, lengths: torch.Tensor, max_len: int | None = None) -> list[list[int]]:
    """Greedy CTC decoding: the most likely class of each real frame, repeats merged, then
    blanks dropped. log_probs (T, B, C), lengths (B,) -> B lists of CTC classes (at most max_len)."""
    best = log_probs.argmax(-1).T.tolist()                              # (B, T)
    out = []
    for b, frames in enumerate(best):
        frames = frames[:int(lengths[b])]
        merged = [c for t, c in enumerate(frames) if t == 0 or c != frames[t - 1]]
        out.append([c for c in merged if c != BLANK][:max_len])
    return out


class CTCModel(nn.Module):
    """FrontEnd -> bi-GRU encoder (states (T, B, E)) -> linear layer over blank + 10 digits."""

    def __init__(self, n_in: int, hidden: int = 96, layers: int = 2, dropout: float = 0.0,
                 front: FrontEnd | None = None):
        super().__init__()
        self.front = front if front is not None else FrontEnd()
        self.encoder = BiGRUEncoder(n_in, hidden, layers, dropout)
        self.out = nn.Linear(self.encoder.size, len(LABELS))            # W (E, C), b (C,)
        self.ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)

    def forward(self, x, x_lengths, y_in=None):
        """x (T, B, F) raw stacked frames -> log-probabilities (T, B, C) of each frame's class."""
        states, _ = self.encoder(self.front(x, x_lengths), x_lengths)   # (T, B, E)
        return self.out(states).log_softmax(-1)                         # (T, B, C)

    def loss(self, x, x_lengths, y_in, y_out):
        """CTC loss of the transcripts in y_out, averaged over the batch (each utterance's loss
        divided by its number of digits, `CTCLoss`'s reduction="mean")."""
        targets, target_lengths = ctc_targets(y_out)
        return self.ctc(self(x, x_lengths), targets, x_lengths, target_lengths)

    @torch.no_grad()
    def posteriors(self, x, x_lengths):
        """Per-frame class probabilities (T, B, C)."""
        return self(x, x_lengths).exp()

    @torch.no_grad()
    def greedy(self, x, x_lengths, max_len: int):
        """Best-path transcripts: B lists of DIGIT_VOCAB ids (no </s>), at most max_len each."""
        return [[c + FIRST_DIGIT - 1 for c in path]
                for path in best_path(self(x, x_lengths), x_lengths, max_len)]


def ctc_model(n_in: int, config: dict) -> CTCModel:
    """Chapter 3's encoder (FrontEnd and bi-GRU sized by config) with a CTC output layer."""
    return CTCModel(n_in, config["hidden"], config["layers"], config["dropout"], FrontEnd.from_config(config))
