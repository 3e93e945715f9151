"""Run a student's cells in a sandbox and their hidden tests here, in the grader.

Isolation is bubblewrap (Debian package ``bubblewrap``) plus a separate unprivileged
user: the harness runs as ``nobody`` in fresh network, PID, IPC and UTS namespaces
(hostname ``sandbox``), in a file system that holds only the Python install, the venv
(at ``/opt/venv``), the student package ``speechcourse`` and the corpus ``data`` (under
``/opt/course``), the harness and two size-limited tmpfs: the home folder and ``/tmp``.
The repository (``solutions``, ``speechmodels``, ``autograder``), other submissions and
the gradebook are not in it, no host path is visible in it, and nothing outside the two
tmpfs is writable. The tmpfs vanish with the sandbox, so nothing is left to clean up.

Limits: a cgroup per sandbox where the machine has one (:mod:`autograder.cgroups`: the
memory, processes and CPU of all its processes together), rlimits on each process's
address space, the uid's processes, file size and CPU time, a
timeout per cell and per call enforced both inside (an alarm) and outside (the grader
kills the sandbox), and a time budget per notebook that bounds every wait of the
grader, calls from hidden tests included. Every message is framed and every read and
write on the grader's side has a deadline; a message the grader did not ask for, in
the order the plan says, ends the session. When the sandbox dies or hangs, the grader
restarts it and skips the cell or the test that killed it, so a crash costs only what
it did not reach.
"""
from __future__ import annotations

import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cgroups, view, wire
from .hidden import HiddenTests, StudentError, run_test, shape_result

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SANDBOX_USER = 65534                   # nobody
SANDBOX_HOME = "/home/student"
GRADER_DIR = "/grader"
SANDBOX_VENV = "/opt/venv"
SANDBOX_COURSE = "/opt/course"
SANDBOX_HOSTNAME = "sandbox"
# What of the repository the sandbox sees: the student package and the corpus, nothing else.
# ``speechmodels`` (the book's models), ``solutions`` and ``autograder`` are never mounted.
MOUNTED = ("speechcourse", "data")
HARNESS_FILES = ("harness.py", "wire.py", "calls.py")


@dataclass(frozen=True)
class Limits:
    cell_timeout: int = 120            # seconds per cell
    call_timeout: int = 30             # seconds per call to a student function
    notebook_budget: int = 600         # seconds for the whole notebook, restarts included
    memory_bytes: int = 4 << 30        # address space of each process; importing torch maps about 2 GiB
    sandbox_memory_bytes: int = 9 << 29   # all its processes together (its cgroup): 4.5 GiB, so one
                                          # process meets its own cap first, as a MemoryError
    cpus: float = 1.0                  # cores' worth of CPU time the whole sandbox may use (its cgroup)
    file_bytes: int = 64 << 20         # largest file the student may write (incl. stdout)
    output_chars: int = 100_000        # printed output kept
    processes: int = 64                # processes and threads of the sandbox user (and of its cgroup)
    max_restarts: int = 4
    grace: int = 5                     # seconds the outside waits beyond an inside timeout
    home_bytes: int = 256 << 20        # the sandbox's home folder, a tmpfs
    tmp_bytes: int = 256 << 20         # its /tmp, a tmpfs
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


def _bwrap_command(limits: Limits) -> list[str]:
    """The bwrap command line: a read-only view of just what a lab needs, at neutral paths."""
    command = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--hostname", SANDBOX_HOSTNAME, "--die-with-parent", "--new-session",
               "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
               "--proc", "/proc", "--dev", "/dev",
               "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = Path("/") / name
        if target.is_symlink():
            command += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            command += ["--ro-bind", str(target), str(target)]
    made = set()

    def bind(source: Path, destination: Path):
        nonlocal command
        for parent in _ancestors(destination):
            if parent not in made and not str(parent).startswith(("/usr", "/etc")):
                command += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        command += ["--ro-bind", str(source), str(destination)]

    bind(Path(sys.base_prefix), Path(sys.base_prefix))      # the Python the venv points at
    # Everything from the repository is bound from a view (hard links under /tmp/autograder-view):
    # a bind mount shows its source's path in /proc/self/mountinfo.
    if sys.prefix != sys.base_prefix:
        bind(view.neutral(Path(sys.prefix), view.venv_without_its_path), Path(SANDBOX_VENV))
    for name in MOUNTED:
        if (REPO / name).exists():
            bind(view.neutral(REPO / name), Path(SANDBOX_COURSE) / name)
    command += ["--perms", "0755", "--dir", GRADER_DIR]
    for name in HARNESS_FILES:
        command += ["--ro-bind", str(view.neutral(HERE / name)), f"{GRADER_DIR}/{name}"]
    command += ["--perms", "0777", "--size", str(limits.home_bytes), "--tmpfs", SANDBOX_HOME,
                "--chdir", SANDBOX_HOME]
    return command


def _python() -> str:
    return f"{SANDBOX_VENV}/bin/python" if sys.prefix != sys.base_prefix else sys.executable


def _environment(limits: Limits) -> dict:
    env = {
        "PATH": f"{Path(_python()).parent}:/usr/bin:/bin", "HOME": SANDBOX_HOME, "LANG": "C.UTF-8",
        "PYTHONPATH": SANDBOX_COURSE, "SPEECHCOURSE_DATA": f"{SANDBOX_COURSE}/data",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "GRADER_OUTPUT_LIMIT": str(limits.output_chars),
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):   # this machine's OpenBLAS needs them
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def host_paths() -> list[str]:
    """Paths of the grading machine that must never reach a student's feedback.

    (The sandbox shows none of them, and calls itself ``sandbox``; this is for the grader's
    own messages.)
    """
    names = {str(REPO), str(Path(sys.prefix)), os.path.realpath(REPO), os.path.realpath(sys.prefix)}
    return sorted((name for name in names if len(name) > 4), key=len, reverse=True)


class Session:
    """One run of the harness: a process and its two channels, every wait bounded by a deadline."""

    def __init__(self, log_path: Path, plan: dict, limits: Limits, deadline: float):
        events_read, events_write = os.pipe()
        requests_read, requests_write = os.pipe()
        user = ["setpriv", f"--reuid={limits.uid}", f"--regid={limits.uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all"]
        python = [_python(), "-B", f"{GRADER_DIR}/harness.py", str(events_write), str(requests_read)]

        self.group = cgroups.SandboxGroup(limits.uid, limits.sandbox_memory_bytes, limits.processes,
                                          limits.cpus)

        def apply_limits():
            self.group.enter()        # everything the sandbox starts is in its cgroup
            for limit, value in ((resource.RLIMIT_AS, limits.memory_bytes),
                                 (resource.RLIMIT_FSIZE, limits.file_bytes),
                                 (resource.RLIMIT_NPROC, limits.processes),
                                 (resource.RLIMIT_CPU, limits.notebook_budget),
                                 (resource.RLIMIT_CORE, 0)):
                resource.setrlimit(limit, (value, value))

        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.limits, self.deadline = limits, deadline
        try:
            self.process = subprocess.Popen(
                _bwrap_command(limits) + ["--"] + user + python,
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=_environment(limits),
                pass_fds=(events_write, requests_read), preexec_fn=apply_limits,
                start_new_session=True)
        except BaseException:
            self.group.close()
            raise
        self.group.started()
        os.close(events_write)
        os.close(requests_read)
        os.set_blocking(events_read, False)      # every read and write below waits with a deadline
        os.set_blocking(requests_write, False)
        self.events = os.fdopen(events_read, "rb", buffering=0)
        self.requests = os.fdopen(requests_write, "wb", buffering=0)
        self.dead_reason: str | None = None
        self.calls = 0
        self.send({"op": "plan"}, plan, time.monotonic() + limits.cell_timeout + limits.grace)

    def _bounded(self, deadline: float) -> float:
        return min(deadline, self.deadline)

    def send(self, header: dict, payload=None, deadline: float | None = None):
        if self.dead_reason:
            raise SandboxDied(self.dead_reason)
        try:
            wire.send(self.requests, header, payload, self._bounded(deadline or self.deadline))
        except wire.WireTimeout:
            self._die("the notebook stopped reading the grader's messages (a blocked process)")
        except OSError as error:
            self._die(f"the notebook's process has exited ({error.strerror or error})")

    def receive(self, timeout: float) -> tuple[dict, object]:
        """The next message, within ``timeout`` seconds and the notebook's deadline."""
        if self.dead_reason:
            raise SandboxDied(self.dead_reason)
        deadline = self._bounded(time.monotonic() + max(timeout, 0.01))
        try:
            return wire.receive(self.events, deadline=deadline)
        except wire.WireTimeout:
            if deadline >= self.deadline:
                self._die("the notebook's time budget ran out")
            self._die(f"no answer within {timeout:.0f} s (an endless loop, or a blocked process)")
        except (EOFError, OSError, wire.WireError, ValueError) as error:
            self._die(self._death_reason(error))

    def _die(self, reason: str):
        """Mark the session dead, stop the process, and raise."""
        self.dead_reason = reason
        self.kill()
        raise SandboxDied(reason)

    def protocol_error(self, what: str):
        self._die(f"the notebook broke the grader's protocol ({what})")

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
            if name == "SIGKILL" and self.group.memory_killed():
                extra = (f" (killed: its processes together held more than the sandbox's "
                         f"{self.limits.sandbox_memory_bytes >> 20} MiB)")
            return f"the notebook's process died with {name}{extra}"
        return f"the notebook's process exited with status {code}"

    def output_tail(self, chars: int = 600) -> str:
        """The end of what the notebook printed, for a report on why it died."""
        with open(self.log_path, "rb") as log:
            log.seek(max(0, os.path.getsize(self.log_path) - chars))
            return log.read().decode("utf-8", "replace").strip()

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.group.kill()

    def close(self):
        self.kill()
        self.process.wait()
        self.group.close()
        for stream in (self.events, self.requests, self.log):
            try:
                stream.close()
            except OSError:
                pass


class RemoteStudent:
    """``student`` for a hidden test: each call crosses to the sandbox as data.

    ``student.f(...)`` returns ``f``'s result as data; ``student.keep.f(...)`` a handle to it;
    ``student.observe.f(...)`` an :class:`autograder.hidden.Observed` (the result, the
    arguments after the call, and which parts of the result are arguments);
    ``student.gradients(wrt=..., grad_output=...).f(...)`` a :class:`autograder.hidden.Gradients`
    (``backward()`` run in the sandbox). Every call waits at most ``call_timeout + grace``
    and never past the notebook's deadline; once the sandbox has died, every call fails at once.
    """

    def __init__(self, session: Session, limits: Limits, handle: int | None = None,
                 mode: str = "value", options: dict | None = None):
        self._session, self._limits, self._handle = session, limits, handle
        self._mode, self._options = mode, options or {}

    def _with(self, mode: str, options: dict | None = None) -> "RemoteStudent":
        return RemoteStudent(self._session, self._limits, self._handle, mode, options)

    @property
    def keep(self) -> "RemoteStudent":
        """``student.keep.Encoder(...)`` returns a handle to the object, for objects that are not data."""
        return self._with("keep")

    @property
    def observe(self) -> "RemoteStudent":
        return self._with("observe")

    def gradients(self, wrt=(), grad_output=None) -> "RemoteStudent":
        return self._with("gradients", {"wrt": list(wrt), "grad_output": grad_output})

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            session = self._session
            session.calls += 1      # the id is random: a counter would tell the sandbox how far a test got
            header = {"op": "call", "id": secrets.randbits(48), "name": name, "keep": self._mode == "keep",
                      "mode": "value" if self._mode == "keep" else self._mode}
            if self._handle is not None:
                header["handle"] = self._handle
            args = [_as_wire(value) for value in args]
            kwargs = {key: _as_wire(value) for key, value in kwargs.items()}
            deadline = time.monotonic() + self._limits.call_timeout + self._limits.grace
            try:
                session.send(header, (args, kwargs, self._options), deadline)
            except wire.WireError as error:   # the test's own mistake, not the student's
                raise RuntimeError(f"hidden test sent something that is not data: {error}") from None
            except SandboxDied as death:
                raise StudentError(f"{name}: {death}") from None
            try:
                reply, value = session.receive(deadline - time.monotonic())
                if set(reply) != {"reply", "ok"} or reply["reply"] != header["id"]:
                    session.protocol_error("a reply to a call it was not asked")
            except SandboxDied as death:
                raise StudentError(f"{name}: {death}") from None
            if reply.get("ok") is not True:
                raise StudentError(value if isinstance(value, str) else f"{name} failed")
            if self._mode == "keep":
                if not (type(value) is dict and set(value) == {"__handle__"} and type(value["__handle__"]) is int):
                    raise StudentError(f"{name}: the sandbox did not return a handle")
                return RemoteStudent(session, self._limits, int(value["__handle__"]))
            return shape_result(name, self._mode, value, (args, kwargs, self._options))   # judged here
        return call


def _as_wire(value):
    if isinstance(value, RemoteStudent) and value._handle is not None:
        return {"__handle__": value._handle}
    return value


def plan_cells(cells: list[dict]) -> list[dict]:
    """The harness's plan: code cells to run and test cells to stop at, in order.

    A test cell is only a place to stop: the sandbox is never told which test it is (no
    grade_id, no source), so student code cannot read the name of the running test anywhere.
    """
    return [{"index": cell["index"], "kind": "test"} if cell["kind"] == "test" else
            {"index": cell["index"], "kind": cell["kind"], "source": cell.get("source", "")}
            for cell in cells]


def grade_in_sandbox(cells: list[dict], tests: HiddenTests, limits: Limits = Limits(),
                     language: str = "en") -> SandboxReport:
    """Run ``cells`` (dicts: index, kind 'code' or 'test', source, grade_id) and their tests,
    whose messages are in ``language``, the edition the submission came from ("en" or "ko").

    Every test in ``tests`` gets a verdict; a test never reached fails with the reason.
    """
    report = SandboxReport()
    started = time.monotonic()
    deadline = started + limits.notebook_budget
    skip: set[int] = set()
    plan = {"cells": plan_cells(cells), "cell_timeout": limits.cell_timeout,
            "call_timeout": limits.call_timeout}
    with tempfile.TemporaryDirectory(prefix="grade-", ignore_cleanup_errors=True) as work:
        for attempt in range(limits.max_restarts + 1):
            session = None
            try:
                session = Session(Path(work) / "output.log", dict(plan, skip=sorted(skip)), limits, deadline)
                finished = _drive(session, cells, tests, limits, report, skip, language)
            except SandboxDied as death:      # it could not even take its plan
                report.notes.append(f"The notebook could not start: {death}.")
                finished = True
            finally:
                if session is not None:
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


def _expected_events(cells: list[dict], skip: set[int]):
    """The events the harness must send, in order: (event, cell) pairs."""
    for cell in cells:
        if cell["index"] in skip:
            continue
        yield "cell", cell
        yield ("test" if cell["kind"] == "test" else "cell_done"), cell
    yield "end", None


def _drive(session: Session, cells: list[dict], tests: HiddenTests, limits: Limits,
           report: SandboxReport, skip: set[int], language: str = "en") -> bool:
    """Follow one session to its end (True) or its death (False, after noting what killed it).

    The harness must send exactly the events the plan implies, in order; anything else
    (a forged, repeated or unknown event) ends the session as a protocol error.
    """
    current_cell = None
    try:
        for expected, cell in _expected_events(cells, skip):
            event, _ = session.receive(limits.cell_timeout + limits.grace)
            kind = event.get("event")
            if kind != expected:
                session.protocol_error(f"sent {str(kind)[:40]!r} where the grader expected {expected!r}")
            if kind == "end":
                return True
            if event.get("index", cell["index"]) != cell["index"]:
                session.protocol_error("an event for another cell")
            if kind == "cell":
                current_cell = cell["index"]
            elif kind == "cell_done":
                if event.get("error"):
                    report.cell_errors[cell["index"]] = str(event["error"])[:500]
            elif kind == "test":
                grade_id = cell["grade_id"]     # known here only: the sandbox was told no name
                if grade_id in tests and grade_id not in report.verdicts:
                    passed, message = run_test(tests[grade_id], RemoteStudent(session, limits), language)
                    if session.dead_reason:   # the student's code killed or hung the sandbox
                        report.verdicts[grade_id] = Verdict(False, f"while testing: {session.dead_reason}")
                        raise SandboxDied(session.dead_reason)
                    report.verdicts[grade_id] = Verdict(passed, message)
                session.send({"op": "done"}, None, time.monotonic() + limits.call_timeout)
        return True
    except SandboxDied as death:
        reason = str(death)
        if time.monotonic() >= session.deadline:
            reason = "the notebook's time budget ran out"
        if current_cell is not None:
            skip.add(current_cell)
            report.cell_errors[current_cell] = f"{reason}; the grader skipped this cell and went on"
        else:
            report.notes.append(f"The notebook could not start: {reason}. {session.output_tail()}")
            return True
        return False
