"""Regenerate the course's connected-digit corpus (data/digits.npz and data/wav/), version 2.

    make data                      # = .venv/bin/python data/make_corpus.py
    .venv/bin/python data/make_corpus.py --out /tmp/copy   # a second copy, to compare

Two sources, one front end, everything at 8 kHz (the telephone band):
- synthetic: espeak-ng in 85 voices (needs espeak-ng, and sox to resample to 8 kHz);
- real: six people of the Free Spoken Digit Dataset (data/fsdd/, vendored as FLAC), whose
  isolated digits are joined end to end into strings with the synthetic recipe's pauses,
  levels, margins and noise.
Students never run this; they load the committed result with `speechcourse.corpus.load_split`.

Everything random is drawn from one seed, in a fixed order, in the main process: each
utterance gets its own recipe. Workers only follow recipes, and results are collected in
recipe order, so the number of processes does not change the output. The .npz is written
with fixed zip timestamps, so two runs give byte-identical files.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import wave
import zipfile
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from speechcourse.corpus import CORPUS_FILE, DIGITS, FRAME_RATE, SPLITS, quantize  # noqa: E402
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

# Real speakers (FSDD: 6 adult men, 50 takes of each digit each, 8 kHz). Split BY SPEAKER:
# george and lucas are never trained on nor used to choose a model. The training speakers'
# takes 0-4 (FSDD's own test takes) are held out for validation.
FSDD_DIR = Path(__file__).resolve().parent / "fsdd" / "recordings"
REAL_TRAIN_SPEAKERS = ["jackson", "nicolas", "theo", "yweweler"]
REAL_TEST_SPEAKERS = ["george", "lucas"]
VALID_TAKES = range(0, 5)
SPLIT_SPEAKERS = {"train": (REAL_TRAIN_SPEAKERS, range(5, 50)),
                  "valid": (REAL_TRAIN_SPEAKERS, VALID_TAKES),
                  "test": (REAL_TEST_SPEAKERS, range(0, 50)),
                  "test_by_length": (REAL_TEST_SPEAKERS, range(0, 50)),
                  "test_isolated": (REAL_TEST_SPEAKERS, range(0, 50))}

# Utterances per split and source. Lengths are uniform on 1..10 digits, except
# test_by_length, which has exactly PER_LENGTH utterances of every length per source, and
# test_isolated, which holds every recording of the real test speakers once, alone.
SIZES = {"train": 5000, "valid": 400, "test": 400}
REAL_SIZES = {"train": 3000, "valid": 400, "test": 1000}
PER_LENGTH = 50
MAX_DIGITS = 10

# Recording conditions, drawn per utterance (both sources).
RATE_WPM = (130, 210)          # espeak-ng -s: speaking rate, words per minute
PITCH = (25, 75)               # espeak-ng -p: 0..99, 50 is the voice's default
WORD_GAP = (0, 3)              # extra pause between words, units of 10 ms (espeak-ng -g)
LEVEL_DBFS = -20.0             # RMS level before gain
GAIN_DB = (-6.0, 6.0)          # mild loudness variation
SNRS_DB = [None, 30.0, 20.0, 15.0]   # None = clean; white noise otherwise
SNR_PROBS = [0.4, 0.2, 0.2, 0.2]
MARGIN_S = (0.03, 0.12)        # silence kept (or added) before and after the speech
# Real strings only: each take is brought to the string's level, then moved by up to
# WORD_GAIN_DB (takes were recorded one by one, at different levels). With
# --speed-perturbation (chapter 5's ablation; off by default, since it did not lower the
# capstone's WER), training strings are speed-perturbed as a whole (sox `speed`, as in
# Kaldi recipes: tempo and pitch).
WORD_GAIN_DB = (-2.0, 2.0)
SPEEDS = (0.9, 1.0, 1.1)

HOP_MS = 1000 / FRAME_RATE     # 20 ms hop: 50 frames per second (the seed's "50 frames")


@dataclasses.dataclass(frozen=True)
class Conditions:
    """What both sources share: level, noise and silent margins."""
    gain_db: float
    snr_db: float | None
    noise_seed: int
    margins_s: tuple


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One utterance. Synthetic: accent, variant, rate, pitch, gap. Real: speaker, takes."""
    split: str
    index: int
    source: str                # "synthetic" or "real"
    text: str
    conditions: Conditions
    accent: str = ""
    variant: str = ""
    rate: int = 0
    pitch: int = 0
    gap: int = 0
    speaker: str = ""
    takes: tuple = ()          # FSDD take number of each word
    word_gains_db: tuple = ()
    gaps: tuple = ()           # pause after each word but the last, units of 10 ms
    speed: float = 1.0

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}" if self.source == "synthetic" else f"fsdd:{self.speaker}"


def draw_conditions(rng) -> Conditions:
    snr = SNRS_DB[rng.choice(len(SNRS_DB), p=SNR_PROBS)]
    return Conditions(gain_db=round(float(rng.uniform(*GAIN_DB)), 3), snr_db=snr,
                      noise_seed=int(rng.integers(2**31)),
                      margins_s=(round(float(rng.uniform(*MARGIN_S)), 3),
                                 round(float(rng.uniform(*MARGIN_S)), 3)))


def draw_lengths(rng, split: str, size: int, per_length: int) -> np.ndarray:
    if split == "test_by_length":
        return rng.permutation(np.repeat(np.arange(1, MAX_DIGITS + 1), per_length))
    return rng.integers(1, MAX_DIGITS + 1, size=size)


def draw_synthetic(rng, split: str, n_digits) -> list[Recipe]:
    """The synthetic half, drawn exactly as corpus v1 drew it (same seed, same order)."""
    recipes = []
    for i, n in enumerate(n_digits):
        snr = SNRS_DB[rng.choice(len(SNRS_DB), p=SNR_PROBS)]
        accent = ACCENTS[rng.integers(len(ACCENTS))]
        variant = SPLIT_VARIANTS[split][rng.integers(len(SPLIT_VARIANTS[split]))]
        text = " ".join(DIGITS[d] for d in rng.integers(0, 10, size=n))
        rate = int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1))
        pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
        gap = int(rng.integers(WORD_GAP[0], WORD_GAP[1] + 1))
        gain = round(float(rng.uniform(*GAIN_DB)), 3)
        conditions = Conditions(gain, snr, int(rng.integers(2**31)),
                                (round(float(rng.uniform(*MARGIN_S)), 3), round(float(rng.uniform(*MARGIN_S)), 3)))
        recipes.append(Recipe(split, i, "synthetic", text, conditions, accent=accent, variant=variant,
                              rate=rate, pitch=pitch, gap=gap))
    return recipes


def draw_real(rng, split: str, texts: list[str], first_index: int, speakers: list[str] | None = None,
              takes: list[tuple] | None = None, perturb: bool = False) -> list[Recipe]:
    """Real strings: one speaker each, a different take for each repeat of a digit."""
    names, take_range = SPLIT_SPEAKERS[split]
    recipes = []
    for i, text in enumerate(texts):
        words = text.split()
        speaker = speakers[i] if speakers else names[rng.integers(len(names))]
        if takes:
            chosen = takes[i]
        else:
            pools = {w: list(rng.permutation(np.array(take_range))) for w in sorted(set(words))}   # sorted: set order follows the hash seed
            chosen = tuple(int(pools[w].pop()) for w in words)
        speed_index = int(rng.integers(len(SPEEDS)))          # drawn for every split, used in train
        recipes.append(Recipe(
            split, first_index + i, "real", text, draw_conditions(rng), speaker=speaker, takes=chosen,
            word_gains_db=tuple(round(float(g), 3) for g in rng.uniform(*WORD_GAIN_DB, size=len(words))),
            gaps=tuple(int(g) for g in rng.integers(WORD_GAP[0], WORD_GAP[1] + 1, size=len(words) - 1)),
            speed=SPEEDS[speed_index] if perturb else 1.0))
    return recipes


def draw_recipes(seed: int = SEED, sizes: dict = SIZES, real_sizes: dict = REAL_SIZES,
                 per_length: int = PER_LENGTH, speed_perturb: bool = False) -> list[Recipe]:
    """Every random choice of the corpus, drawn in one fixed order.

    The synthetic half comes from `seed` exactly as in corpus v1; the real half from its own
    generator (`seed + 1`), so adding real speech changed no synthetic utterance's recipe.
    """
    rng = np.random.default_rng(seed)
    recipes = []
    for split in ("train", "valid", "test", "test_by_length"):
        recipes += draw_synthetic(rng, split, draw_lengths(rng, split, sizes.get(split, 0), per_length))
    rng = np.random.default_rng(seed + 1)
    for split in ("train", "valid", "test", "test_by_length"):
        n_digits = draw_lengths(rng, split, real_sizes.get(split, 0), per_length)
        texts = [" ".join(DIGITS[d] for d in rng.integers(0, 10, size=n)) for n in n_digits]
        first = sum(r.split == split for r in recipes)
        recipes += draw_real(rng, split, texts, first, perturb=speed_perturb and split == "train")
    # test_isolated: every take of the test speakers, alone, in (speaker, digit, take) order
    every = [(s, d, t) for s in REAL_TEST_SPEAKERS for d in range(10) for t in SPLIT_SPEAKERS["test_isolated"][1]
             if (FSDD_DIR / f"{d}_{s}_{t}.flac").exists() or not FSDD_DIR.exists()]
    recipes += draw_real(rng, "test_isolated", [DIGITS[d] for _, d, _ in every], 0,
                         speakers=[s for s, _, _ in every], takes=[(t,) for _, _, t in every])
    # train and valid also hold each of their takes alone once (isolated digits, as said),
    # after their strings: one-word utterances, which the strings' 10% of 1-digit strings
    # under-represent for the isolated test
    for split in ("train", "valid"):
        names, take_range = SPLIT_SPEAKERS[split]
        alone = [(s, d, t) for s in names for d in range(10) for t in take_range]
        first = sum(r.split == split for r in recipes)
        recipes += draw_real(rng, split, [DIGITS[d] for _, d, _ in alone], first,
                             speakers=[s for s, _, _ in alone], takes=[(t,) for _, _, t in alone],
                             perturb=speed_perturb and split == "train")
    return recipes


def synthesise(r: Recipe) -> np.ndarray:
    """espeak-ng at its native 22.05 kHz, then sox to 8 kHz (-D: no dither, so deterministic)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "u.wav")
        subprocess.run(["espeak-ng", "-v", r.voice, "-s", str(r.rate), "-p", str(r.pitch),
                        "-g", str(r.gap), "-a", "100", "-w", path, r.text],
                       check=True, capture_output=True)
        raw = subprocess.run(["sox", path, "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed",
                              "-b", "16", "-c", "1", "-D", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.int16).astype(np.float64) / 32768   # (N,) in [-1, 1)


@functools.lru_cache(maxsize=None)
def take(speaker: str, digit: str, number: int, speed: float) -> np.ndarray:
    """One FSDD recording (N,) in [-1, 1), trimmed, at 8 kHz; speed-perturbed like sox `speed`."""
    x, rate = soundfile.read(FSDD_DIR / f"{DIGITS.index(digit)}_{speaker}_{number}.flac", dtype="int16")
    if rate != SAMPLE_RATE or x.ndim != 1:
        raise ValueError(f"FSDD take {digit} {speaker} {number}: {rate} Hz, shape {x.shape}")
    x = trim_silence(x.astype(np.float64) / 32768)
    if speed != 1.0:   # play `speed` times faster: read as if sampled at speed * 8 kHz
        x = soxr.resample(x, SAMPLE_RATE * speed, SAMPLE_RATE, quality="HQ")
    return x


def join_takes(r: Recipe) -> np.ndarray:
    """A real string: the speaker's takes end to end, each at the same level give or take
    `word_gains_db`, with `gaps` of silence between them. No coarticulation: each word
    was said alone."""
    pieces = []
    for k, (word, number) in enumerate(zip(r.text.split(), r.takes)):
        x = take(r.speaker, word, number, r.speed)
        pieces.append(x / np.sqrt(np.mean(x ** 2)) * 10 ** (r.word_gains_db[k] / 20))
        if k < len(r.gaps):
            pieces.append(np.zeros(int(r.gaps[k] * SAMPLE_RATE / 100)))
    return np.concatenate(pieces)


def trim_silence(x: np.ndarray, threshold_db: float = -50.0) -> np.ndarray:
    """Cut leading and trailing samples quieter than threshold_db below the peak."""
    loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10 ** (threshold_db / 20))
    return x[loud[0]:loud[-1] + 1]


def render(r: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """Follow one recipe: returns (16-bit waveform (N,), uint8 log-mel (T, 40))."""
    speech = trim_silence(synthesise(r)) if r.source == "synthetic" else join_takes(r)
    c = r.conditions
    before, after = (int(m * SAMPLE_RATE) for m in c.margins_s)
    x = np.concatenate([np.zeros(before), speech, np.zeros(after)])          # (N,)
    rms = np.sqrt(np.mean(speech ** 2))
    x *= 10 ** ((LEVEL_DBFS + c.gain_db) / 20) / rms
    if c.snr_db is not None:
        noise = np.random.default_rng(c.noise_seed).standard_normal(len(x))
        x += noise * np.sqrt(np.mean((x[before:before + len(speech)]) ** 2) / 10 ** (c.snr_db / 10))
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
    parser.add_argument("--speed-perturbation", action="store_true",
                        help="speed-perturb the real training strings by 0.9, 1.0 or 1.1 (for chapter 5's "
                             "ablation; every other draw is unchanged)")
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    sizes = {k: max(1, int(v * args.scale)) for k, v in SIZES.items()}
    real_sizes = {k: max(1, int(v * args.scale)) for k, v in REAL_SIZES.items()}
    per_length = max(1, int(PER_LENGTH * args.scale))
    recipes = draw_recipes(args.seed, sizes, real_sizes, per_length, args.speed_perturbation)
    if args.scale < 1:
        keep = max(1, int(len([r for r in recipes if r.split == "test_isolated"]) * args.scale))
        recipes = [r for r in recipes if r.split != "test_isolated" or r.index < keep]
    start = time.time()
    with Pool(args.processes) as pool:   # imap keeps recipe order whatever the scheduling
        results = list(pool.imap(render, recipes, chunksize=16))
    print(f"rendered {len(recipes)} utterances in {time.time() - start:.0f} s "
          f"with {args.processes} processes", file=sys.stderr)

    arrays, durations = {}, {}
    for split in SPLITS:
        mine = [(r, res) for r, res in zip(recipes, results) if r.split == split]
        feats = [codes for _, (_, codes) in mine]
        arrays[f"{split}/features"] = np.concatenate(feats)                            # (sum T, 40)
        arrays[f"{split}/offsets"] = np.cumsum([0] + [len(f) for f in feats]).astype(np.int64)
        arrays[f"{split}/texts"] = np.array([r.text for r, _ in mine])               # unicode, no pickle
        arrays[f"{split}/voices"] = np.array([r.voice for r, _ in mine])
        arrays[f"{split}/sources"] = np.array([r.source for r, _ in mine])
        durations[split] = sum(len(pcm) for _, (pcm, _) in mine) / SAMPLE_RATE
    args.out.mkdir(parents=True, exist_ok=True)
    write_npz(args.out / CORPUS_FILE, arrays)

    # A few short WAVs of unseen test voices and speakers, for the book to play and plot.
    wav_dir = args.out / "wav"
    wav_dir.mkdir(exist_ok=True)
    for old in wav_dir.glob("*.wav"):
        old.unlink()
    tbl = [(r, res) for r, res in zip(recipes, results) if r.split == "test_by_length"]
    lines = ["file\tsplit\tindex\tsource\tvoice\ttext"]
    for source, prefix in (("synthetic", "example"), ("real", "real")):
        for n in (1, 3, 5):   # the first utterance of 1, 3 and 5 digits of each source
            r, (pcm, _) = next((r, res) for r, res in tbl if r.source == source and len(r.text.split()) == n)
            name = f"{prefix}_{n}_digit{'s' if n > 1 else ''}.wav"
            write_wav(wav_dir / name, pcm)
            lines.append(f"{name}\t{r.split}\t{r.index}\t{r.source}\t{r.voice}\t{r.text}")
    (wav_dir / "examples.tsv").write_text("\n".join(lines) + "\n")

    digest = hashlib.sha256((args.out / CORPUS_FILE).read_bytes()).hexdigest()
    print(f"wrote {args.out / CORPUS_FILE} ({(args.out / CORPUS_FILE).stat().st_size / 1e6:.1f} MB, "
          f"sha256 {digest[:16]}); hours: "
          + ", ".join(f"{k} {v / 3600:.2f}" for k, v in durations.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
