"""Writes ``speechcourse/selfcheck/ch03_attention.npz``: the expected values of Lab 3's step self-check.

The visible self-checks ship to students, so they must not compute a lab's answer. The
decoder step's check loads known weights into the student's ``AttentionDecoder`` and
compares with these arrays, computed here by ``reference.py``. ``tests/test_ch03_attention.py``
checks that the committed file equals what this script writes.
Run: ``python solutions/ch03_attention/selfcheck_data.py``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from speechcourse.selfcheck.ch03_attention import DATA, STEP_CASES, V, step_inputs

HERE = Path(__file__).resolve().parent


def _reference():
    spec = importlib.util.spec_from_file_location("ch03_reference", HERE / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build() -> dict[str, np.ndarray]:
    ref = _reference()
    arrays = {}
    for case, (seed, emb, H, E, T, lengths) in STEP_CASES.items():
        torch.manual_seed(seed)
        decoder = ref.AttentionDecoder(V, emb, H, E)
        arrays.update({f"{case}/w/{k}": v.detach().numpy().copy() for k, v in decoder.state_dict().items()})
        with torch.no_grad():
            logits, s, weights = decoder.step(*step_inputs(seed, H, E, T, lengths))
        arrays.update({f"{case}/logits": logits.numpy(), f"{case}/s": s.numpy(), f"{case}/weights": weights.numpy()})
    return arrays


def main() -> None:
    np.savez(DATA, **build())
    print(f"wrote {DATA}")


if __name__ == "__main__":
    main()
