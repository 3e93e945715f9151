"""Writes ``speechcourse/selfcheck/ch01_vanilla_rnn.npz``: the expected values of Lab 1's self-checks.

The visible self-checks ship to students, so they must not compute a lab's answer. They
compare with these arrays instead, computed here by ``reference.py`` on the self-checks'
own small problems (``random_problem``). ``tests/test_ch01_vanilla_rnn.py`` checks that
the committed file equals what this script writes. Run: ``python
solutions/ch01_vanilla_rnn/selfcheck_data.py``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from speechcourse.selfcheck.ch01_vanilla_rnn import BACKWARD_CASES, DATA, FORWARD_CASES, STEP_CASE, random_problem

HERE = Path(__file__).resolve().parent


def _reference():
    spec = importlib.util.spec_from_file_location("ch01_reference", HERE / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build() -> dict[str, np.ndarray]:
    ref = _reference()
    arrays = {}
    xs, h0, p, _ = random_problem(**STEP_CASE)
    arrays["step/h"] = ref.rnn_step(xs[0], h0, p["Wxh"], p["Whh"], p["bh"])
    for case, sizes in FORWARD_CASES.items():
        xs, h0, p, _ = random_problem(**sizes)
        arrays[f"{case}/hs"] = ref.rnn_forward(xs, h0, p)[0]
    for case, sizes in BACKWARD_CASES.items():
        xs, h0, p, dys = random_problem(**sizes)
        hs = ref.rnn_forward(xs, h0, p)[0]
        arrays[f"{case}/hs"] = hs
        for name, grad in ref.rnn_backward(xs, h0, p, hs, dys).items():
            arrays[f"{case}/{name}"] = grad
    return {key: np.asarray(value, dtype=np.float64) for key, value in arrays.items()}


if __name__ == "__main__":
    np.savez_compressed(DATA, **build())
    print(f"wrote {DATA}")
