"""Batches for teacher forcing: the corpus's padded batch plus the decoder's inputs and targets.

The student package (`speechcourse.corpus`) stops at the labels, because building the
decoder's inputs and targets from them is Lab 2's `shift_targets`. The book, the
experiments and the benchmarks get them here, with the same calls as the corpus:

    from speechmodels.batches import iterate_batches, make_batch
    for batch in iterate_batches(train, batch_size=32, seed=epoch):
        batch.y_in       # (U, B) int64: <s> y1 .. yn, padded with <pad> (= 0); U = N + 1
        batch.y_out      # (U, B) int64: y1 .. yn </s>, padded with <pad>
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np

from speechcourse import corpus
from speechcourse.corpus import DIGIT_VOCAB, Split, Vocab


def teacher_forcing(labels: np.ndarray, lengths: np.ndarray, vocab: Vocab = DIGIT_VOCAB):
    """labels (N, B) int64 padded with <pad>, lengths (B,) int64 -> decoder inputs and targets.

    Returns y_in (N + 1, B) = <s> y1 .. yn, y_out (N + 1, B) = y1 .. yn </s>, both padded
    with <pad> after each utterance's n_b + 1 tokens, and mask (N + 1, B) bool, True there.
    """
    N, B = labels.shape
    steps = np.arange(N + 1)[:, None]                                    # (N + 1, 1)
    mask = steps <= lengths[None, :]                                     # (N + 1, B)
    padded = np.concatenate([labels, np.full((1, B), vocab.pad, labels.dtype)])   # (N + 1, B)
    y_out = np.where(steps == lengths[None, :], vocab.eos, np.where(mask, padded, vocab.pad))
    y_in = np.concatenate([np.full((1, B), vocab.bos, labels.dtype), padded[:-1]])
    y_in = np.where(mask, y_in, vocab.pad)
    return y_in.astype(np.int64), y_out.astype(np.int64), mask


@dataclasses.dataclass
class Batch(corpus.Batch):
    """A corpus Batch with the teacher-forcing fields the models train on."""
    y_in: np.ndarray = None       # (U, B) int64 decoder inputs: <s> y1 .. yn <pad> ..
    y_out: np.ndarray = None      # (U, B) int64 decoder targets: y1 .. yn </s> <pad> ..
    y_lengths: np.ndarray = None  # (B,) int64 = number of words + 1
    y_mask: np.ndarray = None     # (U, B) bool, True on real target positions


def make_batch(split: Split, index: Sequence[int], vocab: Vocab = DIGIT_VOCAB) -> Batch:
    """`speechcourse.corpus.make_batch`, plus y_in, y_out, y_lengths and y_mask."""
    plain = corpus.make_batch(split, index, vocab)
    y_in, y_out, y_mask = teacher_forcing(plain.labels, plain.label_lengths, vocab)
    return Batch(**vars(plain), y_in=y_in, y_out=y_out, y_lengths=plain.label_lengths + 1, y_mask=y_mask)


def pad_targets(texts: Sequence[str], vocab: Vocab = DIGIT_VOCAB):
    """Texts -> y_in (U, B), y_out (U, B), lengths (B,) = n + 1, mask (U, B); U = max n + 1."""
    labels, lengths = corpus.pad_labels(texts, vocab)
    y_in, y_out, mask = teacher_forcing(labels, lengths, vocab)
    return y_in, y_out, lengths + 1, mask


def iterate_batches(split: Split, batch_size: int, seed: int | None = 0, shuffle: bool = True,
                    drop_last: bool = False, vocab: Vocab = DIGIT_VOCAB) -> Iterator[Batch]:
    """`speechcourse.corpus.iterate_batches` (same order for the same seed), with teacher forcing."""
    for index in corpus.batch_order(len(split), batch_size, seed, shuffle, drop_last):
        yield make_batch(split, index, vocab)


def bucketed_batches(split: Split, batch_size: int, seed: int = 0, window: int = 20,
                     vocab: Vocab = DIGIT_VOCAB) -> Iterator[Batch]:
    """One pass over a split in batches of utterances of similar length, in random order.

    A random batch pads every utterance to its longest one; with strings of 1 to 10 digits
    about half of each batch is then padding, which the encoder computes all the same. Here
    the shuffled utterances are taken ``window`` batches at a time, sorted by length and cut
    into batches, and the batches of the whole pass are shuffled: each batch is nearly
    padding-free, every utterance is still seen once per pass, and the seed fixes the order.
    """
    rng = np.random.default_rng(seed)
    lengths = np.array([len(f) for f in split.features])
    order = rng.permutation(len(split))
    batches = []
    for start in range(0, len(order), batch_size * window):
        chunk = order[start:start + batch_size * window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    for index in rng.permutation(len(batches)):
        yield make_batch(split, batches[index], vocab)
