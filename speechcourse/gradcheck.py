"""Numerical gradients by central differences, for checking a backward pass.

``numerical_gradient(f, x)`` nudges every entry of ``x`` by ``±eps`` and measures how
the scalar ``f(x)`` moves:  df/dx[i] ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).
``numerical_gradients`` does the same for every array in a dict of parameters.
``expect_gradient_close`` compares an analytic gradient with a numerical one and fails
with a sentence ("gradient for Whh differs from the numerical gradient by 3.0e-02 at
index (0, 1) ...").

Work in float64: with float32 the differences drown in rounding error.

These are checks for small examples, not a way to compute a gradient: an array of more
than ``MAX_ENTRIES`` entries is refused with a sentence (``TooLargeForGradcheck``). A
backward pass has to be written; the lab's graded problems are larger than that.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from speechcourse.checks import expect_close
from speechcourse.language import say


# Each entry costs two calls of f. The self-checks' largest array has 16 entries; Lab 1's
# hidden tests of rnn_backward all use arrays of more than 16 (Whh of 5 x 5 or 6 x 6).
MAX_ENTRIES = 16


class TooLargeForGradcheck(ValueError):
    """Raised for an array larger than ``MAX_ENTRIES``: these are checks, not a backward pass."""


def numerical_gradient(f: Callable[[np.ndarray], float], x, eps: float = 1e-6) -> np.ndarray:
    """d f(x) / dx by central differences, an array of ``x``'s shape.

    ``f`` takes one array and returns a scalar. ``x`` is not changed: ``f`` is called
    on a float64 copy that is nudged one entry at a time. ``x`` may have at most
    ``MAX_ENTRIES`` entries.
    """
    x = np.array(x, dtype=np.float64)  # a copy, nudged in place below
    if x.size > MAX_ENTRIES:
        raise TooLargeForGradcheck(say(
            f"numerical_gradient checks small examples only: this array has shape {x.shape}, "
            f"{x.size} entries, more than the {MAX_ENTRIES} it accepts. Nudging every entry is a "
            f"way to check a backward pass on a small example, not a way to compute one.",
            f"numerical_gradient는 작은 예만 확인합니다: 이 배열은 모양이 {x.shape}이고 원소가 "
            f"{x.size}개로, 받아들이는 {MAX_ENTRIES}개보다 많습니다. 원소를 하나씩 조금씩 움직여 보는 것은 "
            f"작은 예에서 역전파를 확인하는 방법이지, 역전파를 계산하는 방법이 아닙니다."))
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        plus = float(f(x))
        x[index] = saved - eps
        minus = float(f(x))
        x[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def numerical_gradients(f: Callable[[dict], float], params: Mapping[str, np.ndarray],
                        names=None, eps: float = 1e-6) -> dict:
    """{name: d f(params) / d params[name]} for each name in ``names`` (default: all).

    ``f`` takes a dict shaped like ``params`` and returns a scalar; the other entries
    are held fixed. ``params`` itself is not changed.
    """
    base = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
    grads = {}
    for name in (params if names is None else names):
        def f_of_one(value, name=name):
            return f({**base, name: value})
        grads[name] = numerical_gradient(f_of_one, base[name], eps)
    return grads


def expect_gradient_close(name: str, analytic, numeric, rtol: float = 1e-4,
                          atol: float = 1e-6) -> np.ndarray:
    """Fail, in words, unless ``analytic`` matches the numerical gradient ``numeric``.

    ``atol`` is scaled by the size of the numerical gradient, so entries that are zero
    only up to rounding do not fail a correct float32 backward pass.
    """
    numeric = np.asarray(numeric, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(numeric)))) if numeric.size else 1.0
    return expect_close(say(f"gradient for {name}", f"{name}의 기울기"), analytic, numeric, rtol=rtol,
                        atol=atol * scale, what=say("the numerical gradient", "수치 기울기"))
