"""Runs inside the sandbox: executes a student's cells and answers calls to their functions.

It is started by :mod:`autograder.sandbox` as ``python harness.py EVENTS_FD REQUESTS_FD``
with only the standard library, the venv, the course package and this folder visible.
It decides nothing. It reports which cell it is in, and at each test cell it serves
the grader's calls (function name and arguments in, return value out, as data per
:mod:`wire`) until the grader says the test is done. Everything the student's code
does here, including lying about results, can only change the data it sends back.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback

import calls
import wire

HANDLE = "__handle__"   # an argument {HANDLE: n} stands for an object kept from an earlier call


class CellTimeout(BaseException):
    """Raised by the alarm; a BaseException so ``except Exception`` in student code cannot swallow it."""


def _on_alarm(signum, frame):
    raise CellTimeout()


class CappedStream:
    """stdout/stderr that keep the first ``limit`` characters and drop the rest."""

    def __init__(self, stream, limit: int):
        self._stream, self._left = stream, limit
        self.encoding = getattr(stream, "encoding", "utf-8")

    def write(self, text):
        text = str(text)
        if self._left > 0:
            kept = text[: self._left]
            self._left -= len(kept)
            try:
                self._stream.write(kept)
                if self._left <= 0:
                    self._stream.write("\n[output truncated by the grader]\n")
            except OSError:
                self._left = 0
        return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except OSError:
            pass

    def isatty(self):
        return False


def _describe(error: BaseException) -> str:
    if isinstance(error, CellTimeout):
        return "timed out"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


def _start_shell():
    from traitlets.config import Config
    from IPython.core.interactiveshell import InteractiveShell
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.showtraceback = lambda *args, **kwargs: None   # the grader reports errors itself
    return shell


class Harness:
    def __init__(self, events, requests, plan: dict):
        self.events, self.requests, self.plan = events, requests, plan
        self.pid = os.getpid()
        self.shell = _start_shell()
        self.handles: list = []

    def send(self, header: dict, payload=None) -> None:
        if os.getpid() != self.pid:   # a child the student forked: it must not speak for the harness
            os._exit(0)
        wire.send(self.events, header, payload)

    def run(self) -> None:
        skip = set(self.plan.get("skip", []))
        for cell in self.plan["cells"]:
            index = cell["index"]
            if index in skip:
                continue
            self.send({"event": "cell", "index": index})
            if cell["kind"] == "test":       # a place to stop; the plan does not say which test
                self.send({"event": "test"})
                self.serve()
            else:
                error = self.run_cell(cell["source"])
                self.send({"event": "cell_done", "index": index, "error": error})
        self.send({"event": "end"})

    def run_cell(self, source: str):
        signal.alarm(int(self.plan["cell_timeout"]))
        try:
            result = self.shell.run_cell(source, store_history=False)
            error = result.error_before_exec or result.error_in_exec
        except BaseException as caught:   # a timeout between statements, or worse
            error = caught
        finally:
            signal.alarm(0)
        return None if error is None else _describe(error)

    def serve(self) -> None:
        """Answer the grader's calls until it says this test is done.

        Each reply carries the call's ``id``; the grader ends the session on anything else.
        """
        while True:
            header, payload = wire.receive(self.requests, tensors=True)
            if header.get("op") == "done":
                return
            reply = {"reply": header.get("id"), "ok": False}
            ok, value = self.call(header, payload)
            signal.alarm(int(self.plan["call_timeout"]))
            try:
                if ok and header.get("keep"):
                    self.handles.append(value)
                    value = {HANDLE: len(self.handles) - 1}
                data = wire.encode(dict(reply, ok=ok), value)
            except wire.WireError as error:
                data = wire.encode(reply, f"{header.get('name')} returned {error}")
            except BaseException as error:   # a value whose conversion itself failed or hung
                data = wire.encode(reply, f"{header.get('name')} returned a value that could not be "
                                          f"read: {_describe(error)}")
            finally:
                signal.alarm(0)
            self.send_bytes(data)

    def send_bytes(self, data: bytes) -> None:
        if os.getpid() != self.pid:
            os._exit(0)
        view = memoryview(data)
        while view:
            view = view[os.write(self.events.fileno(), view):]

    def call(self, header: dict, payload):
        name = str(header.get("name"))
        namespace = self.shell.user_ns
        owner = None
        if "handle" in header:
            try:
                owner = self.handles[int(header["handle"])]
            except (IndexError, ValueError, TypeError):
                return False, f"{name}: no such object"
            function = getattr(owner, name, None)
        else:
            function = namespace.get(name)
        if not callable(function):
            return False, f"{name} is not defined: run the cell that defines it."
        payload = payload if payload else ((), {}, {})
        args, kwargs = payload[0], payload[1]
        options = payload[2] if len(payload) > 2 else {}
        try:
            args = [self._resolve(value) for value in args]
            kwargs = {key: self._resolve(value) for key, value in kwargs.items()}
        except (IndexError, KeyError, TypeError):
            return False, f"{name}: an argument refers to no kept object"
        mode = "value" if header.get("keep") else str(header.get("mode", "value"))
        signal.alarm(int(self.plan["call_timeout"]))
        try:
            if mode == "value" and header.get("keep"):
                return True, function(*args, **kwargs)
            return True, calls.perform(function, args, kwargs, mode, options, owner)
        except BaseException as error:    # SystemExit, timeouts and everything else
            return False, f"{name} raised {_describe(error)}"
        finally:
            signal.alarm(0)

    def _resolve(self, value):
        if type(value) is dict and set(value) == {HANDLE}:
            return self.handles[value[HANDLE]]
        return value


def main() -> None:
    events = os.fdopen(int(sys.argv[1]), "wb", buffering=0)
    requests = os.fdopen(int(sys.argv[2]), "rb", buffering=0)
    limit = int(os.environ.get("GRADER_OUTPUT_LIMIT", "100000"))
    sys.stdout = CappedStream(sys.stdout, limit)
    sys.stderr = CappedStream(sys.stderr, limit)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a file past its size cap fails, not kills
    _, plan = wire.receive(requests)
    try:
        Harness(events, requests, plan).run()
    except (EOFError, BrokenPipeError):
        pass
    except BaseException:
        traceback.print_exc(file=sys.__stderr__)
        raise


if __name__ == "__main__":
    main()
