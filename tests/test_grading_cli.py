"""The command line answers bad input with one sentence and exit status 2, never a traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

from autograder.sandbox import REPO
from conftest import LAB


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args, says", [
    (("grade", "/no/such/folder", "out"), "is not a folder of submissions"),
    (("grade", "{empty}", "out"), "holds no student folders"),
    (("grade", "{empty}", "out", "--lab", "ch99_nothing"), "unknown lab ch99_nothing"),
    (("grade", "{empty}", "out", "--jobs", "-1"), "--jobs must be a positive number"),
    (("export", "{empty}"), "holds no gradebook.db"),
    (("export", "{empty}", "--format", "excel"), "invalid choice: 'excel'"),
    (("fill", "/no/such.ipynb", "-o", "x.ipynb"), "No such file"),
    (("fill", f"labs/{LAB}/{LAB}.ipynb", "{answers}", "-o", "x.ipynb"), "no answer cell named not_a_cell"),
])
def test_bad_input_gets_a_sentence(tmp_path, args, says):
    (tmp_path / "empty").mkdir()
    (tmp_path / "answers.py").write_text("# %% not_a_cell\nx = 1\n")
    if "{empty}" in args and "--lab" in args:
        (tmp_path / "empty" / "alice").mkdir()
    args = [arg.format(empty=tmp_path / "empty", answers=tmp_path / "answers.py") for arg in args]
    done = _run(*args, cwd=REPO if args[0] == "fill" else tmp_path)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr


POOL_THAT_LOSES_ITS_PARENT = """
import multiprocessing, sys, time
from concurrent.futures import ProcessPoolExecutor
from autograder.grade import _die_with_parent

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent)
    print(pool.submit(__import__("os").getpid).result(), flush=True)   # the worker's pid
    pool.submit(time.sleep, 120)
    time.sleep(120)
"""


def test_pool_workers_die_with_the_grading_process(tmp_path):
    """A grading run killed outright (SIGKILL: no cleanup runs) leaves no worker behind."""
    import os
    import signal
    import time

    script = tmp_path / "pool.py"
    script.write_text(POOL_THAT_LOSES_ITS_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)                                        # alive while its parent is
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError(f"pool worker {worker} outlived its killed parent by 10 s")
