"""Limits per sandbox (issue 19): a cgroup bounds the memory, processes and CPU of all of a
sandbox's processes together where the machine has one; the rlimits fallback is stated.
Also the sandbox's mounts, which name no host path, and the fixed folder of uid locks.

Fast: each test starts plain processes in a group, no grading. The end-to-end attacks
(four processes, memfds) are in tests/fixtures/attacks/ and the class run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from autograder import cgroups
from autograder.sandbox import Limits

WITH_CGROUPS = cgroups.mode() != "rlimits"
needs_cgroups = pytest.mark.skipif(not WITH_CGROUPS, reason="no writable cgroup here: the rlimits fallback")


def _run_in(group: cgroups.SandboxGroup, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    process = subprocess.Popen([sys.executable, "-c", code], preexec_fn=group.enter,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    group.started()
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_the_mode_is_stated_and_the_fallback_can_be_forced():
    assert cgroups.mode() in ("cgroup2", "cgroup1", "rlimits")
    forced = subprocess.run([sys.executable, "-c", "from autograder import cgroups; print(cgroups.mode())"],
                            env=dict(os.environ, AUTOGRADER_CGROUPS="rlimits"), capture_output=True, text=True)
    assert forced.stdout.strip() == "rlimits", forced.stderr
    group = cgroups.SandboxGroup(1_700_250, 1 << 30, 8, 1.0) if not WITH_CGROUPS else None
    if group is not None:                    # the fallback: a group that does nothing
        assert group.folders == [] and group.pids() == [] and not group.memory_killed()
        group.close()


def test_the_sandbox_cap_is_above_each_process_cap():
    """One process meets its own RLIMIT_AS first (a MemoryError it can survive), never the group's."""
    limits = Limits()
    assert limits.memory_bytes < limits.sandbox_memory_bytes < 2 * limits.memory_bytes


@needs_cgroups
def test_processes_together_cannot_exceed_the_groups_memory():
    """Three processes of 100 MiB each fit under no 200 MiB group: the kernel kills one."""
    group = cgroups.SandboxGroup(1_700_250, 200 << 20, 16, 1.0)
    try:
        done = _run_in(group, """
import os, time
pids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        block = bytearray(100 << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(3)
        os._exit(0)
    pids.append(pid)
print(sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids))
""")
        assert "-9" in done.stdout, (done.stdout, done.stderr)    # at least one was killed
        assert group.memory_killed()
    finally:
        group.close()
    assert group.folders == []                                   # the group is gone with the sandbox


@needs_cgroups
def test_the_group_caps_processes_and_is_removed_with_them():
    group = cgroups.SandboxGroup(1_700_250, 1 << 30, 4, 1.0)
    try:
        done = _run_in(group, """
import os, time
made = 0
try:
    for _ in range(100):
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1), os.dup2(null, 2)       # the test reads our parent's output to its end
            time.sleep(30)
            os._exit(0)
        made += 1
except OSError:
    pass
print(made)
""")
        assert int(done.stdout) <= 4 + cgroups.EXTRA_PROCESSES, done.stdout
        assert group.pids()                                      # the sleepers are still there
    finally:
        group.close()
    assert group.folders == []


@needs_cgroups
def test_the_group_caps_cpu_whatever_the_number_of_processes():
    """Four spinning processes of a group given half a core get about half a core, not four."""
    group = cgroups.SandboxGroup(1_700_250, 1 << 30, 16, 0.5)
    try:
        started = time.monotonic()
        done = _run_in(group, """
import os, time
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        end = time.monotonic() + 2
        while time.monotonic() < end:
            pass
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
times = os.times()
print(times.children_user + times.children_system)
""")
        wall = time.monotonic() - started
        assert float(done.stdout) <= 0.5 * wall + 0.5, (done.stdout, wall)
    finally:
        group.close()


# ---- the uid locks: one fixed place for every grader on the machine (issue 19)

HOLD_ONE = "from autograder.uids import UID_LOCKS, sandbox_uid\nwith sandbox_uid() as uid:\n    print(UID_LOCKS, uid)\n"


def test_graders_with_different_tmpdirs_never_hold_the_same_uid(tmp_path):
    from autograder.job import UID_LOCKS, sandbox_uid     # job.py holds the uid of each task
    assert str(UID_LOCKS) == "/tmp/autograder-uids"          # what the README says
    with sandbox_uid() as held:
        other = subprocess.run([sys.executable, "-c", HOLD_ONE], env=dict(os.environ, TMPDIR=str(tmp_path)),
                               capture_output=True, text=True)
    folder, uid = other.stdout.split()
    assert folder == str(UID_LOCKS) and int(uid) != held, other.stderr


def test_a_lock_folder_that_is_a_link_or_anothers_is_refused(tmp_path, monkeypatch):
    from autograder import uids as job
    (tmp_path / "planted").mkdir()
    monkeypatch.setattr(job, "UID_LOCKS", tmp_path / "link")
    (tmp_path / "link").symlink_to(tmp_path / "planted", target_is_directory=True)
    with pytest.raises(RuntimeError, match="only it can write"):
        with job.sandbox_uid():
            pass
    monkeypatch.setattr(job, "UID_LOCKS", tmp_path / "open")
    (tmp_path / "open").mkdir(mode=0o777)
    os.chmod(tmp_path / "open", 0o777)
    with pytest.raises(RuntimeError, match="only it can write"):
        with job.sandbox_uid():
            pass


# ---- no mount of the sandbox names the repository (issue 19)

READ_WHAT_THE_SANDBOX_SHOWS = """
import os
def shown():
    texts = {}
    for path in ("/proc/self/mountinfo", "/proc/self/mounts", "/proc/self/cgroup", "/opt/venv/pyvenv.cfg"):
        with open(path) as handle:
            texts[path] = handle.read()
    texts["/opt/venv/bin"] = " ".join(sorted(os.listdir("/opt/venv/bin")))
    site = [folder for folder in os.listdir("/opt/venv/lib") if folder.startswith("python")][0]
    texts["site-packages"] = " ".join(sorted(os.listdir(f"/opt/venv/lib/{site}/site-packages")))
    return texts
"""


@pytest.mark.skipif(not __import__("autograder.sandbox", fromlist=["x"]).sandbox_available(),
                    reason="needs bubblewrap")
def test_the_sandbox_shows_no_path_of_the_repository():
    from autograder.hidden import HiddenTests
    from autograder.sandbox import REPO, grade_in_sandbox
    seen = {}

    def look(student):
        seen.update(student.shown())

    cells = [{"index": 0, "kind": "code", "source": READ_WHAT_THE_SANDBOX_SHOWS},
             {"index": 1, "kind": "test", "grade_id": "test_look"}]
    report = grade_in_sandbox(cells, HiddenTests(test_look=look), Limits(cell_timeout=30, notebook_budget=60))
    assert report.verdicts["test_look"].passed, report.verdicts
    for name, text in seen.items():
        assert str(REPO) not in text and os.path.realpath(REPO) not in text, (name, text)
    assert "/opt/course/speechcourse" in seen["/proc/self/mountinfo"]
    assert all(line.endswith(":/") for line in seen["/proc/self/cgroup"].split())   # its own cgroup is its root
    assert "__editable__" not in seen["site-packages"]
    assert REPO.joinpath(".venv", "pyvenv.cfg").is_file() is False or "command" in \
        REPO.joinpath(".venv", "pyvenv.cfg").read_text()                # the venv itself is untouched
