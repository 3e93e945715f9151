"""Transcribe your own recording with the committed capstone recogniser (chapter 5).

    python -m speechmodels.transcribe FILE [--beam N] [--plot PNG]

prints what the model heard, a confidence for each word and the seconds it took (reading,
features, encoder, search; loading the model once is not counted), here with the model
committed when this was written (a retrained model hears it differently)::

    $ python -m speechmodels.transcribe data/wav/real_3_digits.wav     # lucas said "seven two six"
    heard: seven two six  (726)
      seven  0.941
      two    0.843
      six    0.882
    took 0.715 s: greedy search over 1.62 s of audio (8000 Hz, 1 channel)

and, with ``--plot``, saves the spectrogram with the cross-attention map under it.

The model is ``book/results/ch05_recogniser.pt`` (a float16 state_dict of
`speechmodels.recogniser.Recogniser`, built as ``experiments/ch05_recogniser.py`` builds it:
``Recogniser(160, CONFIG)``), loaded once per process.

**Audio.** Anything libsndfile reads (WAV of any sample format, FLAC, OGG, ...), at any rate
and with any number of channels: `soundfile` reads it as floats in [-1, 1], the channels are
averaged to mono and `soxr` resamples to 8 kHz (`speechcourse.frontend.SAMPLE_RATE`). An 8 kHz
file is used as it is.

**Features** are computed exactly as ``data/make_corpus.py`` computes the corpus's: ``log_mel``
with a 20 ms hop, `speechcourse.corpus.quantize`, then ``dequantize`` and ``stack_frames(., 4)``,
as ``load_split(..., stack=4)`` hands them to the model. So a corpus utterance's WAV
(``data/wav/``) gives exactly its stored features, and the same transcript.

**Confidence** of a word: the decoder's probability of that token given the audio and the
words before it, P(z_u | z_<u, x), from the softmax of the step that emitted it. With
``--beam N`` the words are the best hypothesis of the beam search (length-normalised, as in
chapter 5's experiments) and each word's confidence is the same quantity on that hypothesis's
prefix: so it is not the beam's score, and a word a beam kept against the greedy choice can
have a confidence below 0.5. `Transcript.end_confidence` is P(</s>) after the last word.

**Refused input**, with one sentence on stderr and exit status 1 (`BadInput`): a missing or
unreadable path, a directory or other non-regular file, an empty file, a file that is not
audio, one sampled below `MIN_RATE` (4 kHz), one with no samples, non-finite samples, digital
silence (peak below `SILENCE_DBFS` = -60 dBFS: 0.001 of full scale), longer than `MAX_SECONDS`
(30 s), or shorter than `MIN_SAMPLES` at 8 kHz (0.165 s: the two encoder steps of 4 x 20 ms
frames that per-utterance normalisation needs; one step normalises to all zeros).

**Python API** (what chapter 5 uses)::

    from speechmodels.transcribe import transcribe_file, plot_transcript
    t = transcribe_file("data/wav/real_3_digits.wav", beam=1)
    t.text, t.words, t.confidences, t.seconds     # "seven two six", ("seven", ...), (0.941, ...), 0.7
    t.digits, t.end_confidence, t.duration       # "726", P(</s>) after the last word, 1.62 (s of audio)
    t.features      # (T, 40) float32 log-mel, 50 frames per second: the spectrogram
    t.attention     # (len(words) + 1, T // 4) float32: the last decoder layer's cross-attention,
                    # mean over heads; one row per emitted symbol (the last is </s>), one column
                    # per encoder step (80 ms, frames 4t .. 4t+3 of `features`; the last T % 4
                    # frames are dropped, as the corpus's stacking drops them); rows sum to 1
    plot_transcript(t)                 # a new figure; or plot_transcript(t, "out.png"),
                                       # or into a Figure, or into a pair of Axes

`transcribe_samples(samples, sample_rate, beam)` does the same for an array already in memory
(floats in [-1, 1], or integer PCM such as int16, which is scaled by its full range),
`read_audio(path)` returns the 8 kHz mono waveform and `features_of(samples)` its features.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr

from speechcourse.corpus import DIGIT_VOCAB, DIGITS, FRAME_RATE, dequantize, quantize
from speechcourse.frontend import SAMPLE_RATE, WINDOW_MS, log_mel, ms_to_samples, stack_frames

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "book" / "results" / "ch05_recogniser.pt"
N_IN = 160                      # 4 stacked frames of 40 mel bands, as the capstone was trained
STACK = 4                       # = CONFIG["stack"]; checked against it when the model loads
HOP_MS = 1000 / FRAME_RATE      # 20 ms, the corpus's hop
MAX_SECONDS = 30.0
MIN_RATE = 4_000                # Hz: below this a file holds nothing above 2 kHz, too little of speech
SILENCE_DBFS = -60.0            # a recording whose loudest sample is below this is digital silence
MIN_STEPS = 2                   # encoder steps that per-utterance normalisation needs
MIN_SAMPLES = ms_to_samples(WINDOW_MS) + (MIN_STEPS * STACK - 1) * ms_to_samples(HOP_MS)   # 1320
MAX_BYTES = 1 << 30             # a file larger than this is refused before it is read


class BadInput(ValueError):
    """Input the recogniser cannot transcribe; the message is one sentence for the user."""


@dataclasses.dataclass(frozen=True)
class Transcript:
    """What the recogniser heard in one recording (see the module docstring)."""
    text: str                       # "seven two six"; "" when it heard nothing
    words: tuple                    # ("seven", "two", "six")
    confidences: tuple              # P(word | earlier words, audio), one float per word
    seconds: float                  # wall seconds: features, encoder, search, attention (model load excluded)
    features: np.ndarray            # (T, 40) float32 log-mel, 50 frames per second
    attention: np.ndarray           # (len(words) + 1, T // 4) float32, rows sum to 1
    end_confidence: float = float("nan")   # P(</s>) after the last word
    beam: int = 1
    duration: float = 0.0           # seconds of audio

    @property
    def digits(self) -> str:
        """The words as numerals: "726"."""
        return "".join(str(DIGITS.index(w)) for w in self.words)


# --------------------------------------------------------------------------- audio

def _describe(path) -> str:
    return repr(str(path))


def read_audio(path) -> tuple[np.ndarray, int, int]:
    """Read any audio file: (waveform (N,) float64 at 8 kHz, mono; original rate; channels).

    Raises `BadInput` with one sentence for every kind of input it refuses.
    """
    name = _describe(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadInput(f"{name} does not exist.") from None
    except OSError as error:
        raise BadInput(f"{name} cannot be read ({error.strerror or error}).") from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{name} is a directory, not an audio file.")
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{name} is not a regular file.")
    if info.st_size == 0:
        raise BadInput(f"{name} is empty (0 bytes).")
    if info.st_size > MAX_BYTES:
        raise BadInput(f"{name} is {info.st_size / 2**20:.0f} MiB, too large for a recording of at most "
                       f"{MAX_SECONDS:g} s.")
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise BadInput(f"{name} cannot be read ({error.strerror or error}).") from None
    with handle:
        try:
            with soundfile.SoundFile(handle) as audio:
                rate, channels, frames = audio.samplerate, audio.channels, audio.frames
                if rate <= 0 or channels <= 0:
                    raise BadInput(f"{name} declares {rate} Hz and {channels} channel(s), which is not audio.")
                if rate < MIN_RATE:
                    raise BadInput(f"{name} is sampled at {rate} Hz; speech needs at least {MIN_RATE} Hz "
                                   f"(the recogniser hears up to 3.8 kHz, at {SAMPLE_RATE} Hz).")
                if frames > MAX_SECONDS * rate:
                    raise BadInput(f"{name} is {frames / rate:.1f} s long; the recogniser takes at most "
                                   f"{MAX_SECONDS:g} s.")
                samples = audio.read(dtype="float64", always_2d=True)          # (N, channels)
        except BadInput:
            raise
        except Exception as error:        # libsndfile: unknown format, truncated or corrupt data
            detail = getattr(error, "error_string", None) or str(error).split("\n")[0].split(": ")[-1]
            detail = detail.strip().rstrip(".").replace(". ", ": ")      # one sentence
            raise BadInput(f"{name} is not an audio file that libsndfile can read ({detail}).") from None
    if samples.shape[0] == 0:
        raise BadInput(f"{name} holds no samples.")
    if samples.shape[0] > MAX_SECONDS * rate:
        raise BadInput(f"{name} is {samples.shape[0] / rate:.1f} s long; the recogniser takes at most "
                       f"{MAX_SECONDS:g} s.")
    if not np.isfinite(samples).all():
        raise BadInput(f"{name} holds samples that are not finite numbers (NaN or infinity).")
    mono = samples.mean(axis=1)                                                # (N,)
    check_level(mono, name)
    mono = resample(mono, rate, name)                                          # (N * 8000 / rate,)
    check_length(mono, name)
    return mono, rate, channels


def resample(samples: np.ndarray, rate: int, name: str = "the recording") -> np.ndarray:
    """(N,) at ``rate`` -> 8 kHz with soxr (unchanged at 8 kHz); BadInput below MIN_RATE."""
    if rate == SAMPLE_RATE:
        return samples
    if rate < MIN_RATE:
        raise BadInput(f"{name} is sampled at {rate} Hz; speech needs at least {MIN_RATE} Hz "
                       f"(the recogniser hears up to 3.8 kHz, at {SAMPLE_RATE} Hz).")
    try:
        return soxr.resample(samples, rate, SAMPLE_RATE)
    except Exception as error:       # soxr refuses a ratio it cannot handle
        raise BadInput(f"{name} cannot be resampled from {rate} Hz to {SAMPLE_RATE} Hz ({error}).") from None


def check_level(samples: np.ndarray, name: str = "the recording") -> None:
    """Refuse digital silence: a peak below SILENCE_DBFS (all zeros included)."""
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    if peak == 0.0:
        raise BadInput(f"{name} is digital silence (every sample is zero).")
    if 20 * math.log10(peak) < SILENCE_DBFS:
        raise BadInput(f"{name} is digital silence (its loudest sample is {20 * math.log10(peak):.0f} dBFS, "
                       f"below {SILENCE_DBFS:g} dBFS).")


def check_length(samples: np.ndarray, name: str = "the recording") -> None:
    """Refuse a recording (8 kHz) shorter than MIN_SAMPLES or longer than MAX_SECONDS."""
    if len(samples) < MIN_SAMPLES:
        raise BadInput(f"{name} is {len(samples) / SAMPLE_RATE:.3f} s long; the recogniser needs at least "
                       f"{MIN_SAMPLES / SAMPLE_RATE:.3f} s ({MIN_STEPS} encoder steps of {STACK} frames of "
                       f"{HOP_MS:g} ms).")
    if len(samples) > MAX_SECONDS * SAMPLE_RATE:
        raise BadInput(f"{name} is {len(samples) / SAMPLE_RATE:.1f} s long; the recogniser takes at most "
                       f"{MAX_SECONDS:g} s.")


def log_mel_of(samples: np.ndarray) -> np.ndarray:
    """8 kHz waveform in [-1, 1] (N,) -> (T, 40) float32 log-mel, exactly as the corpus stores it
    (quantised to uint8 and back)."""
    return dequantize(quantize(log_mel(np.asarray(samples, dtype=np.float64), hop_ms=HOP_MS)))


def features_of(samples: np.ndarray) -> np.ndarray:
    """8 kHz waveform (N,) -> the model's input (T // 4, 160) float32, as `load_split(.., stack=4)`."""
    return stack_frames(log_mel_of(samples), STACK)


# --------------------------------------------------------------------------- model

@functools.lru_cache(maxsize=4)
def load_model(path: str | os.PathLike = MODEL):
    """The capstone `Recogniser` with the committed weights, in eval mode (cached per path)."""
    import torch

    from speechmodels.recogniser import Recogniser
    from speechmodels.training import CONFIG

    assert CONFIG["stack"] == STACK, "speechmodels.transcribe.STACK must equal CONFIG['stack']"
    model = Recogniser(N_IN, CONFIG)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def max_symbols(steps: int) -> int:
    """How many symbols a search may emit for ``steps`` encoder steps (80 ms each): one per step,
    plus </s>. A digit lasts longer than 80 ms, so a model that ends never meets this cap."""
    return steps + 1


def decode(model, x: np.ndarray, beam: int = 1):
    """x (T', 160) -> (tokens, confidences (U,), P(</s>), attention (U + 1, T')).

    Greedy (``beam=1``, `speechmodels.decoding.greedy`, the cached decoder) or beam search
    (`beam_decode`, length penalty 1.0 as in chapter 5); then one teacher-forced pass over the
    chosen tokens gives each step's probabilities and the cross-attention weights (the causal
    mask makes it the same computation as the steps that emitted them).
    """
    import torch

    from speechmodels.decoding import BOS, beam_decode, greedy
    from speechmodels.transformer import causal_mask

    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    with torch.no_grad():
        frames = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[:, None, :]   # (T', 1, 160)
        lengths = torch.tensor([frames.shape[0]])
        memory, pad = model.encode(frames, lengths)                              # (T', 1, d), (1, T')
        n = max_symbols(frames.shape[0])
        if beam == 1:
            tokens = greedy(model.decoder, memory, pad, n)[0]
        else:
            tokens = beam_decode(model.decoder, memory, pad, beam, n, 1.0)[0]
        y_in = torch.tensor([BOS] + tokens)[:, None]                             # (U + 1, 1)
        logits, weights = model.decoder(y_in, memory, pad, causal_mask(y_in.shape[0]), return_weights=True)
        probs = torch.softmax(logits[:, 0].double(), dim=-1)                     # (U + 1, V)
        confidences = [float(probs[u, z]) for u, z in enumerate(tokens)]
        end = float(probs[len(tokens), DIGIT_VOCAB.eos])
        attention = weights[-1][1][0].mean(0).float().numpy()                    # (U + 1, T')
    return tokens, confidences, end, attention


def transcribe_samples(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, beam: int = 1,
                       model=None) -> Transcript:
    """Transcribe a waveform (N,) or (N, channels) at ``sample_rate``: floats in [-1, 1], or
    integer PCM (int16 is divided by 32768, as soundfile reads a 16-bit file)."""
    started = time.perf_counter()
    samples = np.asarray(samples)
    if samples.dtype.kind in "iu":
        info = np.iinfo(samples.dtype)
        full = (int(info.max) + 1) / (2.0 if info.min == 0 else 1.0)
        samples = (samples.astype(np.float64) - (full if info.min == 0 else 0.0)) / full
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if not np.isfinite(samples).all():
        raise BadInput("the recording holds samples that are not finite numbers (NaN or infinity).")
    check_level(samples)
    samples = resample(samples, sample_rate)
    check_length(samples)
    return _transcribe(samples, beam, model, started)


def transcribe_file(path, beam: int = 1, model=None) -> Transcript:
    """Read ``path`` (any rate, any channels), resample to 8 kHz and transcribe it.

    Raises `BadInput` (one sentence) for input it refuses; see the module docstring.
    """
    model = load_model() if model is None else model
    started = time.perf_counter()
    samples, _, _ = read_audio(path)
    return _transcribe(samples, beam, model, started)


def _transcribe(samples, beam, model, started) -> Transcript:
    model = load_model() if model is None else model
    started = time.perf_counter() if started is None else started
    spectrogram = log_mel_of(samples)                                            # (T, 40)
    tokens, confidences, end, attention = decode(model, stack_frames(spectrogram, STACK), beam)
    words = tuple(DIGIT_VOCAB.decode(tokens + [DIGIT_VOCAB.eos]).split())
    return Transcript(text=" ".join(words), words=words, confidences=tuple(confidences),
                      seconds=time.perf_counter() - started, features=spectrogram, attention=attention,
                      end_confidence=end, beam=beam, duration=len(samples) / SAMPLE_RATE)


# --------------------------------------------------------------------------- plot

def plot_transcript(t: Transcript, target=None):
    """The spectrogram (top) and the cross-attention map (below), on one time axis in seconds.

    ``target``: None (a new pyplot figure, for a notebook), a path (saved as PNG, nothing
    left open), a matplotlib ``Figure`` to draw into, or a pair of Axes (spectrogram, attention).
    Returns the figure.
    """
    from matplotlib.figure import Figure

    path = None
    if target is None:
        import matplotlib.pyplot as plt
        fig = plt.figure(figsize=(9.0, 5.0), layout="constrained")
    elif isinstance(target, (str, os.PathLike)):
        path, fig = target, Figure(figsize=(9.0, 5.0), layout="constrained")
    elif isinstance(target, Figure):
        fig = target
    else:
        fig = None
    if fig is not None:
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.2))
    else:
        top, bottom = target
        fig = top.figure
    frame_s, step_s = HOP_MS / 1000, HOP_MS * STACK / 1000
    T, M = t.features.shape
    im = top.imshow(t.features.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                    extent=(0, T * frame_s, 0, M))
    top.set_ylabel("mel band")
    top.set_title(f"heard: {t.text or '(nothing)'}", fontsize=10)
    fig.colorbar(im, ax=top, label="log mel energy", pad=0.01)
    rows = list(t.words) + ["</s>"]
    U, steps = t.attention.shape
    im = bottom.imshow(t.attention, origin="upper", aspect="auto", cmap="viridis", interpolation="nearest",
                       extent=(0, steps * step_s, U, 0), vmin=0)
    bottom.set_yticks(np.arange(U) + 0.5, labels=rows[:U])
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("emitted symbol")
    fig.colorbar(im, ax=bottom, label="cross-attention", pad=0.01)
    bottom.set_xlim(0, T * frame_s)
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig


# --------------------------------------------------------------------------- command line

def report(t: Transcript, rate: int, channels: int) -> str:
    """The lines the command prints."""
    lines = [f"heard: {t.text}  ({t.digits})" if t.words else "heard: nothing (the model ended at once)"]
    width = max((len(w) for w in t.words), default=0)
    lines += [f"  {w:<{width}}  {c:.3f}" for w, c in zip(t.words, t.confidences)]
    search = "greedy search" if t.beam == 1 else f"beam search (width {t.beam})"
    lines.append(f"took {t.seconds:.3f} s: {search} over {t.duration:.2f} s of audio "
                 f"({rate} Hz, {channels} channel{'s' if channels != 1 else ''})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speechmodels.transcribe",
                                     description="Transcribe a recording of spoken digits with the capstone model.")
    parser.add_argument("file", help="an audio file (WAV, FLAC, ...; any rate, any channels), at most 30 s")
    parser.add_argument("--beam", type=int, default=1, help="beam width (default 1: greedy)")
    parser.add_argument("--plot", metavar="PNG", help="save the spectrogram and the attention map here")
    args = parser.parse_args(argv)
    if args.beam < 1:
        parser.error(f"--beam must be at least 1, got {args.beam}")
    try:
        samples, rate, channels = read_audio(args.file)      # refuses bad input before torch loads
        if not MODEL.is_file():
            raise BadInput(f"the model {MODEL} is missing; train it with experiments/ch05_recogniser.py.")
        model = load_model()
        t = _transcribe(samples, args.beam, model, time.perf_counter())
        print(report(t, rate, channels))
        if args.plot:
            try:
                plot_transcript(t, args.plot)
            except OSError as error:
                raise BadInput(f"cannot write the plot to {_describe(args.plot)} "
                               f"({error.strerror or error}).") from None
            print(f"plot: {args.plot}")
    except BadInput as error:
        print(f"transcribe: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
