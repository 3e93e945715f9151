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
from dataclasses import dataclass
from typing import Callable

import numpy as np

from speechcourse.language import say, use
from speechcourse.language import current as current_language

from . import calls, wire

HIDDEN_TESTS_FILE = "hidden_tests.py"


class StudentError(Exception):
    """The student's function raised, was missing, or returned something that is not data."""


def with_weights(student, cls: str, state: dict, *args):
    """A handle to the student's ``cls(*args)`` with the known weights ``state`` loaded.

    The tests of a student's ``nn.Module`` load the reference's weights into it by name, so a
    failure here means the student renamed or resized a layer that ``__init__`` creates: the
    sentence says so, as a failed check rather than a crash.
    """
    from speechcourse.checks import CheckFailed
    handle = getattr(student.keep, cls)(*args)
    try:
        handle.keep.load_state_dict(state)
    except StudentError as error:
        raise CheckFailed(say(
            f"{cls}({', '.join(map(str, args))}).load_state_dict(...) failed: {error}. Keep the "
            f"layers that __init__ creates in the notebook, with their names and sizes; the "
            f"tests load known weights into them.",
            f"{cls}({', '.join(map(str, args))}).load_state_dict(...)가 실패했습니다: {error}. 노트북의 "
            f"__init__이 만드는 층을 그 이름과 크기 그대로 두십시오. 테스트가 그 층에 알려진 가중치를 "
            f"불러옵니다.")) from None
    return handle


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


@dataclass
class Observed:
    """What ``student.observe.f(*args)`` saw: the result, the arguments after the call, aliases.

    ``args``/``kwargs`` are the arguments as the function left them (data, like any result);
    ``aliases`` lists ``(result_path, argument_path)`` where the result, or a part of it, is
    an argument or a part of one, or shares its memory.
    """
    value: object
    args: list
    kwargs: dict
    aliases: list

    def changed(self, before: list) -> list[str]:
        """Paths of the arguments (``args[1]``, ``args[0]['Wxh']``) that differ from ``before``."""
        return _differences(before, self.args, "args")


@dataclass
class Gradients:
    """What ``student.gradients(wrt=..., grad_output=...).f(*args)`` computed in the sandbox.

    ``grads``: ``wrt`` key (as a string: ``"0"``, ``"context"``) -> gradient array or None;
    ``params``: parameter name -> gradient array or None (the module's own parameters, and
    ``args[i].name`` for a module passed as argument ``i``). ``differentiable`` is False, with
    ``reason`` in words, when the result is not connected to its inputs for autograd.

    ``differentiable`` and ``reason`` are decided here, in the grader, from the raw record
    (:func:`judge_gradients`); the sandbox sends no verdict. The gradients themselves are data
    the student's process could forge, so a test trusts them only by comparing them with
    the reference's (DEVELOPERS.md, "What the grader trusts").
    """
    value: object
    differentiable: bool
    reason: str | None
    grads: dict
    params: dict


def _differences(before, after, path: str) -> list[str]:
    import numpy as np
    if isinstance(before, dict) and isinstance(after, dict):
        if set(before) != set(after):
            return [path]
        return [d for key in before for d in _differences(before[key], after[key], f"{path}[{key!r}]")]
    if isinstance(before, (list, tuple)) and isinstance(after, (list, tuple)):
        if len(before) != len(after):
            return [path]
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in _differences(b, a, f"{path}[{i}]")]
    if hasattr(before, "detach"):
        before = before.detach().cpu().numpy()
    if isinstance(before, np.ndarray) or isinstance(after, np.ndarray):
        a, b = np.asarray(after), np.asarray(before)
        same = a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
        return [] if same else [path]
    return [] if type(before) is type(after) and before == after else [path]


def shape_result(name: str, mode: str, value, sent: tuple | None = None):
    """The data a call in ``mode`` brought back, as a hidden test receives it.

    ``sent`` is ``(args, kwargs, options)`` as the test sent them: a gradients call is judged
    against it here (:func:`judge_gradients`).
    """
    if mode == "value":
        return value
    if type(value) is not dict:
        raise StudentError(f"{name}: the sandbox sent a malformed record")
    try:
        if mode == "observe":
            if set(value) != {"value", "args", "kwargs", "aliases"}:
                raise KeyError("fields")
            return Observed(value["value"], list(value["args"]), dict(value["kwargs"]),
                            [tuple(str(part) for part in pair) for pair in value["aliases"]])
        if mode == "gradients":
            return judge_gradients(name, value, sent if sent is not None else ((), {}, {}))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise StudentError(f"{name}: the sandbox sent a malformed record") from None
    raise ValueError(f"unknown call mode {mode!r}")


def _parts(value) -> list:
    """The arrays of a result (or of a grad_output) in order; None for a part that is not one."""
    if value is None:
        return [None]
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for part in value for item in _parts(part)]
    return [None]


NOT_CONNECTED = ("no gradient reached the inputs or the weights (was the result detached, or computed "
                 "with .item(), .numpy() or torch.no_grad()?)")
NOT_CONNECTED_KO = ("입력에도 가중치에도 기울기가 닿지 않았습니다 (결과를 떼어 냈거나(detach), .item(), "
                    ".numpy(), torch.no_grad()로 계산했습니까?)")
# The sandbox's notes (autograder.calls._loss) are English; the fixed ones have a Korean twin here,
# so that a Korean submission's feedback reads as one sentence. Any other note is shown as it came.
NOTES_KO = {
    "the result is not a single-number tensor": "결과가 수 하나짜리 텐서가 아닙니다",
    "the result does not have the tensors the test expected": "결과에 테스트가 기대한 텐서들이 없습니다",
    "a part of the result that should be a tensor is not one": "결과 가운데 텐서여야 할 부분이 텐서가 아닙니다",
    ("the result is not connected to its inputs for autograd (requires_grad is False: was it detached, "
     "or computed with .item(), .numpy() or torch.no_grad()?)"):
        ("결과가 autograd로 입력과 이어져 있지 않습니다 (requires_grad가 False입니다: 떼어 냈거나(detach), "
         ".item(), .numpy(), torch.no_grad()로 계산했습니까?)"),
    "there is nothing to differentiate": "미분할 것이 없습니다",
}


def judge_gradients(name: str, record: dict, sent: tuple) -> Gradients:
    """The verdict on a gradients call, made here from the raw record and what the test sent.

    The sandbox's record holds data only (value, grads, params, and a ``note`` saying why no
    loss could be formed). A note can only make the call fail; nothing the sandbox says can make
    it pass: the result's parts and shapes are checked against ``grad_output`` here, each
    gradient must be an array shaped like the argument it belongs to, and at least one gradient
    must have arrived. Whether the gradients are *right* is the test's comparison with the reference.
    """
    if set(record) != {"value", "grads", "params", "note"}:
        raise KeyError("fields")
    args, kwargs, options = sent
    value, note = record["value"], record["note"]
    grads, params = dict(record["grads"]), dict(record["params"])
    wrt = [str(key) for key in options.get("wrt", [])]
    if set(grads) != set(wrt) or not all(type(key) is str for key in params):
        raise KeyError("keys")
    reason = _shape_reason(value, options.get("grad_output"))
    if reason is None and note is not None:
        reason = str(note)[:300]
        if reason in NOTES_KO:
            reason = say(reason, NOTES_KO[reason])
    for key in options.get("wrt", []):
        given = args[key] if isinstance(key, int) else kwargs[key]
        got = grads[str(key)]
        if got is not None and (not isinstance(got, np.ndarray) or got.shape != tuple(np.shape(given))):
            raise ValueError("a gradient that is not shaped like its argument")
    for got in params.values():
        if got is not None and not isinstance(got, np.ndarray):
            raise ValueError("a parameter's gradient that is not an array")
    if reason is None and all(g is None for g in list(grads.values()) + list(params.values())):
        reason = say(NOT_CONNECTED, NOT_CONNECTED_KO)
    return Gradients(value, reason is None, reason, grads, params)


def _shape_reason(value, grad_output) -> str | None:
    outputs = _parts(value)
    if grad_output is None:
        if len(outputs) != 1 or outputs[0] is None or outputs[0].size != 1:
            return say("the result is not a single-number tensor", "결과가 수 하나짜리 텐서가 아닙니다")
        return None
    targets = _parts(grad_output)
    if len(targets) != len(outputs):
        return say("the result does not have the tensors the test expected",
                   "결과에 테스트가 기대한 텐서들이 없습니다")
    for out, g in zip(outputs, targets):
        if g is None:
            continue
        if out is None:
            return say("a part of the result that should be a tensor is not one",
                       "결과 가운데 텐서여야 할 부분이 텐서가 아닙니다")
        if tuple(out.shape) != tuple(g.shape):
            return say(f"the result has shape {tuple(out.shape)}, not {tuple(g.shape)}",
                       f"결과의 모양이 {tuple(g.shape)}이 아니라 {tuple(out.shape)}입니다")
    return None


class LocalStudent:
    """``student`` for a namespace in this process: an instructor's notebook, or a unit test.

    It keeps the grader's semantics: every argument and every result goes through
    :mod:`autograder.wire` as it would between grader and sandbox, so a test sees the same
    copies, numpy arrays and refusals either way. ``student.keep.Encoder(...)`` keeps an
    object that is not data and returns a handle whose methods can be called, and a handle
    can be passed back as an argument, as with the sandbox's handles. ``student.observe``
    and ``student.gradients(...)`` work as in :class:`autograder.sandbox.RemoteStudent`.
    """

    def __init__(self, namespace: dict, owner=None, mode: str = "value", options: dict | None = None):
        self._namespace, self._owner, self._mode, self._options = namespace, owner, mode, options or {}

    @property
    def keep(self) -> "LocalStudent":
        return LocalStudent(self._namespace, self._owner, "keep")

    @property
    def observe(self) -> "LocalStudent":
        return LocalStudent(self._namespace, self._owner, "observe")

    def gradients(self, wrt=(), grad_output=None) -> "LocalStudent":
        return LocalStudent(self._namespace, self._owner, "gradients",
                            {"wrt": list(wrt), "grad_output": grad_output})

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
            options = _round_trip(self._options, True)
            mode = "value" if self._mode == "keep" else self._mode
            try:
                if self._mode == "keep":
                    return LocalStudent(self._namespace, function(*args, **kwargs))
                value = calls.perform(function, args, kwargs, mode, options, owner)
            except Exception as error:  # the student's bug, reported as a failed check
                raise StudentError(f"{name} raised {type(error).__name__}: {error}") from error
            try:
                return shape_result(name, mode, _round_trip(value, False), (args, kwargs, options))
            except wire.WireError as error:
                raise StudentError(f"{name} returned {error}") from None
        return call


def _round_trip(value, tensors: bool):
    buffer = io.BytesIO()
    wire.send(buffer, {}, value)
    buffer.seek(0)
    return wire.receive(buffer, tensors=tensors)[1]


def run_test(test: Callable, student, language: str | None = None) -> tuple[bool, str]:
    """Run one hidden test; (passed, message).

    The test's sentences are in the language in use (:mod:`speechcourse.language`), or in
    ``language`` ("en" or "ko") for this test only, when given: the grader names the language of
    the edition the submission came from, since its own process does not run the student's
    ``use("ko")``.
    """
    before = current_language()
    if language is not None:
        use(language)
    try:
        test(student)
    except AssertionError as failure:
        return False, str(failure) or "a check failed"
    except StudentError as failure:
        return False, str(failure)
    except Exception as error:  # the student's output broke the comparison itself
        return False, f"{type(error).__name__}: {error}"
    finally:
        use(before)
    return True, "passed"


def run_here(grade_id: str, namespace: dict, lab_folder: str | Path = ".") -> None:
    """Run hidden test ``grade_id`` on ``namespace``; raise with its message if it fails."""
    tests = load_hidden_tests(Path(lab_folder))
    if grade_id not in tests:
        raise KeyError(f"no hidden test {grade_id!r} in {Path(lab_folder) / HIDDEN_TESTS_FILE}")
    passed, message = run_test(tests[grade_id], LocalStudent(namespace))
    if not passed:
        raise AssertionError(say(f"hidden test {grade_id}: {message}", f"숨은 테스트 {grade_id}: {message}"))
    print(say(f"hidden test {grade_id}: passed", f"숨은 테스트 {grade_id}: 통과"))
