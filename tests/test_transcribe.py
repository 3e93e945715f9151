"""`python -m speechmodels.transcribe`: corpus-exact features, the committed capstone model's
transcripts on corpus and FSDD recordings, any rate and channel count, the confidences and
attention it reports, the plot, and one sentence (never a traceback) for each kind of bad input.

The committed model may be retrained at any time, so nothing here expects a particular
transcript: a recording's transcript is compared with what the experiments' decoding of the
same stored features gives, and a resampled copy with the original.
"""
from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
import torch

from speechcourse.corpus import DIGIT_VOCAB, DIGITS, load_split
from speechmodels import transcribe as tr
from speechmodels.batches import make_batch
from speechmodels.decoding import greedy
from speechmodels.training import batch_tensors

ROOT = Path(__file__).resolve().parents[1]
WAV = ROOT / "data" / "wav"
EXAMPLES = [line.split("\t") for line in (WAV / "examples.tsv").read_text().splitlines()[1:]]
REAL = sorted(WAV.glob("real_*.wav"))
GEORGE = sorted((ROOT / "data" / "fsdd" / "recordings").glob("*_george_*.flac"))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return tr.load_model()


@pytest.fixture(scope="module")
def by_length():
    return load_split("test_by_length"), load_split("test_by_length", stack=tr.STACK)


def write_pcm16(path: Path, pcm: np.ndarray, rate: int = 8000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return path


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "speechmodels.transcribe", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


# --------------------------------------------------------------------------- features and transcripts

def test_the_corpus_wavs_give_exactly_their_stored_features(by_length):
    raw, stacked = by_length
    assert EXAMPLES
    for name, split, index, source, voice, said in EXAMPLES:
        assert split == "test_by_length"
        samples, rate, channels = tr.read_audio(WAV / name)
        assert (rate, channels) == (8000, 1)
        assert np.array_equal(tr.log_mel_of(samples), raw.features[int(index)]), name
        assert np.array_equal(tr.features_of(samples), stacked.features[int(index)]), name
        assert raw.texts[int(index)] == said


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_a_real_wav_is_heard_as_the_experiments_decode_its_stored_features(path, model, by_length):
    _, stacked = by_length
    index = next(int(i) for name, _, i, *_ in EXAMPLES if name == path.name)
    x, x_lengths, _, _ = batch_tensors(make_batch(stacked, [index]))     # as experiments/ch05_recogniser.py
    with torch.no_grad():
        memory, pad = model.encode(x, x_lengths)
    expected = greedy(model.decoder, memory, pad, tr.max_symbols(int(x_lengths[0])))[0]
    t = tr.transcribe_file(path)
    assert t.text == DIGIT_VOCAB.decode(expected + [DIGIT_VOCAB.eos])
    assert t.words == tuple(t.text.split()) and set(t.words) <= set(DIGITS)
    assert t.digits == "".join(str(DIGITS.index(w)) for w in t.words)
    assert t.beam == 1 and 0 < t.seconds < 30 and t.duration == pytest.approx(len(soundfile.read(path)[0]) / 8000)


def test_confidences_are_the_probabilities_of_the_steps_that_emitted_the_words(model, by_length):
    _, stacked = by_length
    t = tr.transcribe_file(WAV / "real_5_digits.wav")
    x = torch.from_numpy(tr.features_of(tr.read_audio(WAV / "real_5_digits.wav")[0]))[:, None, :]
    with torch.no_grad():
        memory, pad = model.encode(x, torch.tensor([x.shape[0]]))
        state, y, probs = model.decoder.start(memory, pad), torch.tensor([DIGIT_VOCAB.bos]), []
        for _ in range(len(t.words) + 1):                               # step by step, with the cache
            logits, state = model.decoder.step(y, state)
            p = torch.softmax(logits[0].double(), -1)
            y = logits.argmax(-1)
            probs.append(float(p[y[0]]))
        assert int(y[0]) == DIGIT_VOCAB.eos
    np.testing.assert_allclose(t.confidences, probs[:-1], atol=1e-5)
    assert t.end_confidence == pytest.approx(probs[-1], abs=1e-5)
    assert all(0 < c <= 1 for c in t.confidences)
    U, steps = t.attention.shape                                        # one row per symbol, </s> last
    assert (U, steps) == (len(t.words) + 1, x.shape[0]) and t.attention.dtype == np.float32
    np.testing.assert_allclose(t.attention.sum(1), 1, atol=1e-4)
    assert t.features.shape == (len(tr.log_mel_of(tr.read_audio(WAV / "real_5_digits.wav")[0])), 40)


def test_an_fsdd_test_speaker_recording(model):
    path = GEORGE[len(GEORGE) // 2]
    t = tr.transcribe_file(path)
    samples, rate = soundfile.read(path, dtype="float64")
    assert rate == 8000 and np.array_equal(t.features, tr.log_mel_of(samples))
    assert set(t.words) <= set(DIGITS) and len(t.confidences) == len(t.words)
    assert tr.transcribe_samples(samples, rate).words == t.words
    pcm, _ = soundfile.read(path, dtype="int16")
    from_pcm = tr.transcribe_samples(pcm, rate)
    assert from_pcm.words == t.words and np.array_equal(from_pcm.features, t.features)
    assert tr.transcribe_samples(np.stack([pcm, pcm], axis=1), rate).words == t.words


@pytest.mark.parametrize("name", ["real_3_digits.wav", "example_5_digits.wav"])
def test_a_44_1_khz_stereo_copy_gives_the_same_digits(name, tmp_path):
    samples, rate = soundfile.read(WAV / name, dtype="float64")
    up = soxr.resample(samples, rate, 44_100)                           # (N * 44100 / 8000,)
    stereo = np.stack([up * 1.1, up * 0.9], axis=1)                     # mean of the channels = up
    copy = tmp_path / "stereo.wav"
    soundfile.write(copy, np.clip(stereo, -1, 1), 44_100, subtype="PCM_16")
    assert soundfile.info(copy).channels == 2 and soundfile.info(copy).samplerate == 44_100
    heard, original = tr.transcribe_file(copy), tr.transcribe_file(WAV / name)
    assert heard.words == original.words
    assert heard.features.shape == original.features.shape
    assert np.abs(heard.features - original.features).mean() < 0.05    # nats; one quantisation step is 0.094
    assert tr.read_audio(copy)[1:] == (44_100, 2)


def test_beam_4_gives_words_with_the_confidences_of_its_own_path(model):
    greedy_t = tr.transcribe_file(WAV / "real_3_digits.wav")
    beam_t = tr.transcribe_file(WAV / "real_3_digits.wav", beam=4)
    assert beam_t.beam == 4 and set(beam_t.words) <= set(DIGITS)
    assert len(beam_t.confidences) == len(beam_t.words) and beam_t.attention.shape[0] == len(beam_t.words) + 1
    if beam_t.words == greedy_t.words:
        np.testing.assert_allclose(beam_t.confidences, greedy_t.confidences, atol=1e-6)


def test_the_command_prints_the_digits_confidences_and_seconds(capsys):
    assert tr.main([str(WAV / "real_3_digits.wav")]) == 0
    out = capsys.readouterr().out.splitlines()
    t = tr.transcribe_file(WAV / "real_3_digits.wav")
    assert out[0] == (f"heard: {t.text}  ({t.digits})" if t.words else "heard: nothing (the model ended at once)")
    assert [line.split() for line in out[1:-1]] == [[w, f"{c:.3f}"] for w, c in zip(t.words, t.confidences)]
    assert out[-1].startswith("took ") and out[-1].endswith("s of audio (8000 Hz, 1 channel)")


def test_the_command_with_beam_4_and_a_plot(tmp_path):
    png = tmp_path / "map.png"
    done = run_cli(WAV / "real_3_digits.wav", "--beam", "4", "--plot", png)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines, t = done.stdout.splitlines(), tr.transcribe_file(WAV / "real_3_digits.wav", beam=4)
    assert lines[0] == (f"heard: {t.text}  ({t.digits})" if t.words else "heard: nothing (the model ended at once)")
    assert [line.split() for line in lines[1:-2]] == [[w, f"{c:.3f}"] for w, c in zip(t.words, t.confidences)]
    assert "beam search (width 4)" in lines[-2] and lines[-1] == f"plot: {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plot_transcript_into_a_figure_or_a_pair_of_axes(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = tr.transcribe_file(WAV / "real_1_digit.wav")
    fig, axes = plt.subplots(2, 1)
    assert tr.plot_transcript(t, axes) is fig
    assert [label.get_text() for label in axes[1].get_yticklabels()] == list(t.words) + ["</s>"]
    assert axes[0].get_xlim() == axes[1].get_xlim() == (0, len(t.features) * 0.02)
    plt.close(fig)
    fig = tr.plot_transcript(t)
    assert len(fig.axes) == 4                                           # two panels and their colorbars
    plt.close(fig)


# --------------------------------------------------------------------------- bad input

def _silence(tmp_path):
    return write_pcm16(tmp_path / "zeros.wav", np.zeros(8000))


def _quiet(tmp_path):       # white noise at about -75 dBFS: below SILENCE_DBFS
    pcm = np.random.default_rng(0).integers(-5, 6, size=8000)
    return write_pcm16(tmp_path / "quiet.wav", pcm)


def _long(tmp_path):
    pcm = (np.random.default_rng(0).standard_normal(31 * 8000) * 3000).astype(np.int16)
    return write_pcm16(tmp_path / "long.wav", pcm)


def _short(tmp_path):       # 0.1 s: one encoder step
    pcm = (np.random.default_rng(0).standard_normal(800) * 3000).astype(np.int16)
    return write_pcm16(tmp_path / "short.wav", pcm)


def _low_rate(tmp_path):     # 1 s at 2 kHz: nothing above 1 kHz
    pcm = (np.random.default_rng(0).standard_normal(2000) * 3000).astype(np.int16)
    return write_pcm16(tmp_path / "low.wav", pcm, rate=2000)


def _not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not a recording\n")
    return path


def _garbage(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + np.random.default_rng(0).bytes(200))
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    return path


def _no_samples(tmp_path):
    return write_pcm16(tmp_path / "none.wav", np.zeros(0))


def _nan(tmp_path):
    samples = np.sin(np.arange(8000) / 5.0) * 0.3
    samples[100] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, samples, 8000, subtype="FLOAT")
    return path


def _directory(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    return tmp_path / "folder.wav"


def _missing(tmp_path):
    return tmp_path / "missing.wav"


BAD = {"not audio": (_not_audio, "not an audio file"), "garbage": (_garbage, "not an audio file"),
       "empty": (_empty, "is empty"), "zero samples": (_no_samples, "holds no samples"),
       "all zeros": (_silence, "digital silence"), "below the level": (_quiet, "below -60 dBFS"),
       "longer than 30 s": (_long, "at most 30 s"), "too short": (_short, "needs at least 0.165 s"),
       "below 4 kHz": (_low_rate, "needs at least 4000 Hz"),
       "not finite": (_nan, "not finite"), "a directory": (_directory, "is a directory"),
       "missing": (_missing, "does not exist")}


def assert_one_sentence(done, words):
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("transcribe: ") and lines[0].endswith("."), lines[0]
    assert words in lines[0], lines[0]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_gets_one_sentence_and_exit_status_1(kind, tmp_path):
    make, words = BAD[kind]
    path = make(tmp_path)
    assert_one_sentence(run_cli(path), words)
    with pytest.raises(tr.BadInput, match=words.split()[-1]):
        tr.transcribe_file(path)


def test_an_unreadable_file_gets_one_sentence(tmp_path):
    path = write_pcm16(tmp_path / "locked.wav", (np.random.default_rng(0).standard_normal(8000) * 3000).astype(np.int16))
    path.chmod(0)
    if os.geteuid() != 0:
        done = run_cli(path)
    else:       # root reads anything: make open() refuse it as it refuses other users
        code = ("import builtins, errno, runpy, sys\n"
                "real = builtins.open\n"
                "def refuse(file, *a, **k):\n"
                f"    if str(file) == {str(path)!r}: raise PermissionError(errno.EACCES, 'Permission denied', str(file))\n"
                "    return real(file, *a, **k)\n"
                "builtins.open = refuse\n"
                f"sys.argv = ['transcribe', {str(path)!r}]\n"
                "runpy.run_module('speechmodels.transcribe', run_name='__main__')\n")
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert_one_sentence(done, "cannot be read (Permission denied)")


def test_a_bad_beam_width_is_a_usage_error():
    done = run_cli(WAV / "real_1_digit.wav", "--beam", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "--beam must be at least 1" in done.stderr


def test_the_shortest_accepted_recording_is_two_encoder_steps():
    assert tr.MIN_SAMPLES == 1320
    steps = tr.features_of(np.random.default_rng(0).standard_normal(tr.MIN_SAMPLES) * 0.1).shape[0]
    assert steps == tr.MIN_STEPS
    with pytest.raises(tr.BadInput, match="needs at least"):
        tr.transcribe_samples(np.random.default_rng(0).standard_normal(tr.MIN_SAMPLES - 1) * 0.1)
    assert tr.transcribe_samples(np.random.default_rng(0).standard_normal(tr.MIN_SAMPLES) * 0.1).attention.shape[1] == 2
