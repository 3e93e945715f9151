"""Grading a class four ways: stock nbgrader, this grader with 1 and 2 jobs, and on Dask. Prints a table.

    .venv/bin/python benchmarks/grading_throughput.py [--lab1 14] [--lab2 10] [--skip-stock]

The class (24 submissions by default) mixes Lab 1 and Lab 2: reference answers, untouched
(blank) labs, realistic mistakes from tests/fixtures/<lab>/ and, for Lab 1, attacks from
tests/fixtures/attacks/ that are safe to run unsandboxed (plain nbgrader gets the same
class, so no fork bombs). It is graded, one whole run each:

1. stock ``nbgrader autograde``, one notebook after another (hidden tests in the student's
   kernel, every cell run, Lab 2's training included: plain nbgrader has no skip tag);
2. ``grade_folder(..., jobs=1)``; 3. ``jobs=2``; 4. a 2-worker ``distributed.LocalCluster``
   (started before the clock starts).

Each of 2-4 grades into a fresh OUT, so nothing is resumed. Prints seconds per notebook,
each mode's speed-up over stock nbgrader, and the targets' ratios. On a shared machine,
say so next to the numbers: other work on the same cores changes them.
"""
from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from autograder.course import SOLUTIONS, student_notebook  # noqa: E402
from autograder.grade import grade_folder  # noqa: E402
from autograder.sandbox import Limits  # noqa: E402
from conftest import FIXTURES, lab_submission  # noqa: E402

LAB1, LAB2 = "ch01_vanilla_rnn", "ch02_seq2seq"
SAFE_ATTACKS = ["patch_numpy_testing", "lying_object", "print_fake_results", "swallow_exceptions",
                "patch_builtins_and_math", "read_hidden_files"]
LIMITS = Limits(cell_timeout=120, call_timeout=30, notebook_budget=600)


def make_class(lab1: int, lab2: int) -> dict[tuple[str, str], nbformat.NotebookNode]:
    """(student, lab) -> notebook: a third right, a sixth blank, the rest mistakes and attacks."""
    submissions = {}
    for lab, count in ((LAB1, lab1), (LAB2, lab2)):
        wrong = [lab_submission(lab, path) for path in sorted((FIXTURES / lab).glob("*.py"))
                 if not path.stem.startswith("ok_")]
        attacks = [lab_submission(lab, FIXTURES / "attacks" / f"{name}.py") for name in SAFE_ATTACKS] if lab == LAB1 else []
        blank = nbformat.read(student_notebook(lab), as_version=4)
        right, n_blank = max(1, count // 3), max(1, count // 6)
        others = list(itertools.islice(itertools.cycle(attacks + wrong if attacks else wrong), count - right - n_blank))
        kinds = [lab_submission(lab)] * right + [blank] * n_blank + others
        for index, notebook in enumerate(kinds):
            submissions[(f"{lab[:4]}-student{index:02d}", lab)] = notebook
    return submissions


def write_folder(submissions, root: Path) -> Path:
    for (student, lab), notebook in submissions.items():
        path = root / student / lab / f"{lab}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, path)
    return root


def stock_nbgrader(submissions, work: Path) -> float:
    """Seconds for plain ``nbgrader autograde`` over the class, one notebook at a time."""
    course = work / "stock"
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Execute.timeout = LIMITS.cell_timeout * 3   # Lab 2's given training cells run in full here
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    for lab in {lab for _, lab in submissions}:
        shutil.copytree(SOLUTIONS / lab, course / "source" / lab, ignore=shutil.ignore_patterns("__pycache__"))
        assert api.generate_assignment(lab)["success"], lab
    for (student, lab), notebook in submissions.items():
        path = course / "submitted" / student / lab / f"{lab}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(notebook, path)
    started = time.perf_counter()
    for student, lab in submissions:
        api.autograde(lab, student, force=True, create=True)
    return time.perf_counter() - started


def ours(folder: Path, out: Path, **how) -> float:
    started = time.perf_counter()
    results = grade_folder(folder, out, [LAB1, LAB2], progress=False, limits=LIMITS, **how)
    seconds = time.perf_counter() - started
    errors = [r for r in results if r.status == "grader error"]
    assert not errors, [(r.student_id, r.notes) for r in errors]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab1", type=int, default=14, help="Lab 1 submissions (default 14)")
    parser.add_argument("--lab2", type=int, default=10, help="Lab 2 submissions (default 10)")
    parser.add_argument("--skip-stock", action="store_true", help="leave out stock nbgrader (the slowest)")
    args = parser.parse_args()
    submissions = make_class(args.lab1, args.lab2)
    count = len(submissions)
    with tempfile.TemporaryDirectory(prefix="throughput-") as scratch:
        work = Path(scratch)
        folder = write_folder(submissions, work / "submissions")
        load = os.getloadavg()[0]
        times = {}

        def timed(mode, run):
            times[mode] = run()
            print(f"{mode}: {times[mode]:.1f} s", flush=True)   # as it happens: the whole run is long

        if not args.skip_stock:
            timed("stock nbgrader, sequential", lambda: stock_nbgrader(submissions, work))
        timed("this grader, --jobs 1", lambda: ours(folder, work / "out-1", jobs=1))
        timed("this grader, --jobs 2", lambda: ours(folder, work / "out-2", jobs=2))
        from distributed import LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            timed("Dask LocalCluster, 2 workers",
                  lambda: ours(folder, work / "out-dask", scheduler=cluster.scheduler_address))
    stock = times.get("stock nbgrader, sequential")
    print(f"class: {count} notebooks ({args.lab1} of {LAB1}, {args.lab2} of {LAB2}); "
          f"{os.cpu_count()} cores; load average {load:.1f} at the start")
    print(f"{'mode':32s} {'seconds':>8s} {'s/notebook':>10s} {'vs stock':>9s}")
    for mode, seconds in times.items():
        ratio = f"{stock / seconds:8.2f}x" if stock else "-"
        print(f"{mode:32s} {seconds:8.1f} {seconds / count:10.2f} {ratio:>9s}")
    one, two, dask = (times["this grader, --jobs 1"], times["this grader, --jobs 2"],
                      times["Dask LocalCluster, 2 workers"])
    print(f"\n--jobs 2 vs --jobs 1: {one / two:.2f}x (target >= 1.7)")
    if stock:
        print(f"--jobs 2 vs stock nbgrader: {stock / two:.2f}x (target >= 2.5)")
    print(f"Dask vs --jobs 2: {dask / two - 1:+.0%} time (target within 15%)")


if __name__ == "__main__":
    main()
