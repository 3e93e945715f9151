"""Visible self-checks, one module per lab: they run in the student's kernel and explain failures in words.

A self-check never computes a lab's answer: it checks properties, compares with PyTorch's
built-ins where one is the answer's definition (``F.cross_entropy(..., ignore_index=...)``),
or compares with expected values precomputed by the instructor's reference and shipped
next to the module (``<lab>.npz``).

Each check is wrapped by :func:`self_check`: it prints "✓ ... passed", or stops with one
sentence. A failed check shows that sentence only, not a traceback through the course's
plumbing (IPython prints what ``_render_traceback_`` returns instead of the traceback).
An error raised by the student's own code keeps its traceback: it points at their line.
"""
from __future__ import annotations

import functools

from speechcourse.checks import CheckFailed
from speechcourse.language import say


class SelfCheckFailed(CheckFailed):
    """A failed self-check; in a notebook it shows its sentence and no traceback."""

    def _render_traceback_(self):
        return [f"\x1b[31m✗ {self}\x1b[0m"]


class NotWrittenYet(SelfCheckFailed, NotImplementedError):
    """The function is still the stub: it raised NotImplementedError."""


def _stub_name(error: BaseException) -> str:
    """``Encoder.forward`` or ``rnn_step``: the function that raised, from the traceback."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return say("your function", "여러분의 함수")
    frame = tb.tb_frame
    owner = frame.f_locals.get("self")
    name = frame.f_code.co_name
    return f"{type(owner).__name__}.{name}" if owner is not None else name


def self_check(what: str, ko: str | None = None):
    """Decorate a check: prints "✓ {what} passed", and turns a failure into one sentence.

    ``ko`` is ``what`` in Korean (default: ``what`` itself), printed under ``use("ko")``.
    """
    def decorate(check):
        @functools.wraps(check)
        def run(*args, **kwargs):
            try:
                check(*args, **kwargs)
            except NotWrittenYet:
                raise
            except CheckFailed as error:
                raise SelfCheckFailed(str(error)) from None
            except NotImplementedError as error:
                if type(error) is not NotImplementedError:
                    raise
                raise NotWrittenYet(say(
                    f"{_stub_name(error)} raised NotImplementedError: it is still the stub. "
                    "Write its body (replace `raise NotImplementedError()`) and run its cell "
                    "again before this check.",
                    f"{_stub_name(error)}이(가) NotImplementedError를 일으켰습니다: 아직 빈 틀(stub) "
                    "그대로입니다. 본문을 작성하고(`raise NotImplementedError()`를 바꾸십시오) 그 셀을 "
                    "다시 실행한 다음 이 확인을 실행하십시오.")) from None
            print(say(f"✓ {what} passed", f"✓ {what if ko is None else ko} 통과"))
        return run
    return decorate
