"""The course's speech corpus: connected digit strings ("three one four"), like TIDIGITS.

Every lab loads its data through this module:

    from speechcourse.corpus import load_split, DIGIT_VOCAB, iterate_batches
    train = load_split("train")              # train.features[i]: (T_i, 40) float32 log-mel
    train.texts[0]                           # 'seven two'
    for batch in iterate_batches(train, batch_size=32, seed=0):
        batch.x          # (T, B, 40) float32, zero-padded, time-major
        batch.x_mask     # (T, B) bool, True on real frames
        batch.labels     # (N, B) int64: the digits y1 .. yn of each utterance, padded with <pad> (= 0)
        batch.label_lengths  # (B,) int64: n, the number of digits of each utterance

The data are 40 log-mel energies at 50 frames per second (25 ms window, 20 ms hop) of
8 kHz audio, computed by `speechcourse.frontend.log_mel` from two sources
(`data/make_corpus.py`, described in `data/README.md`): speech synthesised with
espeak-ng in 85 voices, and six real speakers of the Free Spoken Digit Dataset, whose
isolated digits are joined into strings. `split.sources[i]` says which ("synthetic" or
"real"); `split.only("real")` keeps one source. They are stored as uint8 over a fixed
range of log energies; loading turns them back into float32.

This module ships to students, so it stops at the labels: the decoder's inputs and
targets for teacher forcing (`<s>` y1 .. yn and y1 .. yn `</s>`) are what Lab 2's
`shift_targets` asks for, and the book builds them in `speechmodels.batches`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from speechcourse.frontend import stack_frames

DATA_DIR = Path(os.environ.get("SPEECHCOURSE_DATA", Path(__file__).resolve().parent.parent / "data"))
CORPUS_FILE = "digits.npz"
SPLITS = ("train", "valid", "test", "test_by_length", "test_isolated")
SOURCES = ("synthetic", "real")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Storage format: features are quantised to uint8 on a fixed range of natural-log mel
# energies. Speech peaks near +9 (loudest utterances after gain); below -14 is far
# under any noise the corpus adds, so clipping there only flattens digital silence.
# One step is 24 / 255 = 0.094 nats (0.41 dB), far finer than anything a model uses.
LOG_MEL_MIN = -14.0
LOG_MEL_MAX = 10.0
FRAME_RATE = 50        # frames per second of the stored features (20 ms hop)
N_MELS = 40


def quantize(log_mel: np.ndarray) -> np.ndarray:
    """Float log-mel (T, M) -> uint8 (T, M) over [LOG_MEL_MIN, LOG_MEL_MAX] (clipped)."""
    scaled = (np.asarray(log_mel, dtype=np.float64) - LOG_MEL_MIN) / (LOG_MEL_MAX - LOG_MEL_MIN)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def dequantize(codes: np.ndarray) -> np.ndarray:
    """uint8 codes (T, M) -> float32 log-mel (T, M); inverse of `quantize` up to one step."""
    step = (LOG_MEL_MAX - LOG_MEL_MIN) / 255
    return (codes.astype(np.float32) * np.float32(step) + np.float32(LOG_MEL_MIN))


# --------------------------------------------------------------------------- vocabulary

class Vocab:
    """Word <-> index, with the three special tokens every seq2seq decoder needs.

    Index 0 is `<pad>` (so zero-padded arrays are padding), 1 is `<s>` (what the
    decoder is fed first) and 2 is `</s>` (predicting it ends the output).
    """
    PAD, BOS, EOS = "<pad>", "<s>", "</s>"

    def __init__(self, words: Sequence[str]):
        self.tokens = [self.PAD, self.BOS, self.EOS, *words]    # index -> token
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError(f"duplicate tokens in vocabulary {self.tokens}")
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        self.pad, self.bos, self.eos = 0, 1, 2

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"Vocab({self.tokens})"

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """'three one' -> [6, 4]; with bos/eos, <s> is prepended and </s> appended."""
        ids = []
        for word in text.split():
            if word not in self.index or self.index[word] < 3:
                raise ValueError(f"word {word!r} is not in the vocabulary {self.tokens[3:]}")
            ids.append(self.index[word])
        return ([self.bos] if bos else []) + ids + ([self.eos] if eos else [])

    def decode(self, ids) -> str:
        """Indices -> text: stops at the first </s>, skips <pad> and <s>."""
        words = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"index {i} is outside the vocabulary (0..{len(self.tokens) - 1})")
            if i == self.eos:
                break
            if i not in (self.pad, self.bos):
                words.append(self.tokens[i])
        return " ".join(words)


DIGIT_VOCAB = Vocab(DIGITS)   # 13 tokens: <pad> <s> </s> zero .. nine


# --------------------------------------------------------------------------- splits

@dataclasses.dataclass
class Split:
    """One split of the corpus. All lists have one entry per utterance.

    features: list of (T_i, F) float32 arrays (F = 40, or 40*k after stacking by k)
    texts:    list of str, e.g. 'three one four'
    voices:   list of str, who spoke it: an espeak-ng voice ('en-gb-scotland+f3') or a real
              speaker ('fsdd:george')
    sources:  list of str, 'synthetic' or 'real'
    """
    name: str
    features: list
    texts: list
    voices: list
    sources: list

    def __len__(self) -> int:
        return len(self.texts)

    def only(self, source: str) -> "Split":
        """The utterances of one source ('synthetic' or 'real'), in their order."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; choose {' or '.join(map(repr, SOURCES))}")
        keep = [i for i, s in enumerate(self.sources) if s == source]
        return Split(f"{self.name}[{source}]", [self.features[i] for i in keep],
                     [self.texts[i] for i in keep], [self.voices[i] for i in keep],
                     [self.sources[i] for i in keep])

    @property
    def n_digits(self) -> np.ndarray:
        """(N,) int: number of digits (words) in each utterance."""
        return np.array([len(t.split()) for t in self.texts])

    @property
    def n_frames(self) -> np.ndarray:
        """(N,) int: number of frames in each utterance."""
        return np.array([len(f) for f in self.features])


def load_split(name: str, stack: int = 1, path: str | os.PathLike | None = None) -> Split:
    """Load one split: "train", "valid", "test", "test_by_length" or "test_isolated".

    Every split but test_isolated holds both sources, synthetic voices first, then real
    speakers (`Split.sources`). test and test_by_length are spoken by voices and people
    never heard in train or valid; test_by_length has the same number of utterances for
    every length 1..10 and source; test_isolated holds each of the 1,000 recordings of the
    two real test speakers alone (one digit each).
    stack=k concatenates k consecutive frames (`frontend.stack_frames`): (T, 40) ->
    (T // k, 40k), a shorter time axis for the encoder.
    """
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; valid splits are {', '.join(SPLITS)}")
    file = Path(path) if path is not None else DATA_DIR / CORPUS_FILE
    if not file.exists():
        raise FileNotFoundError(f"corpus file {file} not found; regenerate it with `make data`")
    with np.load(file) as archive:   # no pickles: texts and voices are stored as unicode arrays
        codes = archive[f"{name}/features"]        # (sum T_i, 40) uint8, utterances end to end
        offsets = archive[f"{name}/offsets"]       # (N + 1,) utterance i is codes[o[i]:o[i+1]]
        texts = archive[f"{name}/texts"].tolist()
        voices = archive[f"{name}/voices"].tolist()
        sources = archive[f"{name}/sources"].tolist()
    everything = dequantize(codes)                 # one conversion for the split, then views
    features = [everything[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    if stack > 1:
        features = [stack_frames(f, stack) for f in features]
    return Split(name, features, texts, voices, sources)


# --------------------------------------------------------------------------- batches

def pad_features(features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """List of B arrays (T_i, F) -> x (T, B, F) float32, lengths (B,) int64, mask (T, B) bool.

    T = max T_i; x is zero after each sequence's end and mask[t, b] is True iff t < T_b.
    """
    if len(features) == 0:
        raise ValueError("pad_features needs at least one sequence")
    lengths = np.array([len(f) for f in features], dtype=np.int64)     # (B,)
    F = features[0].shape[-1]
    x = np.zeros((lengths.max(), len(features), F), dtype=np.float32)   # (T, B, F)
    for b, f in enumerate(features):
        if f.ndim != 2 or f.shape[1] != F:
            raise ValueError(f"sequence {b} has shape {f.shape}; expected (T, {F})")
        x[:len(f), b] = f
    mask = np.arange(x.shape[0])[:, None] < lengths[None, :]            # (T, B)
    return x, lengths, mask


def pad_labels(texts: Sequence[str], vocab: Vocab = DIGIT_VOCAB) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> labels (N, B) int64, the word ids of text b in column b padded with <pad> = 0,
    and lengths (B,) int64, the number of words n_b of each; N = max n_b.
    """
    seqs = [vocab.encode(t) for t in texts]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)                    # (B,)
    labels = np.full((max(lengths.max(initial=0), 1), len(seqs)), vocab.pad, dtype=np.int64)  # (N, B)
    for b, s in enumerate(seqs):
        labels[:len(s), b] = s
    return labels, lengths


@dataclasses.dataclass
class Batch:
    """A padded, time-major batch (numpy; `torch.from_numpy` turns any field into a tensor)."""
    x: np.ndarray              # (T, B, F) float32 features, zero-padded
    x_lengths: np.ndarray      # (B,) int64 frames per utterance
    x_mask: np.ndarray         # (T, B) bool, True on real frames
    labels: np.ndarray         # (N, B) int64 word ids y1 .. yn, then <pad> ..
    label_lengths: np.ndarray  # (B,) int64 number of words n of each utterance
    texts: list                # B strings
    index: np.ndarray          # (B,) int64 positions of these utterances in the split


def make_batch(split: Split, index: Sequence[int], vocab: Vocab = DIGIT_VOCAB) -> Batch:
    """Pad the utterances split[index] into one Batch."""
    index = np.asarray(index, dtype=np.int64)
    texts = [split.texts[i] for i in index]
    x, x_lengths, x_mask = pad_features([split.features[i] for i in index])
    labels, label_lengths = pad_labels(texts, vocab)
    return Batch(x, x_lengths, x_mask, labels, label_lengths, texts, index)


def batch_order(n: int, batch_size: int, seed: int | None = 0, shuffle: bool = True,
                drop_last: bool = False) -> list[np.ndarray]:
    """The index arrays of one pass over n utterances, in batches; shuffled by `seed`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return [order[start:start + batch_size] for start in range(0, stop, batch_size)]


def iterate_batches(split: Split, batch_size: int, seed: int | None = 0, shuffle: bool = True,
                    drop_last: bool = False, vocab: Vocab = DIGIT_VOCAB) -> Iterator[Batch]:
    """One pass (epoch) over a split in batches; shuffled by `seed` when shuffle=True.

    The same seed gives the same order; use a different seed per epoch
    (e.g. `seed=epoch`) to see the data in a new order each time.
    """
    for index in batch_order(len(split), batch_size, seed, shuffle, drop_last):
        yield make_batch(split, index, vocab)
