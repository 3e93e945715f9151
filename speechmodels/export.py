"""The capstone recogniser for the browser: two ONNX graphs that `book/say_it.md` runs.

    python -m speechmodels.export OUT_DIR [--model book/results/ch05_recogniser.pt]

writes two graphs, made with ``torch.onnx.export`` from the committed checkpoint (loaded as
`speechmodels.transcribe.load_model` loads it):

``encoder.onnx``   pcm (N,) float32, 8 kHz mono in [-1, 1]
                   -> features (T, 40) float32, memory (T', 1, 96) float32
    The whole front end is inside the graph, so no JavaScript re-implements it: frames of
    25 ms every 20 ms, a Hamming window and the 512-point DFT as one strided convolution
    with the windowed cosines and sines (`WaveformFrontEnd`), the power, the 40 mel filters
    of `speechcourse.frontend.mel_filterbank`, the log with its floor, the corpus's uint8
    quantisation and back (the model was trained on quantised features), stacking by 4
    (T' = T // 4), then the model's own per-utterance normalisation and encoder.
    ``features`` are what `speechmodels.transcribe.log_mel_of` returns (up to one
    quantisation step where float32 and float64 round differently), for the spectrogram.

``decoder.onnx``   memory (T', 1, 96), prefix (U, 1) int64 (<s> z_1 .. z_{U-1})
                   -> logits (V,) of the next symbol, attention (T',)
    The decoder re-run over the whole prefix under the causal mask (no key/value cache: a
    transcript has a dozen symbols at most), returning the last position only: the logits
    of z_U and the last layer's cross-attention of that step, mean over heads, which is
    one row of `speechmodels.transcribe.Transcript.attention`.

and ``recogniser.json``, what the page needs to read them: the vocabulary (``tokens``,
``bos``, ``eos``), ``sample_rate``, ``frame_rate`` and ``stack`` (for the time axis),
``min_samples`` and ``silence_dbfs`` (what `speechmodels.transcribe` refuses).

The weights are stored as float16, as the checkpoint holds them (each is cast to float32
inside the graph, as `load_model` casts them), so the files are half the float32 size
and compute exactly what PyTorch computes. `tests/test_export.py` checks both graphs
against PyTorch with onnxruntime; `tools/say_it.py` runs this at every book build.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechcourse.corpus import DIGIT_VOCAB, FRAME_RATE, LOG_MEL_MAX, LOG_MEL_MIN, N_MELS
from speechcourse.frontend import F_MAX, F_MIN, N_FFT, SAMPLE_RATE, WINDOW_MS, mel_filterbank, ms_to_samples
from speechmodels.transcribe import HOP_MS, MIN_SAMPLES, MODEL, SILENCE_DBFS, STACK, load_model
from speechmodels.transformer import causal_mask

OPSET = 18
FLOOR = 1e-10                   # log_mel's floor: log(1e-10) is about -23, below LOG_MEL_MIN
LEVELS = 255                    # the corpus stores uint8 codes 0 .. 255


class WaveformFrontEnd(nn.Module):
    """pcm (N,) -> log-mel (T, 40) exactly as the corpus stores it (quantised, then dequantised).

    Frame t holds samples [t H, t H + L) (no padding: T = 1 + (N - L) // H, as
    `speechcourse.frontend.frame_signal`); one Conv1d of stride H with 2K kernels, the
    Hamming-windowed cos and sin of the K = 257 DFT bins (n_fft = 512), gives each frame's
    real and imaginary parts.
    """

    def __init__(self):
        super().__init__()
        L, self.hop = ms_to_samples(WINDOW_MS), ms_to_samples(HOP_MS)           # 200, 160
        n, k = np.arange(L)[None, :], np.arange(N_FFT // 2 + 1)[:, None]         # (1, L), (K, 1)
        angle = 2 * np.pi * k * n / N_FFT                                        # (K, L)
        basis = np.concatenate([np.cos(angle), np.sin(angle)]) * np.hamming(L)   # (2K, L)
        self.register_buffer("dft", torch.tensor(basis[:, None, :], dtype=torch.float32))   # (2K, 1, L)
        mel = mel_filterbank(N_MELS, N_FFT, SAMPLE_RATE, F_MIN, min(F_MAX, SAMPLE_RATE / 2))  # (K, 40)
        self.register_buffer("mel", torch.tensor(mel, dtype=torch.float32))

    def forward(self, pcm):
        parts = nn.functional.conv1d(pcm[None, None, :], self.dft, stride=self.hop)[0]   # (2K, T)
        real, imag = parts.chunk(2)                                              # (K, T) each
        power = (real * real + imag * imag).T                                    # (T, K)
        log_mel = torch.log(torch.clamp(power @ self.mel, min=FLOOR))           # (T, 40)
        scaled = (log_mel - LOG_MEL_MIN) / (LOG_MEL_MAX - LOG_MEL_MIN)
        codes = torch.round(torch.clamp(scaled, 0.0, 1.0) * LEVELS)              # 0 .. 255, as uint8
        return codes * ((LOG_MEL_MAX - LOG_MEL_MIN) / LEVELS) + LOG_MEL_MIN      # (T, 40)


class WaveformEncoder(nn.Module):
    """pcm (N,) -> features (T, 40), memory (T', 1, d): the front end and the model's encoder."""

    def __init__(self, model):
        super().__init__()
        self.front_end = WaveformFrontEnd()
        self.model = model

    def forward(self, pcm):
        features = self.front_end(pcm)                                           # (T, 40)
        steps = features.shape[0] // STACK
        x = features[: steps * STACK].reshape(steps, 1, STACK * N_MELS)          # (T', 1, 160), stack_frames
        lengths = torch.ones(1, dtype=torch.long) * steps                        # (1,): one utterance, no padding
        memory, _ = self.model.encode(x, lengths)                                # (T', 1, d)
        return features, memory


class DecoderStep(nn.Module):
    """memory (T', 1, d), prefix (U, 1) -> logits (V,) of the next symbol, cross-attention (T',)."""

    def __init__(self, model):
        super().__init__()
        self.decoder = model.decoder

    def forward(self, memory, prefix):
        logits, weights = self.decoder(prefix, memory, None, causal_mask(prefix.shape[0]), return_weights=True)
        return logits[-1, 0], weights[-1][1][0, :, -1].mean(0)                   # (V,), (T',)


def _examples(model):
    """Inputs to trace with: 1.5 s of noise, and the memory and a prefix it gives."""
    pcm = torch.from_numpy(np.random.default_rng(0).uniform(-0.1, 0.1, 12_000).astype(np.float32))
    with torch.no_grad():
        _, memory = WaveformEncoder(model)(pcm)
    return pcm, memory, torch.tensor([[1], [5], [7]])


def export(out_dir, model_path=MODEL) -> dict:
    """Write encoder.onnx, decoder.onnx and recogniser.json into out_dir; returns {name: path}."""
    import onnx

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(str(model_path))
    pcm, memory, prefix = _examples(model)
    samples, steps, symbols = torch.export.Dim("samples", min=2_000), torch.export.Dim("steps"), torch.export.Dim("symbols")
    graphs = {
        "encoder": (WaveformEncoder(model), (pcm,), ["pcm"], ["features", "memory"], {"pcm": {0: samples}}),
        "decoder": (DecoderStep(model), (memory, prefix), ["memory", "prefix"], ["logits", "attention"],
                    {"memory": {0: steps}, "prefix": {0: symbols}}),
    }
    paths = {}
    for name, (module, args, inputs, outputs, shapes) in graphs.items():
        path = out_dir / f"{name}.onnx"
        with torch.no_grad():
            program = torch.onnx.export(module.eval(), args, input_names=inputs, output_names=outputs,
                                        dynamic_shapes=shapes, opset_version=OPSET, dynamo=True,
                                        optimize=True, verbose=False)
        graph = program.model_proto
        _weights_as_float16(graph)
        onnx.checker.check_model(graph)
        onnx.save(graph, path)
        paths[name] = path
    paths["recogniser"] = out_dir / "recogniser.json"
    paths["recogniser"].write_text(json.dumps(page_constants(), indent=1) + "\n")
    return paths


def page_constants() -> dict:
    """What the browser needs besides the graphs: the vocabulary and the front end's constants."""
    return {"tokens": list(DIGIT_VOCAB.tokens), "bos": DIGIT_VOCAB.bos, "eos": DIGIT_VOCAB.eos,
            "sample_rate": SAMPLE_RATE, "frame_rate": FRAME_RATE, "stack": STACK,
            "min_samples": MIN_SAMPLES, "silence_dbfs": SILENCE_DBFS}


def _weights_as_float16(graph) -> None:
    """Store each float32 initializer that float16 holds exactly as float16, cast back in the graph.

    The checkpoint is float16, so every weight of the model is exact in float16; the front
    end's DFT and mel matrices are not, and stay float32.
    """
    from onnx import TensorProto, helper, numpy_helper

    kept = []
    casts = []
    for tensor in graph.graph.initializer:
        value = numpy_helper.to_array(tensor)
        if value.dtype != np.float32 or value.size < 16 or not np.array_equal(value.astype(np.float16), value):
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(value.astype(np.float16), tensor.name + "_f16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT))
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(kept)
    nodes = casts + list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speechmodels.export",
                                     description="Export the capstone recogniser as two ONNX graphs for the browser.")
    parser.add_argument("out_dir", help="folder for encoder.onnx and decoder.onnx")
    parser.add_argument("--model", default=str(MODEL), help="the checkpoint (default: the committed capstone)")
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        print(f"export: the model {args.model} is missing; train it with experiments/ch05_recogniser.py.",
              file=sys.stderr)
        return 1
    for name, path in export(args.out_dir, args.model).items():
        print(f"{name}: {path} ({path.stat().st_size / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
