"""From waveform to frames: the speech front end of the course, in numpy only.

A recogniser never sees the waveform itself. It sees a sequence of *frames*: short
overlapping slices of the signal, each summarised by how much energy it has in a few
dozen frequency bands spaced like human hearing (the mel scale). The steps, each a
small function below:

    waveform (N,)
      -> frame_signal     (T, L)       slices of L samples, one every H samples
      -> apply_window     (T, L)       taper each slice so its edges do not click
      -> power_spectrum   (T, K)       energy per frequency bin, K = n_fft // 2 + 1
      -> @ mel_filterbank (K, M)       pool bins into M mel bands
      -> log              (T, M)       loudness is heard (and modelled) on a log scale
      -> stack_frames     (T // k, k*M) optional: fewer, wider frames (LAS's pyramid)

`log_mel` runs the whole chain. Features of one utterance are time-major, (T, n_mels),
as everywhere in the course (DEVELOPERS.md).
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 8_000   # Hz: the telephone band, and the rate of the course's real recordings (FSDD)
WINDOW_MS = 25.0      # each frame sees 25 ms (200 samples): long enough for a few pitch periods
HOP_MS = 10.0         # the classic hop; the course corpus stores a 20 ms hop (50 frames/s)
N_FFT = 512           # 200 samples zero-padded to 512: a 15.6 Hz grid, so the narrowest mel
                      # filter still spans 4 FFT bins (at 256 points it spans 2)
N_MELS = 40
F_MIN = 20.0          # Hz: the mel filters of `log_mel` span 20 Hz .. 3.8 kHz; above 3.8 kHz the
F_MAX = 3_800.0       # resamplers' anti-aliasing filters leave almost nothing below Nyquist (4 kHz)


def ms_to_samples(ms: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Milliseconds to a whole number of samples (25 ms at 8 kHz is 200)."""
    return int(round(ms * sample_rate / 1000.0))


def num_frames(n_samples: int, frame_length: int, hop_length: int) -> int:
    """How many whole frames fit in a signal: 1 + (N - L) // H.

    No padding: a frame is only made where all L samples exist. One second at
    8 kHz with L = 200, H = 80 gives 98 frames; with H = 160 it gives 49.
    """
    if n_samples < frame_length:
        raise ValueError(
            f"signal of {n_samples} samples is shorter than one frame ({frame_length} samples)")
    return 1 + (n_samples - frame_length) // hop_length


def frame_signal(signal: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Cut a 1-D signal (N,) into overlapping frames (T, frame_length).

    Frame t holds samples [t*H, t*H + L). Adjacent frames overlap by L - H samples, so
    a sound that falls on a frame edge is still seen whole by a neighbour.
    """
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise ValueError(f"frame_signal expects a 1-D waveform (N,), got shape {signal.shape}")
    if frame_length <= 0 or hop_length <= 0:
        raise ValueError(f"frame_length and hop_length must be positive, got {frame_length}, {hop_length}")
    T = num_frames(len(signal), frame_length, hop_length)
    starts = np.arange(T)[:, None] * hop_length           # (T, 1)
    offsets = np.arange(frame_length)[None, :]             # (1, L)
    return signal[starts + offsets]                        # (T, L)


def window(kind: str, length: int) -> np.ndarray:
    """A tapering window (length,): 'hamming', 'hann' or 'rectangular'.

    Cutting a frame out with hard edges adds energy at all frequencies (spectral
    leakage); a window that fades to (nearly) zero at both ends reduces it.
    """
    if kind == "hamming":
        return np.hamming(length)
    if kind == "hann":
        return np.hanning(length)
    if kind == "rectangular":
        return np.ones(length)
    raise ValueError(f"unknown window {kind!r}; choose 'hamming', 'hann' or 'rectangular'")


def apply_window(frames: np.ndarray, kind: str = "hamming") -> np.ndarray:
    """Multiply every frame (T, L) by the same window (L,)."""
    return frames * window(kind, frames.shape[-1])         # (T, L)


def power_spectrum(frames: np.ndarray, n_fft: int = N_FFT) -> np.ndarray:
    """|DFT|^2 of each frame: (T, L) -> (T, n_fft // 2 + 1).

    Frames shorter than n_fft are zero-padded (finer frequency grid, same content).
    Only the non-negative frequencies are kept: a real signal's spectrum is symmetric.
    Bin k is at frequency k * sample_rate / n_fft.
    """
    if frames.shape[-1] > n_fft:
        raise ValueError(f"n_fft={n_fft} is smaller than the frame length {frames.shape[-1]}")
    spectrum = np.fft.rfft(frames, n=n_fft, axis=-1)       # (T, K) complex
    return spectrum.real ** 2 + spectrum.imag ** 2         # (T, K)


def hz_to_mel(hz):
    """The (HTK) mel scale: roughly linear below 1 kHz, logarithmic above."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=float) / 700.0)


def mel_to_hz(mel):
    """Inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=float) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """Triangular filters equally spaced on the mel scale: (n_fft // 2 + 1, n_mels).

    Filter m rises from centre m-1 to a peak of 1 at centre m and falls to zero at
    centre m+1, so low bands are narrow (a few FFT bins) and high bands wide, like the
    ear's resolution. With row-vector conventions, `power (T, K) @ filterbank (K, M)`
    gives the mel energies (T, M).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= {sample_rate / 2}, got {f_min}, {f_max}")
    n_bins = n_fft // 2 + 1
    bin_hz = np.arange(n_bins) * sample_rate / n_fft                       # (K,)
    # n_mels + 2 edges: each filter uses its left neighbour, itself and its right neighbour.
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    left, centre, right = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]      # (M,) each
    rising = (bin_hz[:, None] - left) / (centre - left)                    # (K, M)
    falling = (right - bin_hz[:, None]) / (right - centre)                 # (K, M)
    return np.maximum(0.0, np.minimum(rising, falling))                    # (K, M)


def log_mel(signal: np.ndarray, sample_rate: int = SAMPLE_RATE, n_mels: int = N_MELS,
            window_ms: float = WINDOW_MS, hop_ms: float = HOP_MS, n_fft: int = N_FFT,
            window_kind: str = "hamming", floor: float = 1e-10,
            f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """The whole front end: waveform (N,) -> log mel energies (T, n_mels), float32.

    `floor` keeps log() finite in digital silence (log(1e-10) is about -23). The mel
    filters span `f_min` .. `f_max` Hz (`F_MIN`, `F_MAX`: the telephone band's useful part).
    """
    L, H = ms_to_samples(window_ms, sample_rate), ms_to_samples(hop_ms, sample_rate)
    frames = frame_signal(np.asarray(signal, dtype=np.float64), L, H)      # (T, L)
    power = power_spectrum(apply_window(frames, window_kind), n_fft)        # (T, K)
    mel = power @ mel_filterbank(n_mels, n_fft, sample_rate, f_min, min(f_max, sample_rate / 2))  # (T, M)
    return np.log(np.maximum(mel, floor)).astype(np.float32)               # (T, M)


def stack_frames(features: np.ndarray, k: int) -> np.ndarray:
    """Concatenate each run of k consecutive frames into one: (T, ..., F) -> (T // k, ..., k*F).

    This is how Listen, Attend and Spell's pyramid shortens the encoder's time axis:
    each layer joins pairs of frames, so after three layers there are 8x fewer steps
    for attention to look over. Time is the first axis, so both one utterance (T, F)
    and a time-major batch (T, B, F) work. The last T % k frames are dropped (as LAS
    does); for a batch, divide the lengths by k too (`lengths // k`).
    """
    features = np.asarray(features)
    if k < 1:
        raise ValueError(f"stack factor k must be >= 1, got {k}")
    if k == 1:
        return features
    T = features.shape[0] // k
    if T == 0:
        raise ValueError(f"cannot stack {features.shape[0]} frames in groups of {k}")
    grouped = features[:T * k].reshape(T, k, *features.shape[1:])          # (T', k, ..., F)
    grouped = np.moveaxis(grouped, 1, -2)                                  # (T', ..., k, F)
    return grouped.reshape(*grouped.shape[:-2], k * features.shape[-1])    # (T', ..., k*F)
