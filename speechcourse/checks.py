"""Checks that explain themselves.

Every test in the course, the visible self-checks in a lab and the hidden tests the
autograder runs, fails through these functions, so a student always reads a sentence
("expected shape (T, B, H), got (B, T, H)") and never a bare ``AssertionError``.
"""
from __future__ import annotations

import numpy as np

from speechcourse.language import say


class CheckFailed(AssertionError):
    """A check failed; the message says what was expected and what came back."""


def describe(value) -> str:
    """What ``value`` is, in words, for a failure message: "a tuple of length 3", "an array of shape ..."."""
    if isinstance(value, (tuple, list)):
        return say(f"a {type(value).__name__} of length {len(value)}",
                   f"길이 {len(value)}인 {type(value).__name__}")
    if isinstance(value, np.ndarray):
        return say(f"an array of shape {value.shape} and dtype {value.dtype}",
                   f"모양 {value.shape}, dtype {value.dtype}인 배열")
    return say(f"a {type(value).__name__}", f"{type(value).__name__} 객체")


def as_array(name: str, value) -> np.ndarray:
    """``value`` as a float64 array, or a failure naming what it was instead."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        value = np.asarray(value)
    if type(value) is not np.ndarray:
        raise CheckFailed(say(f"{name}: expected a numpy array, got {describe(value)}.",
                              f"{name}: numpy 배열이어야 하는데 {describe(value)}입니다."))
    if value.dtype.kind not in "fiu":
        raise CheckFailed(say(f"{name}: expected a numeric array, got dtype {value.dtype}.",
                              f"{name}: 수치 배열이어야 하는데 dtype이 {value.dtype}입니다."))
    return value.astype(np.float64)


def expect_shape(name: str, value, shape: tuple, dims: str | None = None) -> np.ndarray:
    """Fail unless ``value`` is an array of ``shape``.

    ``dims`` names the axes, e.g. ``"T, B, H"``, so the message can say
    "expected shape (T, B, H) = (5, 2, 3), got (2, 5, 3)".
    """
    array = as_array(name, value)
    if array.shape != tuple(shape):
        named = f"({dims}) = {tuple(shape)}" if dims else f"{tuple(shape)}"
        hint = ""
        if sorted(array.shape) == sorted(shape):
            hint = say(" The sizes are right but the axes are in another order: check the layout.",
                       " 크기는 맞지만 축의 순서가 다릅니다: 축의 배치(layout)를 확인하십시오.")
        raise CheckFailed(say(f"{name}: expected shape {named}, got {array.shape}.{hint}",
                              f"{name}: 모양이 {named}이어야 하는데 {array.shape}입니다.{hint}"))
    return array


def expect_close(name: str, value, expected, rtol: float = 1e-4, atol: float = 1e-6,
                 what: str | None = None) -> np.ndarray:
    """Fail unless ``value`` has ``expected``'s shape and matches it elementwise.

    ``what`` names ``expected`` in the message; by default "the expected value".
    """
    if what is None:
        what = say("the expected value", "기대값")
    expected = np.asarray(expected, dtype=np.float64)
    if not np.all(np.isfinite(expected)):   # a broken reference (or one built on a broken answer) proves nothing
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(expected))[0])
        raise CheckFailed(say(f"{name}: cannot be checked, because {what} contains {expected[index]} at "
                              f"index {index}.",
                              f"{name}: 확인할 수 없습니다. 비교 대상({what})의 인덱스 {index}에 "
                              f"{expected[index]}이(가) 있습니다."))
    array = expect_shape(name, value, expected.shape)
    if not np.all(np.isfinite(array)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise CheckFailed(say(f"{name}: contains {array[index]} at index {index}.",
                              f"{name}: 인덱스 {index}에 {array[index]}이(가) 있습니다."))
    error = np.abs(array - expected)
    bound = atol + rtol * np.abs(expected)
    if np.any(error > bound):
        index = tuple(int(i) for i in np.unravel_index(np.argmax(error - bound), error.shape))
        raise CheckFailed(say(
            f"{name} differs from {what} by {error[index]:.1e} at index {index} "
            f"(got {array[index]:.6g}, expected {expected[index]:.6g}).",
            f"{name}: 인덱스 {index}에서 {error[index]:.1e}만큼 차이가 납니다 "
            f"(받은 값 {array[index]:.6g}, 기대값 {expected[index]:.6g}). 비교 대상: {what}."
        ))
    return array


DTYPE_KINDS = {"int": "iu", "integer": "iu", "float": "f", "bool": "b"}


def expect_dtype(name: str, value, dtype: str) -> None:
    """Fail unless ``value`` (an array or tensor) has ``dtype``.

    ``dtype`` is an exact name (``"int64"``, ``"float32"``) or a kind (``"int"``, ``"float"``,
    ``"bool"``). The message names both, e.g. "y_in: expected int64 (torch.long) token ids,
    got float32".
    """
    got = getattr(value, "dtype", None)
    if got is None:
        raise CheckFailed(say(f"{name}: expected an array or tensor of {dtype}, got {describe(value)}.",
                              f"{name}: {dtype} 배열이나 텐서여야 하는데 {describe(value)}입니다."))
    got_name = str(got).replace("torch.", "")
    if dtype in DTYPE_KINDS:
        ok = np.dtype(got_name).kind in DTYPE_KINDS[dtype] if got_name in np.sctypeDict else False
    else:
        ok = got_name == dtype
    if not ok:
        hint = " (torch.long)" if dtype == "int64" else ""
        raise CheckFailed(say(f"{name}: expected dtype {dtype}{hint}, got {got_name}.",
                              f"{name}: dtype이 {dtype}{hint}이어야 하는데 {got_name}입니다."))


def expect_true(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)
