"""Regenerate the course's connected-digit corpus (data/digits.npz and data/wav/).

    make data                      # = .venv/bin/python data/make_corpus.py
    .venv/bin/python data/make_corpus.py --out /tmp/copy   # a second copy, to compare

Needs espeak-ng (speech synthesis) and sox (resampling to 16 kHz); students never run
this, they load the committed result with `speechcourse.corpus.load_split`.

Everything random is drawn from one seed, in a fixed order, in the main process: each
utterance gets its own recipe (voice, digits, speaking rate, pitch, gain, noise level
and a noise seed). Workers only follow recipes, and results are collected in recipe
order, so the number of processes does not change the output. The .npz is written
with fixed zip timestamps, so two runs give byte-identical files.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import wave
import zipfile
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from speechcourse.corpus import CORPUS_FILE, DIGITS, FRAME_RATE, quantize  # noqa: E402
from speechcourse.frontend import SAMPLE_RATE, log_mel  # noqa: E402

SEED = 20240405

# Accents (espeak-ng's English language variants): pronunciation and prosody rules.
# Every split uses all of them, as TIDIGITS's dialect regions appear in train and test.
ACCENTS = ["en-us", "en-us-nyc", "en-gb", "en-gb-x-rp", "en-gb-scotland",
           "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]

# Voice variants (espeak-ng's "+variant"): formants, pitch range, breathiness: the
# "speaker". Splitting is BY VARIANT, keeping families (steph/steph2/steph3) together,
# so every test and valid voice has a voice quality never heard in training.
# Left out on purpose: whisper, whisperf (no voicing), the robo* and UniRobot voices,
# Demonic and anikaRobot (deliberately unnatural), and "Mr serious" (a space in its name).
TEST_VARIANTS = ["m4", "f3", "klatt3", "Annie", "Jacky", "belinda", "boris", "grandma",
                 "norbert", "quincy", "linda", "travis", "steph", "steph2", "steph3",
                 "Gene", "Gene2"]
VALID_VARIANTS = ["m6", "f5", "Andy", "AnxiousAndy", "Michael", "anika", "ed", "pablo"]
TRAIN_VARIANTS = ["m1", "m2", "m3", "m5", "m7", "m8", "f1", "f2", "f4",
                  "klatt", "klatt2", "klatt4", "klatt5", "klatt6",
                  "Alex", "Alicia", "Andrea", "Denis", "Diogo", "Henrique", "Hugo", "Lee",
                  "Marco", "Mario", "Mike", "Nguyen", "RicishayMax", "Storm", "Tweaky",
                  "adam", "announcer", "antonio", "aunty", "benjamin", "caleb", "croak",
                  "david", "edward", "edward2", "fast", "grandpa", "gustave", "iven", "iven2",
                  "iven3", "iven4", "john", "kaukovalta", "marcelo", "max", "michel", "miguel",
                  "paul", "pedro", "rob", "robert", "sandro", "shelby", "victor", "zac"]
SPLIT_VARIANTS = {"train": TRAIN_VARIANTS, "valid": VALID_VARIANTS,
                  "test": TEST_VARIANTS, "test_by_length": TEST_VARIANTS}

# Utterances per split. Lengths are uniform on 1..10 digits, except test_by_length,
# which has exactly PER_LENGTH utterances of every length.
SIZES = {"train": 5000, "valid": 400, "test": 400}
PER_LENGTH = 50
MAX_DIGITS = 10

# Recording conditions, drawn per utterance.
RATE_WPM = (130, 210)          # espeak-ng -s: speaking rate, words per minute
PITCH = (25, 75)               # espeak-ng -p: 0..99, 50 is the voice's default
WORD_GAP = (0, 3)              # espeak-ng -g: extra pause between words, units of 10 ms
LEVEL_DBFS = -20.0             # RMS level before gain
GAIN_DB = (-6.0, 6.0)          # mild loudness variation
SNRS_DB = [None, 30.0, 20.0, 15.0]   # None = clean; white noise otherwise
SNR_PROBS = [0.4, 0.2, 0.2, 0.2]
MARGIN_S = (0.03, 0.12)        # silence kept (or added) before and after the speech

HOP_MS = 1000 / FRAME_RATE     # 20 ms hop: 50 frames per second (the seed's "50 frames")


@dataclasses.dataclass(frozen=True)
class Recipe:
    split: str
    index: int
    accent: str
    variant: str
    text: str
    rate: int
    pitch: int
    gap: int
    gain_db: float
    snr_db: float | None
    noise_seed: int
    margins_s: tuple

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"


def draw_recipes(seed: int = SEED, sizes: dict = SIZES, per_length: int = PER_LENGTH) -> list[Recipe]:
    """Every random choice of the corpus, drawn in one fixed order from one generator."""
    rng = np.random.default_rng(seed)
    recipes = []
    for split in ("train", "valid", "test", "test_by_length"):
        if split == "test_by_length":
            n_digits = rng.permutation(np.repeat(np.arange(1, MAX_DIGITS + 1), per_length))
        else:
            n_digits = rng.integers(1, MAX_DIGITS + 1, size=sizes[split])
        for i, n in enumerate(n_digits):
            snr = SNRS_DB[rng.choice(len(SNRS_DB), p=SNR_PROBS)]
            recipes.append(Recipe(
                split=split, index=i,
                accent=ACCENTS[rng.integers(len(ACCENTS))],
                variant=SPLIT_VARIANTS[split][rng.integers(len(SPLIT_VARIANTS[split]))],
                text=" ".join(DIGITS[d] for d in rng.integers(0, 10, size=n)),
                rate=int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
                pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
                gap=int(rng.integers(WORD_GAP[0], WORD_GAP[1] + 1)),
                gain_db=round(float(rng.uniform(*GAIN_DB)), 3),
                snr_db=snr,
                noise_seed=int(rng.integers(2**31)),
                margins_s=(round(float(rng.uniform(*MARGIN_S)), 3), round(float(rng.uniform(*MARGIN_S)), 3)),
            ))
    return recipes


def synthesise(r: Recipe) -> np.ndarray:
    """espeak-ng at its native 22.05 kHz, then sox to 16 kHz (-D: no dither, so deterministic)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "u.wav")
        subprocess.run(["espeak-ng", "-v", r.voice, "-s", str(r.rate), "-p", str(r.pitch),
                        "-g", str(r.gap), "-a", "100", "-w", path, r.text],
                       check=True, capture_output=True)
        raw = subprocess.run(["sox", path, "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed",
                              "-b", "16", "-c", "1", "-D", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.int16).astype(np.float64) / 32768   # (N,) in [-1, 1)


def trim_silence(x: np.ndarray, threshold_db: float = -50.0) -> np.ndarray:
    """Cut leading and trailing samples quieter than threshold_db below the peak."""
    loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10 ** (threshold_db / 20))
    return x[loud[0]:loud[-1] + 1]


def render(r: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """Follow one recipe: returns (16-bit waveform (N,), uint8 log-mel (T, 40))."""
    speech = trim_silence(synthesise(r))
    before, after = (int(m * SAMPLE_RATE) for m in r.margins_s)
    x = np.concatenate([np.zeros(before), speech, np.zeros(after)])          # (N,)
    rms = np.sqrt(np.mean(speech ** 2))
    x *= 10 ** ((LEVEL_DBFS + r.gain_db) / 20) / rms
    if r.snr_db is not None:
        noise = np.random.default_rng(r.noise_seed).standard_normal(len(x))
        x += noise * np.sqrt(np.mean((x[before:before + len(speech)]) ** 2) / 10 ** (r.snr_db / 10))
    pcm = np.round(np.clip(x, -1, 32767 / 32768) * 32768).astype(np.int16)   # what a WAV file holds
    features = log_mel(pcm / 32768, hop_ms=HOP_MS)                             # (T, 40) float32
    return pcm, quantize(features)


def write_npz(path: Path, arrays: dict) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps: same arrays -> same bytes."""
    # LZMA packs these uint8 features 16% smaller than np.savez_compressed's deflate
    # (measured: 0.70 vs 0.83 of the raw bytes); np.load reads it like any .npz.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.astype("<i2").tobytes())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="directory to write digits.npz and wav/ into (default: data/)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the full size, for quick trials (e.g. 0.05)")
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    sizes = {k: max(1, int(v * args.scale)) for k, v in SIZES.items()}
    per_length = max(1, int(PER_LENGTH * args.scale))
    recipes = draw_recipes(args.seed, sizes, per_length)
    start = time.time()
    with Pool(args.processes) as pool:   # imap keeps recipe order whatever the scheduling
        results = list(pool.imap(render, recipes, chunksize=16))
    print(f"rendered {len(recipes)} utterances in {time.time() - start:.0f} s "
          f"with {args.processes} processes", file=sys.stderr)

    arrays, durations = {}, {}
    for split in ("train", "valid", "test", "test_by_length"):
        mine = [(r, res) for r, res in zip(recipes, results) if r.split == split]
        feats = [codes for _, (_, codes) in mine]
        arrays[f"{split}/features"] = np.concatenate(feats)                            # (sum T, 40)
        arrays[f"{split}/offsets"] = np.cumsum([0] + [len(f) for f in feats]).astype(np.int64)
        arrays[f"{split}/texts"] = np.array([r.text for r, _ in mine])               # unicode, no pickle
        arrays[f"{split}/voices"] = np.array([r.voice for r, _ in mine])
        durations[split] = sum(len(pcm) for _, (pcm, _) in mine) / SAMPLE_RATE
    args.out.mkdir(parents=True, exist_ok=True)
    write_npz(args.out / CORPUS_FILE, arrays)

    # A few short WAVs of unseen test voices, for the book to play and plot.
    wav_dir = args.out / "wav"
    wav_dir.mkdir(exist_ok=True)
    tbl = [(r, res) for r, res in zip(recipes, results) if r.split == "test_by_length"]
    lines = ["file\tsplit\tindex\tvoice\ttext"]
    for n in (1, 3, 5):   # the first utterance of 1, 3 and 5 digits
        r, (pcm, _) = next((r, res) for r, res in tbl if len(r.text.split()) == n)
        name = f"example_{n}_digit{'s' if n > 1 else ''}.wav"
        write_wav(wav_dir / name, pcm)
        lines.append(f"{name}\t{r.split}\t{r.index}\t{r.voice}\t{r.text}")
    (wav_dir / "examples.tsv").write_text("\n".join(lines) + "\n")

    digest = hashlib.sha256((args.out / CORPUS_FILE).read_bytes()).hexdigest()
    print(f"wrote {args.out / CORPUS_FILE} ({(args.out / CORPUS_FILE).stat().st_size / 1e6:.1f} MB, "
          f"sha256 {digest[:16]}); hours: "
          + ", ".join(f"{k} {v / 3600:.2f}" for k, v in durations.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
