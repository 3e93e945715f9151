"""Run a student's cells in a sandbox and their hidden tests here, in the grader.

Isolation is bubblewrap (Debian package ``bubblewrap``) plus a separate unprivileged
user: the harness runs as ``nobody`` in fresh network, PID, IPC and UTS namespaces,
in a file system that holds only the Python install, the venv, the course package
(``speechcourse``), the corpus (``data``), the harness and a scratch folder. The
solutions, hidden tests, other submissions and the gradebook are not in it, and
nothing outside the scratch folder and ``/tmp`` is writable.

Limits: rlimits on memory (address space), processes, file size and CPU time, a
timeout per cell and per call enforced both inside (an alarm) and outside (the grader
kills the sandbox), a time budget per notebook, and a cap on printed output. When the
sandbox dies or hangs, the grader restarts it and skips the cell or the test that
killed it, so a crash costs only what it did not reach.
"""
from __future__ import annotations

import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import wire
from .hidden import HiddenTests, StudentError, run_test

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SANDBOX_USER = 65534                   # nobody
SANDBOX_HOME = "/home/student"
GRADER_DIR = "/grader"


@dataclass(frozen=True)
class Limits:
    cell_timeout: int = 120            # seconds per cell
    call_timeout: int = 30             # seconds per call to a student function
    notebook_budget: int = 600         # seconds for the whole notebook, restarts included
    memory_bytes: int = 4 << 30        # address space; importing torch maps about 2 GiB
    file_bytes: int = 64 << 20         # largest file the student may write (incl. stdout)
    output_chars: int = 100_000        # printed output kept
    processes: int = 64                # processes and threads of the sandbox user
    max_restarts: int = 4
    grace: int = 5                     # seconds the outside waits beyond an inside timeout
    uid: int = SANDBOX_USER            # the sandbox's user; a parallel run gives each job its own


@dataclass
class Verdict:
    passed: bool
    message: str


@dataclass
class SandboxReport:
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    cell_errors: dict[int, str] = field(default_factory=dict)   # cell index -> what went wrong
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class SandboxDied(Exception):
    """The sandbox exited, hung past its deadline, or broke the protocol."""


def sandbox_available() -> bool:
    return shutil.which("bwrap") is not None and shutil.which("setpriv") is not None


def _ancestors(path: Path) -> list[Path]:
    return [parent for parent in reversed(path.parents) if str(parent) != "/"]


def _bwrap_command(scratch: Path) -> list[str]:
    """The bwrap command line: a read-only view of just what a lab needs."""
    readonly = [Path(sys.base_prefix), Path(sys.prefix), REPO / "speechcourse", REPO / "data"]
    command = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
               "--die-with-parent", "--new-session",
               "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
               "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = Path("/") / name
        if target.is_symlink():
            command += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            command += ["--ro-bind", str(target), str(target)]
    made = set()
    for path in readonly:
        if not path.exists():
            continue
        for parent in _ancestors(path):
            if parent not in made and not str(parent).startswith(("/usr", "/etc")):
                command += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        command += ["--ro-bind", str(path), str(path)]
    command += ["--perms", "0755", "--dir", GRADER_DIR]
    for name in ("harness.py", "wire.py"):
        command += ["--ro-bind", str(HERE / name), f"{GRADER_DIR}/{name}"]
    command += ["--bind", str(scratch), SANDBOX_HOME, "--chdir", SANDBOX_HOME]
    return command


def _environment(limits: Limits) -> dict:
    env = {
        "PATH": f"{sys.prefix}/bin:/usr/bin:/bin", "HOME": SANDBOX_HOME, "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "GRADER_OUTPUT_LIMIT": str(limits.output_chars),
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):   # this machine's OpenBLAS needs them
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class Session:
    """One run of the harness: a process, its two channels and a reader thread."""

    def __init__(self, scratch: Path, log_path: Path, plan: dict, limits: Limits):
        events_read, events_write = os.pipe()
        requests_read, requests_write = os.pipe()
        user = ["setpriv", f"--reuid={limits.uid}", f"--regid={limits.uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all"]
        python = [f"{sys.prefix}/bin/python", "-B", f"{GRADER_DIR}/harness.py",
                  str(events_write), str(requests_read)]

        def apply_limits():
            for limit, value in ((resource.RLIMIT_AS, limits.memory_bytes),
                                 (resource.RLIMIT_FSIZE, limits.file_bytes),
                                 (resource.RLIMIT_NPROC, limits.processes),
                                 (resource.RLIMIT_CPU, limits.notebook_budget),
                                 (resource.RLIMIT_CORE, 0)):
                resource.setrlimit(limit, (value, value))

        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            _bwrap_command(scratch) + ["--"] + user + python,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=_environment(limits),
            pass_fds=(events_write, requests_read), preexec_fn=apply_limits,
            start_new_session=True)
        os.close(events_write)
        os.close(requests_read)
        self.events = os.fdopen(events_read, "rb", buffering=0)
        self.requests = os.fdopen(requests_write, "wb", buffering=0)
        self.inbox: queue.Queue = queue.Queue()
        self.dead_reason: str | None = None
        threading.Thread(target=self._read_events, daemon=True).start()
        self.send({"op": "plan"}, plan)

    def _read_events(self):
        while True:
            try:
                self.inbox.put(wire.receive(self.events))
            except (EOFError, OSError, wire.WireError, ValueError) as error:
                self.inbox.put(error)
                return

    def send(self, header: dict, payload=None):
        try:
            wire.send(self.requests, header, payload)
        except (OSError, ValueError) as error:
            raise SandboxDied(f"the notebook's process has exited ({error})") from None

    def next_message(self, timeout: float) -> tuple[dict, object]:
        try:
            message = self.inbox.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            self.dead_reason = f"no answer within {timeout:.0f} s (an endless loop, or a blocked process)"
            raise SandboxDied(self.dead_reason) from None
        if isinstance(message, BaseException):
            self.dead_reason = self._death_reason(message)
            raise SandboxDied(self.dead_reason)
        return message

    def _death_reason(self, error: BaseException) -> str:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return f"the notebook broke the grader's protocol ({error})"
        number = -code if code < 0 else code - 128   # bwrap reports death by signal N as 128 + N
        if number in {int(known) for known in signal.Signals}:
            name = signal.Signals(number).name
            extra = {"SIGSEGV": " (a segmentation fault)", "SIGKILL": " (killed: memory or time)",
                     "SIGXCPU": " (CPU time limit)"}.get(name, "")
            return f"the notebook's process died with {name}{extra}"
        return f"the notebook's process exited with status {code}"

    def output_tail(self, chars: int = 600) -> str:
        """The end of what the notebook printed, for a report on why it died."""
        with open(self.log_path, "rb") as log:
            log.seek(max(0, os.path.getsize(self.log_path) - chars))
            return log.read().decode("utf-8", "replace").strip()

    def close(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        for stream in (self.events, self.requests, self.log):
            try:
                stream.close()
            except OSError:
                pass


class RemoteStudent:
    """``student`` for a hidden test: each call crosses to the sandbox as data."""

    def __init__(self, session: Session, limits: Limits, handle: int | None = None,
                 keep: bool = False):
        self._session, self._limits, self._handle, self._keep = session, limits, handle, keep

    @property
    def keep(self) -> "RemoteStudent":
        """``student.keep.Encoder(...)`` returns a handle to the object, for objects that are not data."""
        return RemoteStudent(self._session, self._limits, self._handle, keep=True)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            header = {"op": "call", "name": name, "keep": self._keep}
            if self._handle is not None:
                header["handle"] = self._handle
            args = [_as_wire(value) for value in args]
            kwargs = {key: _as_wire(value) for key, value in kwargs.items()}
            try:
                self._session.send(header, (args, kwargs))
            except wire.WireError as error:
                raise RuntimeError(f"hidden test sent something that is not data: {error}") from None
            try:
                reply, value = self._session.next_message(self._limits.call_timeout + self._limits.grace)
            except SandboxDied as death:
                raise StudentError(f"{name}: {death}") from None
            if reply.get("ok") is not True:
                raise StudentError(value if isinstance(value, str) else f"{name} failed")
            if self._keep:
                if not (type(value) is dict and set(value) == {"__handle__"}):
                    raise StudentError(f"{name}: the sandbox did not return a handle")
                return RemoteStudent(self._session, self._limits, int(value["__handle__"]))
            return value
        return call


def _as_wire(value):
    if isinstance(value, RemoteStudent) and value._handle is not None:
        return {"__handle__": value._handle}
    return value


def plan_cells(cells: list[dict]) -> list[dict]:
    """The harness's plan: code cells to run and test cells to stop at, in order."""
    return [{"index": cell["index"], "kind": cell["kind"], "source": cell.get("source", ""),
             "grade_id": cell.get("grade_id")} for cell in cells]


def grade_in_sandbox(cells: list[dict], tests: HiddenTests, limits: Limits = Limits()) -> SandboxReport:
    """Run ``cells`` (dicts: index, kind 'code' or 'test', source, grade_id) and their tests.

    Every test in ``tests`` gets a verdict; a test never reached fails with the reason.
    """
    report = SandboxReport()
    started = time.monotonic()
    deadline = started + limits.notebook_budget
    skip: set[int] = set()
    plan = {"cells": plan_cells(cells), "cell_timeout": limits.cell_timeout,
            "call_timeout": limits.call_timeout}
    with tempfile.TemporaryDirectory(prefix="grade-") as work:
        scratch = Path(work) / "home"
        scratch.mkdir()
        os.chown(scratch, limits.uid, limits.uid)
        for attempt in range(limits.max_restarts + 1):
            session = Session(scratch, Path(work) / "output.log", dict(plan, skip=sorted(skip)), limits)
            try:
                finished = _drive(session, tests, limits, deadline, report, skip)
            finally:
                session.close()
            if finished or time.monotonic() >= deadline:
                break
        else:
            report.notes.append(f"Stopped after {limits.max_restarts} restarts of the notebook.")
    if time.monotonic() >= deadline:
        report.notes.append(f"The notebook used up its time budget of {limits.notebook_budget} s.")
    for grade_id in tests:
        if grade_id not in report.verdicts:
            report.verdicts[grade_id] = Verdict(False, "not reached: the notebook stopped before this test "
                                                       "(see the notes above)")
    report.seconds = time.monotonic() - started
    return report


def _drive(session: Session, tests: HiddenTests, limits: Limits, deadline: float,
           report: SandboxReport, skip: set[int]) -> bool:
    """Follow one session to its end (True) or its death (False, after noting what killed it)."""
    current_cell = None
    try:
        while True:
            wait = min(limits.cell_timeout + limits.grace, deadline - time.monotonic())
            event, _ = session.next_message(wait)
            kind = event.get("event")
            if kind == "end":
                return True
            if kind == "cell":
                current_cell = int(event["index"])
            elif kind == "cell_done":
                if event.get("error"):
                    report.cell_errors[int(event["index"])] = str(event["error"])[:500]
            elif kind == "test":
                grade_id = str(event.get("grade_id"))
                if grade_id in tests and grade_id not in report.verdicts:
                    passed, message = run_test(tests[grade_id], RemoteStudent(session, limits))
                    if session.dead_reason:   # the student's code killed or hung the sandbox
                        report.verdicts[grade_id] = Verdict(False, f"while testing: {session.dead_reason}")
                        return False
                    report.verdicts[grade_id] = Verdict(passed, message)
                session.send({"op": "done"})
            else:
                raise SandboxDied("the notebook broke the grader's protocol (unknown event)")
    except SandboxDied as death:
        reason = str(death)
        if time.monotonic() >= deadline:
            reason = "the notebook's time budget ran out"
        if current_cell is not None:
            skip.add(current_cell)
            report.cell_errors[current_cell] = f"{reason}; the grader skipped this cell and went on"
        else:
            report.notes.append(f"The notebook could not start: {reason}. {session.output_tail()}")
            return True
        return False
