"""Limits per sandbox, not per process: one cgroup for each running sandbox, where the machine has one.

A sandbox is many processes (the harness, whatever the student forks, bubblewrap's own).
rlimits bound each process (``RLIMIT_AS``) and the uid's process count (``RLIMIT_NPROC``),
so alone they bound a sandbox's memory only by count x cap (64 x 4 GiB). A cgroup bounds
the sum: the memory all of a sandbox's processes hold together (``Limits.sandbox_memory_bytes``,
its tmpfs pages and memfds included, no swap), its processes and threads
(``Limits.processes`` + bubblewrap's own), and its CPU (``Limits.cpus`` cores' worth of time
per period, so fairness between sandboxes does not rest on the kernel's autogroup, which
systemd and Kubernetes turn off).

Which kind the machine gives is found once per process (:func:`mode`), in this order:

- ``cgroup2``: the unified hierarchy with the ``memory`` and ``pids`` controllers
  (``cpu`` too where it is there), at its root (the only cgroup with processes that may
  hand controllers to its children).
- ``cgroup1``: the legacy ``memory`` and ``pids`` hierarchies (``cpu`` where mounted), in
  the grader's own cgroup of each.

Each sandbox's group sits directly beside the grader's processes, with the CPU weight of one
ordinary process: a sandbox competes for CPU as one process does, however many it starts,
and never gets more than its cap. (Under a shared parent, every sandbox together would
weigh as one process, and starve on a busy machine.) Groups are named
``autograder-sandbox-<uid>-<pid>-<n>``; those of grading processes that died are removed.
- ``rlimits``: neither can be written (not root, a container without a delegated cgroup).
  Then only the per-process limits hold: the sum is bounded by ``processes x memory_bytes``.

The grader must be root for either cgroup kind (it is anyway: the sandbox switches uid).
``AUTOGRADER_CGROUPS=rlimits`` forces the fallback (the tests use it to check that path).
"""
from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "autograder-sandbox-"
EXTRA_PROCESSES = 8          # bubblewrap's own processes, counted by the pids controller
CPU_PERIOD_US = 100_000

_mode: tuple[str, dict[str, Path]] | None = None
_counter = itertools.count()


def _write(path: Path, text: str) -> None:
    handle = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(handle, text.encode())
    finally:
        os.close(handle)


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for the unified hierarchy) -> this process's cgroup path."""
    found = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                found[controller] = parts[2]
    return found


def _unified_root() -> Path | None:
    for candidate in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        if (candidate / "cgroup.controllers").is_file():
            return candidate
    return None


def _enable(folder: Path, controllers: list[str]) -> None:
    enabled = (folder / "cgroup.subtree_control").read_text().split()
    missing = [name for name in controllers if name not in enabled]
    if missing:
        _write(folder / "cgroup.subtree_control", " ".join(f"+{name}" for name in missing))


def _try_cgroup2() -> dict[str, Path] | None:
    root = _unified_root()
    if root is None:
        return None
    available = (root / "cgroup.controllers").read_text().split()
    if not {"memory", "pids"} <= set(available):
        return None
    controllers = [name for name in ("memory", "pids", "cpu") if name in available]
    try:
        _enable(root, controllers)
    except OSError:
        return None
    return {"": root} if _probe(root) else None


def _probe(group: Path) -> bool:
    """Whether a sandbox's group can be made (and removed) under ``group``."""
    _remove_stale(group)
    probe = group / f"{PREFIX}probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


def _try_cgroup1() -> dict[str, Path] | None:
    own = _own_cgroups()
    groups = {}
    for controller in ("memory", "pids", "cpu"):
        mount = CGROUP_ROOT / controller
        if controller not in own or not (mount / "cgroup.procs").is_file():
            continue
        group = mount / own[controller].lstrip("/")
        if _probe(group):
            groups[controller] = group
    return groups if {"memory", "pids"} <= set(groups) else None


def _remove_stale(parent: Path) -> None:
    """Groups left by grading processes that died (a group with processes cannot be removed)."""
    try:
        entries = [entry for entry in os.scandir(parent) if entry.name.startswith(PREFIX)]
    except OSError:
        return
    for entry in entries:
        parts = entry.name[len(PREFIX):].split("-")
        if len(parts) == 3 and parts[1].isdigit():
            try:
                os.kill(int(parts[1]), 0)
                continue                      # its grading process is alive
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        try:
            os.rmdir(entry.path)
        except OSError:
            pass


def mode() -> str:
    """``cgroup2``, ``cgroup1`` or ``rlimits``: what bounds a whole sandbox on this machine."""
    return _detect()[0]


def _detect() -> tuple[str, dict[str, Path]]:
    global _mode
    if _mode is None:
        forced = os.environ.get("AUTOGRADER_CGROUPS", "")
        found = None if forced == "rlimits" else _try_cgroup2()
        if found:
            _mode = ("cgroup2", found)
        else:
            found = None if forced in ("rlimits", "cgroup2") else _try_cgroup1()
            _mode = ("cgroup1", found) if found else ("rlimits", {})
    return _mode


class SandboxGroup:
    """The cgroup(s) of one sandbox, made before it starts and removed after it is killed.

    :meth:`enter` runs in the sandbox's first process, before ``exec``: everything it starts
    inherits the group. With ``mode == "rlimits"`` every method does nothing.
    """

    def __init__(self, uid: int, memory_bytes: int, processes: int, cpus: float):
        self.mode, parents = _detect()
        self.memory_bytes = memory_bytes
        self.folders: list[Path] = []
        self._enter_fds: list[int] = []
        self.failed: str | None = None       # why this sandbox got no group, on a machine with cgroups
        if self.mode == "rlimits":
            return
        name = f"{PREFIX}{uid}-{os.getpid()}-{next(_counter)}"
        try:
            if self.mode == "cgroup2":
                folder = parents[""] / name
                folder.mkdir()
                self.folders.append(folder)
                _write(folder / "memory.max", str(memory_bytes))
                if (folder / "memory.swap.max").exists():
                    _write(folder / "memory.swap.max", "0")
                _write(folder / "pids.max", str(processes + EXTRA_PROCESSES))
                if (folder / "cpu.weight").exists():
                    _write(folder / "cpu.weight", "100")          # one ordinary process's weight
                if cpus and (folder / "cpu.max").exists():
                    _write(folder / "cpu.max", f"{int(cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
            else:
                for controller, parent in parents.items():
                    folder = parent / name
                    folder.mkdir()
                    self.folders.append(folder)
                    if controller == "memory":
                        _write(folder / "memory.limit_in_bytes", str(memory_bytes))
                        if (folder / "memory.memsw.limit_in_bytes").exists():   # no swap either
                            try:
                                _write(folder / "memory.memsw.limit_in_bytes", str(memory_bytes))
                            except OSError:
                                pass
                    elif controller == "pids":
                        _write(folder / "pids.max", str(processes + EXTRA_PROCESSES))
                    elif controller == "cpu":
                        _write(folder / "cpu.shares", "1024")         # one ordinary process's weight
                    if controller == "cpu" and cpus:
                        _write(folder / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                        _write(folder / "cpu.cfs_quota_us", str(int(cpus * CPU_PERIOD_US)))
            self._enter_fds = [os.open(folder / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
                               for folder in self.folders]
        except OSError as error:   # the group could not be made: this sandbox has rlimits only
            self.close()
            self.mode, self.folders, self.failed = "rlimits", [], f"{type(error).__name__}: {error}"

    def enter(self) -> None:
        """In the child, before ``exec``: move this process into the sandbox's group ("0" is itself)."""
        for handle in self._enter_fds:
            os.write(handle, b"0")

    def started(self) -> None:
        """In the parent, once the child runs: the group's files need no longer be open here."""
        for handle in self._enter_fds:
            os.close(handle)
        self._enter_fds = []

    def memory_killed(self) -> bool:
        """Whether the kernel killed a process of this sandbox for its memory limit."""
        for folder in self.folders:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    lines = (folder / name).read_text().splitlines()
                except OSError:
                    continue
                for line in lines:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                        return True
        return False

    def pids(self) -> list[int]:
        found = set()
        for folder in self.folders:
            try:
                found.update(int(line) for line in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL every process of the sandbox, wherever it moved in its namespaces."""
        if not self.folders:
            return
        if self.mode == "cgroup2" and (self.folders[0] / "cgroup.kill").exists():
            try:
                _write(self.folders[0] / "cgroup.kill", "1")
                return
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self, wait: float = 5.0) -> None:
        """Kill what is left and remove the group (a group with processes cannot be removed)."""
        self.started()
        deadline = time.monotonic() + wait
        while self.folders:
            self.kill()
            for folder in list(self.folders):
                try:
                    folder.rmdir()
                    self.folders.remove(folder)
                except FileNotFoundError:
                    self.folders.remove(folder)
                except OSError:
                    pass
            if not self.folders or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
