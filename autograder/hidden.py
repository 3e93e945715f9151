"""Hidden tests: how they are declared, and how they reach a student's functions.

A lab's ``solutions/<slug>/hidden_tests.py`` registers one function per test cell with
:func:`hidden_test`. The function receives ``student``, whose attributes are the
student's functions. When grading, ``student`` forwards each call to the sandbox as
data (see :mod:`autograder.wire`), so the comparison itself runs here, in the grader,
where the student's code cannot reach it. In an instructor's notebook, :func:`run_here`
runs the same test on the notebook's own namespace.
"""
from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from typing import Callable

from . import wire

HIDDEN_TESTS_FILE = "hidden_tests.py"


class StudentError(Exception):
    """The student's function raised, was missing, or returned something that is not data."""


class HiddenTests(dict):
    """grade_id -> test function, in the order the lab declares them."""


def hidden_test(grade_id: str) -> Callable:
    """Register the decorated function as the hidden test of test cell ``grade_id``."""
    def register(test: Callable) -> Callable:
        registry = sys.modules[test.__module__].__dict__.setdefault("HIDDEN_TESTS", HiddenTests())
        if grade_id in registry:
            raise ValueError(f"two hidden tests for {grade_id!r}")
        registry[grade_id] = test
        return test
    return register


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_sibling(anchor_file: str, name: str):
    """Import ``name``.py from the folder of ``anchor_file`` under a lab-unique module name."""
    folder = Path(anchor_file).resolve().parent
    return _load_module(folder / f"{name}.py", f"solutions_{folder.name}_{name}")


def load_hidden_tests(lab_folder: Path) -> HiddenTests:
    """The registry of ``lab_folder/hidden_tests.py`` (an empty one if the lab has none)."""
    path = Path(lab_folder) / HIDDEN_TESTS_FILE
    if not path.exists():
        return HiddenTests()
    module = _load_module(path, f"solutions_{Path(lab_folder).resolve().name}_hidden_tests")
    return getattr(module, "HIDDEN_TESTS", HiddenTests())


class LocalStudent:
    """``student`` for a namespace in this process: an instructor's notebook, or a unit test.

    It keeps the grader's semantics: every argument and every result goes through
    :mod:`autograder.wire` as it would between grader and sandbox, so a test sees the same
    copies, numpy arrays and refusals either way. ``student.keep.Encoder(...)`` keeps an
    object that is not data and returns a handle whose methods can be called, and a handle
    can be passed back as an argument, as with the sandbox's handles.
    """

    def __init__(self, namespace: dict, owner=None, keep: bool = False):
        self._namespace, self._owner, self._keep = namespace, owner, keep

    @property
    def keep(self) -> "LocalStudent":
        return LocalStudent(self._namespace, self._owner, keep=True)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        owner = self._owner
        function = getattr(owner, name, None) if owner is not None else self._namespace.get(name)

        def call(*args, **kwargs):
            if not callable(function):
                raise StudentError(f"{name} is not defined: run the cell that defines it.")
            args = [arg._owner if isinstance(arg, LocalStudent) else _round_trip(arg, True) for arg in args]
            kwargs = {key: _round_trip(value, True) for key, value in kwargs.items()}
            try:
                value = function(*args, **kwargs)
            except Exception as error:  # the student's bug, reported as a failed check
                raise StudentError(f"{name} raised {type(error).__name__}: {error}") from error
            if self._keep:
                return LocalStudent(self._namespace, value)
            try:
                return _round_trip(value, False)
            except wire.WireError as error:
                raise StudentError(f"{name} returned {error}") from None
        return call


def _round_trip(value, tensors: bool):
    buffer = io.BytesIO()
    wire.send(buffer, {}, value)
    buffer.seek(0)
    return wire.receive(buffer, tensors=tensors)[1]


def run_test(test: Callable, student) -> tuple[bool, str]:
    """Run one hidden test; (passed, message)."""
    try:
        test(student)
    except AssertionError as failure:
        return False, str(failure) or "a check failed"
    except StudentError as failure:
        return False, str(failure)
    except Exception as error:  # the student's output broke the comparison itself
        return False, f"{type(error).__name__}: {error}"
    return True, "passed"


def run_here(grade_id: str, namespace: dict, lab_folder: str | Path = ".") -> None:
    """Run hidden test ``grade_id`` on ``namespace``; raise with its message if it fails."""
    tests = load_hidden_tests(Path(lab_folder))
    if grade_id not in tests:
        raise KeyError(f"no hidden test {grade_id!r} in {Path(lab_folder) / HIDDEN_TESTS_FILE}")
    passed, message = run_test(tests[grade_id], LocalStudent(namespace))
    if not passed:
        raise AssertionError(f"hidden test {grade_id}: {message}")
    print(f"hidden test {grade_id}: passed")
