"""Error rates from the Levenshtein alignment: WER over words, CER over characters (chapter 5 on).

    error_rate(references, hypotheses, unit="word") -> {"rate", "substitutions", "deletions",
                                                        "insertions", "reference_units", "sequence_accuracy"}

A substitution replaces a reference unit, a deletion drops one, an insertion adds one; the
rate is (S + D + I) / N with N the number of reference units, summed over the corpus (so a
rate can exceed 1). Where several alignments have the fewest errors, the backtrace prefers a
match or substitution, then a deletion, then an insertion (as sclite does).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def align(reference: Sequence, hypothesis: Sequence) -> tuple[int, int, int]:
    """(S, D, I) of one minimal Levenshtein alignment of two sequences of units."""
    R, H = len(reference), len(hypothesis)
    cost = np.zeros((R + 1, H + 1), dtype=np.int64)                    # (R + 1, H + 1)
    cost[:, 0], cost[0, :] = np.arange(R + 1), np.arange(H + 1)
    for i in range(1, R + 1):
        for j in range(1, H + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]),
                             cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    S = D = I = 0
    i, j = R, H
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            S += int(reference[i - 1] != hypothesis[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            D, i = D + 1, i - 1
        else:
            I, j = I + 1, j - 1
    return S, D, I


def units(text: str, unit: str) -> list:
    """Words (split on spaces) or characters (spaces between words kept as a character)."""
    if unit == "word":
        return text.split()
    if unit == "char":
        return list(" ".join(text.split()))
    raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")


def error_rate(references: Sequence[str], hypotheses: Sequence[str], unit: str = "word") -> dict:
    """Corpus error rate with its substitutions, deletions and insertions counted separately."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses: give one of each per utterance")
    S = D = I = N = 0
    for reference, hypothesis in zip(references, hypotheses):
        r, h = units(reference, unit), units(hypothesis, unit)
        s, d, i = align(r, h)
        S, D, I, N = S + s, D + d, I + i, N + len(r)
    if N == 0:
        raise ValueError("the references hold no units: an error rate needs at least one")
    right = [" ".join(r.split()) == " ".join(h.split()) for r, h in zip(references, hypotheses)]
    return {"rate": (S + D + I) / N, "substitutions": S, "deletions": D, "insertions": I,
            "reference_units": N, "sequence_accuracy": float(np.mean(right))}


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """Word error rate (see `error_rate`)."""
    return error_rate(references, hypotheses, "word")


def cer(references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """Character error rate (see `error_rate`)."""
    return error_rate(references, hypotheses, "char")


# --------------------------------------------------------------------------- 95% intervals

def binomial_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% for z = 1.96): (low, high).

    Better than p +- z sqrt(p(1-p)/n) near 0 and 1, where accuracies of good models live.
    """
    if trials <= 0:
        raise ValueError(f"an interval needs at least one trial, got {trials}")
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_interval(references: Sequence[str], hypotheses: Sequence[str], unit: str = "word",
                       resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of the corpus error rate, resampling whole utterances.

    Errors within an utterance are not independent (one lost alignment costs several words),
    so the utterance, not the word, is what is drawn with replacement.
    """
    per = [(sum(align(units(r, unit), units(h, unit))), len(units(r, unit)))
           for r, h in zip(references, hypotheses)]
    errors, counts = np.array([e for e, _ in per], dtype=float), np.array([n for _, n in per], dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per), size=(resamples, len(per)))       # (resamples, utterances)
    rates = errors[draws].sum(1) / np.maximum(counts[draws].sum(1), 1)
    return float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))
