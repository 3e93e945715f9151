"""`speechmodels.export`: the two ONNX graphs the page "Say it" runs, checked against PyTorch
with onnxruntime (the same graphs, the same runtime, as onnxruntime-web's wasm build).

Inputs: the book's WAVs (data/wav: unseen synthetic voices and unseen real speakers),
recordings of the corpus's isolated-digit test (FSDD's george and lucas, `test_isolated`),
corpus utterances of the test split (stored features), and synthetic signals (noise, a
tone, a chirp, a clipped square wave, a whisper-quiet one). Tolerances:

- features: at most one quantisation step (24 / 255 = 0.094) from
  `speechmodels.transcribe.log_mel_of`, and at most 0.1% of them off at all (float32 in the
  graph, float64 in numpy, can round a value that sits on a step's edge differently);
- memory: within 1e-4 of `Recogniser.encode` on the graph's own features (2e-3 for a signal
  with a feature that never changes, such as a clipped square wave, where the per-utterance
  normalisation divides rounding noise by 1e-3);
- logits within 1e-4 and attention within 1e-5 of the PyTorch decoder on the same memory
  and prefix;
- greedy decoding over the graphs gives `transcribe_file`'s words, and its confidences
  within 1e-4.

The graphs are those the book build exports (`tools/say_it.py`, `_build/say_it/`, exported
again whenever their sources change).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechcourse.corpus import DIGIT_VOCAB, LOG_MEL_MAX, LOG_MEL_MIN, load_split
from speechmodels import transcribe as tr
from speechmodels.transformer import causal_mask

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import say_it  # noqa: E402

ort = pytest.importorskip("onnxruntime")
STEP = (LOG_MEL_MAX - LOG_MEL_MIN) / 255
WAVS = sorted((ROOT / "data" / "wav").glob("*.wav"))
ISOLATED = [sorted((ROOT / "data" / "fsdd" / "recordings").glob(f"{digit}_{speaker}_*.flac"))[7]
            for digit, speaker in [(0, "george"), (3, "lucas"), (7, "george"), (9, "lucas")]]
RATE = 8000


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    t = np.arange(int(1.5 * RATE)) / RATE
    return {
        "noise": rng.normal(0, 0.1, len(t)),
        "tone 1 kHz": 0.5 * np.sin(2 * np.pi * 1000 * t),
        "chirp 100 Hz to 3.5 kHz": 0.3 * np.sin(2 * np.pi * (100 * t + (3400 / 3) * t ** 2)),
        "clipped square": np.clip(3 * np.sign(np.sin(2 * np.pi * 220 * t)), -1, 1),
        "whisper-quiet": rng.normal(0, 1e-3, len(t)),
        "shortest": rng.normal(0, 0.1, tr.MIN_SAMPLES),
    }


def _recordings() -> dict[str, np.ndarray]:
    found = {path.name: tr.read_audio(path)[0] for path in WAVS + ISOLATED}
    return found | _signals()


RECORDINGS = _recordings()


@pytest.fixture(scope="module")
def graphs():
    folder = say_it.export_graphs()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return tuple(ort.InferenceSession(str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
                 for name in ("encoder", "decoder"))


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return tr.load_model()


def encode(encoder, samples):
    return encoder.run(None, {"pcm": np.asarray(samples, dtype=np.float32)})


def step(decoder, memory, prefix):
    return decoder.run(None, {"memory": memory, "prefix": np.asarray(prefix, dtype=np.int64)[:, None]})


def test_the_sources_are_the_ones_the_graphs_are_fingerprinted_by():
    assert (ROOT / "book" / "results" / "ch05_recogniser.pt") in [ROOT / s for s in say_it.SOURCES]
    assert all((ROOT / s).is_file() for s in say_it.SOURCES)


@pytest.mark.parametrize("name", RECORDINGS)
def test_the_graph_computes_the_corpus_features_from_pcm(graphs, name):
    samples = RECORDINGS[name]
    features, _ = encode(graphs[0], samples)
    expected = tr.log_mel_of(samples)
    assert features.shape == expected.shape and features.dtype == np.float32
    off = np.abs(features - expected)
    assert off.max() <= STEP * 1.001, f"{name}: a feature is {off.max() / STEP:.2f} quantisation steps off"
    assert (off > 1e-5).mean() <= 1e-3, f"{name}: {(off > 1e-5).mean():.2%} of the features differ"


@pytest.mark.parametrize("name", RECORDINGS)
def test_the_graphs_memory_is_the_encoders(graphs, model, name):
    features, memory = encode(graphs[0], RECORDINGS[name])
    x = torch.from_numpy(tr.stack_frames(features, tr.STACK))[:, None, :]        # (T', 1, 160)
    with torch.no_grad():
        expected, _ = model.encode(x, torch.tensor([x.shape[0]]))
    assert memory.shape == (len(features) // tr.STACK, 1, 96)
    # a feature constant over the utterance has variance 0, and the normalisation divides its
    # rounding noise by 1e-3 (`FrontEnd`): only a strictly periodic signal has one
    constant = np.ptp(x.numpy(), axis=0).min() == 0
    np.testing.assert_allclose(memory, expected.numpy(), atol=2e-3 if constant else 1e-4, rtol=0)


def _corpus_memories(model, count=6):
    split = load_split("test", stack=tr.STACK)
    real = [i for i, s in enumerate(split.sources) if s == "real"]
    synthetic = [i for i, s in enumerate(split.sources) if s == "synthetic"]
    for index in synthetic[:count] + real[:count]:
        x = torch.from_numpy(split.features[index])[:, None, :]
        with torch.no_grad():
            memory, _ = model.encode(x, torch.tensor([x.shape[0]]))
        yield f"test[{index}] ({split.sources[index]})", memory.numpy(), split.texts[index]


def test_the_decoder_step_is_the_pytorch_decoder_on_corpus_utterances_and_recordings(graphs, model):
    rng = np.random.default_rng(5)
    cases = list(_corpus_memories(model))
    cases += [(name, encode(graphs[0], RECORDINGS[name])[1], None) for name in ("real_5_digits.wav", "noise")]
    assert {name.split("(")[-1] for name, _, _ in cases[:12]} == {"synthetic)", "real)"}
    for name, memory, text in cases:
        said = [DIGIT_VOCAB.bos] + (DIGIT_VOCAB.encode(text) if text else [])
        for prefix in (said, [DIGIT_VOCAB.bos], [DIGIT_VOCAB.bos] + list(rng.integers(3, 13, 11))):
            logits, attention = step(graphs[1], memory, prefix)
            y = torch.tensor(prefix)[:, None]
            with torch.no_grad():
                expected, weights = model.decoder(y, torch.from_numpy(memory), None, causal_mask(len(prefix)),
                                                  return_weights=True)
            np.testing.assert_allclose(logits, expected[-1, 0].numpy(), atol=1e-4, rtol=0, err_msg=name)
            np.testing.assert_allclose(attention, weights[-1][1][0, :, -1].mean(0).numpy(), atol=1e-5, rtol=0,
                                       err_msg=name)
            assert attention.shape == (memory.shape[0],) and abs(attention.sum() - 1) < 1e-4


@pytest.mark.parametrize("path", WAVS + ISOLATED[:2], ids=lambda p: p.name)
def test_greedy_over_the_graphs_hears_what_transcribe_hears(graphs, model, path):
    """The page's loop: <s>, the most probable symbol, appended, until </s> (or T' + 1 symbols)."""
    samples = tr.read_audio(path)[0]
    _, memory = encode(graphs[0], samples)
    prefix, confidences, rows = [DIGIT_VOCAB.bos], [], []
    for _ in range(tr.max_symbols(memory.shape[0])):
        logits, attention = step(graphs[1], memory, prefix)
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        rows.append(attention)
        if probs.argmax() == DIGIT_VOCAB.eos:
            break
        prefix.append(int(probs.argmax()))
        confidences.append(float(probs.max()))
    t = tr.transcribe_file(path, model=model)
    assert DIGIT_VOCAB.decode(prefix[1:] + [DIGIT_VOCAB.eos]) == t.text, path.name
    np.testing.assert_allclose(confidences, t.confidences, atol=1e-4)
    np.testing.assert_allclose(np.stack(rows), t.attention[:len(rows)], atol=1e-5)


def test_weights_are_stored_as_the_checkpoints_float16():
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(say_it.export_graphs() / "decoder.onnx"))
    sizes = {}
    for tensor in graph.graph.initializer:
        kind = numpy_helper.to_array(tensor).dtype
        sizes[kind] = sizes.get(kind, 0) + numpy_helper.to_array(tensor).size
    assert sizes.get(np.dtype(np.float16), 0) > 0.95 * sum(sizes.values()), sizes


def test_page_constants_match_the_transcriber(tmp_path):
    from speechmodels.export import page_constants

    constants = page_constants()
    assert constants["tokens"][constants["eos"]] == "</s>" and constants["tokens"][constants["bos"]] == "<s>"
    assert (constants["min_samples"], constants["silence_dbfs"], constants["stack"]) == \
        (tr.MIN_SAMPLES, tr.SILENCE_DBFS, tr.STACK)


def test_a_missing_checkpoint_gets_one_sentence(tmp_path):
    done = subprocess.run([sys.executable, "-m", "speechmodels.export", str(tmp_path), "--model",
                           str(tmp_path / "missing.pt")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "missing" in done.stderr
