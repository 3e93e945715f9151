"""Writes ``speechcourse/selfcheck/ch02_seq2seq.npz``: the expected values of Lab 2's self-checks.

The visible self-checks ship to students, so they must not compute a lab's answer (no
encoder run per utterance, no greedy decoder of their own). They load known weights into
the student's modules and compare with these arrays, computed here by ``reference.py``.
``tests/test_ch02_seq2seq.py`` checks that the committed file equals what this script
writes. Run: ``python solutions/ch02_seq2seq/selfcheck_data.py``.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from speechcourse.selfcheck.ch02_seq2seq import (DATA, DECODER_CASES, ENCODER_CASES, GREEDY_CASES,
                                                 V, decoder_inputs, encoder_inputs, greedy_pool)

HERE = Path(__file__).resolve().parent


def _reference():
    spec = importlib.util.spec_from_file_location("ch02_reference", HERE / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _weights(prefix, module):
    return {f"{prefix}/w/{k}": v.detach().numpy().copy() for k, v in module.state_dict().items()}


def build() -> dict[str, np.ndarray]:
    ref = _reference()
    torch.set_num_threads(1)
    arrays = {}
    for case, (seed, F, H, lengths) in ENCODER_CASES.items():
        torch.manual_seed(seed)
        encoder = ref.Encoder(F, H)
        arrays.update(_weights(case, encoder.rnn))
        x, lens = encoder_inputs(seed, F, lengths)
        with torch.no_grad():
            states, context = encoder(x, lens)
            padded_end = encoder.rnn(x)[0][-1]            # the mistake: the state at the padded end
        arrays[f"{case}/states"], arrays[f"{case}/context"] = states.numpy(), context.numpy()
        arrays[f"{case}/context_padded_end"] = padded_end.numpy()
    for case, (seed, emb, H) in DECODER_CASES.items():
        torch.manual_seed(seed)
        decoder = ref.Decoder(V, emb, H)
        arrays.update(_weights(case, decoder))
        y_prev, s_prev, context, y_in = decoder_inputs(seed, H)
        with torch.no_grad():
            logits, s = decoder.step(y_prev, s_prev, context)
            arrays[f"{case}/step_logits"], arrays[f"{case}/step_s"] = logits.numpy(), s.numpy()
            arrays[f"{case}/forward_logits"] = decoder(context, y_in).numpy()
    for case, (seed, B) in GREEDY_CASES.items():
        torch.manual_seed(seed)
        decoder = ref.Decoder(V, 3, 6)
        with torch.no_grad():
            for p in decoder.parameters():
                p.mul_(2.0)                               # large weights: confident, varied outputs
        pool = greedy_pool(seed)                          # (80, 6) candidate contexts
        lengths = [len(ref.greedy_decode(decoder, c[None], 6)[0]) for c in pool]
        # B contexts whose outputs end at as many different steps as the decoder allows
        order = sorted(range(len(pool)), key=lambda i: (sum(lengths[j] == lengths[i] for j in range(i)), i))
        contexts = pool[order[:B]]
        outputs = ref.greedy_decode(decoder, contexts, 6)
        arrays.update(_weights(case, decoder))
        arrays[f"{case}/contexts"] = contexts.numpy()
        arrays[f"{case}/outputs"] = np.array([out + [-1] * (6 - len(out)) for out in outputs])
    # the book's curve (chapter 2, section 2.5), which Lab 2's plot overlays on the student's
    book = json.loads((HERE.parents[1] / "book" / "results" / "ch02_bottleneck.json").read_text())
    arrays["book/accuracy_by_length"] = np.array([book["accuracy_by_length"][str(n)] for n in range(1, 11)])
    for source in ("synthetic", "real"):              # the same curve for each source, side by side
        by_length = book["by_source"][source]["accuracy_by_length"]
        arrays[f"book/{source}/accuracy_by_length"] = np.array([by_length[str(n)] for n in range(1, 11)])
    arrays["book/steps"] = np.array(book["steps"])
    arrays["book/hidden"] = np.array(book["config"]["hidden"])
    arrays["book/layers"] = np.array(book["config"].get("layers", 1))
    return arrays


if __name__ == "__main__":
    np.savez_compressed(DATA, **build())
    print(f"wrote {DATA}")
