"""Plain nbgrader against this course's grader, on the attack catalogue. Prints a table.

    .venv/bin/python benchmarks/grader_attacks.py [--repeat 3]

For each attack in tests/fixtures/attacks/ it builds a Lab 1 submission (reference
answers plus the attack) and grades it twice: with stock nbgrader 0.9.6 (hidden tests
run in the student's kernel, source files copied next to the notebook, as nbgrader does
by default) and with `python -m autograder grade`. Attacks that would harm the host when
run unsandboxed (fork and memory bombs, writes into the repository) are not given to
plain nbgrader. It then times the solution notebook under both, which is the overhead
the sandbox adds.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from autograder.course import SOLUTIONS  # noqa: E402
from autograder.grade import grade_folder, plan_lab  # noqa: E402
from autograder.sandbox import Limits  # noqa: E402
from conftest import FIXTURES, lab_submission  # noqa: E402

LAB = "ch01_vanilla_rnn"
# Unsandboxed, these would fork-bomb or exhaust the host, write into the repository, hang the
# grader or pour 200 MB into its terminal, so plain nbgrader is not given them.
UNSAFE_UNSANDBOXED = {"fault_fork_bomb", "fault_memory_bomb", "canary_write_outside", "fault_stubborn_loop",
                      "fault_output_flood"}


def plain_nbgrader(submissions: dict[str, nbformat.NotebookNode], work: Path) -> dict[str, tuple[float, float]]:
    """student -> (score, seconds) under stock nbgrader."""
    course = work / "plain"
    shutil.copytree(SOLUTIONS / LAB, course / "source" / LAB,
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Execute.timeout = 30
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    assert api.generate_assignment(LAB)["success"]
    scores = {}
    for student, notebook in submissions.items():
        path = course / "submitted" / student / LAB / f"{LAB}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(notebook, path)
        started = time.perf_counter()
        api.autograde(LAB, student, force=True, create=True)
        seconds = time.perf_counter() - started
        with Gradebook(config.CourseDirectory.db_url) as gradebook:
            scores[student] = (gradebook.find_submission(LAB, student).code_score, seconds)
    return scores


def trusted(submissions: dict[str, nbformat.NotebookNode], work: Path) -> tuple[dict[str, float], float]:
    """(student -> score, seconds per notebook) under this course's grader.

    One grading run over all of them; the per-lab set-up (one nbgrader generate_assignment)
    is timed on its own and left out of the per-notebook figure.
    """
    for student, notebook in submissions.items():
        path = work / "trusted" / "submissions" / student / LAB / f"{LAB}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(notebook, path)
    started = time.perf_counter()
    plan_lab(LAB, Path(tempfile.mkdtemp(dir=work)))
    setup = time.perf_counter() - started
    started = time.perf_counter()
    results = grade_folder(work / "trusted" / "submissions", work / "trusted" / "out", [LAB], progress=False,
                           limits=Limits(cell_timeout=30, call_timeout=10))
    per_notebook = (time.perf_counter() - started - setup) / len(results)
    return {result.student_id: result.score for result in results}, per_notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timings of the solution notebook")
    args = parser.parse_args()
    attacks = {path.stem: lab_submission(LAB, path) for path in sorted((FIXTURES / "attacks").glob("*.py"))}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        plain = plain_nbgrader({name: nb for name, nb in attacks.items() if name not in UNSAFE_UNSANDBOXED},
                               work / "attacks")
        ours, _ = trusted(attacks, work / "attacks")
        print(f"{'attack':28s} {'plain nbgrader':>15s} {'this grader':>12s}")
        for name in attacks:
            before = f"{plain[name][0]:g}/20" if name in plain else "not run"
            print(f"{name:28s} {before:>15s} {ours[name]:>10g}/20")
        solution = {f"solution-{i}": lab_submission(LAB) for i in range(args.repeat)}
        plain_times = [seconds for _, seconds in plain_nbgrader(solution, work / "timing").values()]
        _, ours_per_notebook = trusted(solution, work / "timing")
    print(f"\nseconds to grade the solution notebook ({args.repeat} copies):")
    print(f"  plain nbgrader autograde (kernel, no sandbox), median: {statistics.median(plain_times):.2f}")
    print(f"  this grader (intake, sandbox, trusted tests, autograde and feedback), mean: {ours_per_notebook:.2f}")


if __name__ == "__main__":
    main()
