"""The course's step in nbgrader's autograde pipeline.

``TrustedExecute`` takes the place of nbgrader's ``Execute``. It runs the student's
cells in the sandbox (:mod:`autograder.sandbox`) and, at each test cell, the hidden test
of that cell's ``grade_id``. It then writes each test cell's output: nothing but a line
saying it passed, or an error carrying the hidden test's message. nbgrader's own
``SaveAutoGrades`` turns those outputs into points exactly as it always does, so the
gradebook, the formgrader and the feedback all work unchanged; the difference is that
the outputs were written here, by the grader, and not by the student's kernel.
"""
from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_markdown_cell, new_output
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Int, Unicode

from .hidden import load_hidden_tests
from .sandbox import Limits, Verdict, grade_in_sandbox
from .skipping import SKIPPED_NOTE, should_skip, skipped_sources

NOTES_KEY = "autograder"   # notebook metadata the intake fills: {"notes": [...]}


def _failure(message: str):
    return new_output("error", ename="TestFailed", evalue=message,
                      traceback=[f"TestFailed: {message}"])


class TrustedExecute(NbGraderPreprocessor):
    """Grade test cells from hidden tests run outside the student's kernel."""

    solutions_directory = Unicode(help="folder holding <lab>/hidden_tests.py").tag(config=True)
    cell_timeout = Int(Limits.cell_timeout, help="seconds per cell").tag(config=True)
    call_timeout = Int(Limits.call_timeout, help="seconds per call to a student function").tag(config=True)
    notebook_budget = Int(Limits.notebook_budget, help="seconds per notebook").tag(config=True)
    sandbox_uid = Int(Limits.uid, help="the sandbox's unprivileged uid (one per parallel job)").tag(config=True)

    def preprocess(self, nb, resources):
        lab = resources["nbgrader"]["assignment"]
        tests = load_hidden_tests(Path(self.solutions_directory) / lab)
        given = skipped_sources(Path(self.solutions_directory) / lab / f"{lab}.ipynb")   # skip-when-grading
        skipped = {index for index, cell in enumerate(nb.cells) if should_skip(cell, given)}
        cells = []
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or index in skipped:
                continue
            if utils.is_grade(cell) and not utils.is_solution(cell):
                cells.append({"index": index, "kind": "test", "grade_id": cell.metadata.nbgrader["grade_id"]})
            else:
                cells.append({"index": index, "kind": "code", "source": cell.source})
        limits = Limits(cell_timeout=self.cell_timeout, call_timeout=self.call_timeout,
                        notebook_budget=self.notebook_budget, uid=self.sandbox_uid)
        report = grade_in_sandbox(cells, tests, limits)

        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell.execution_count = None
            if utils.is_grade(cell) and not utils.is_solution(cell):
                grade_id = cell.metadata.nbgrader["grade_id"]
                verdict = report.verdicts.get(
                    grade_id, Verdict(False, f"the course has no hidden test for {grade_id}"))
                cell.outputs = ([new_output("stream", name="stdout", text=f"✓ {grade_id} passed\n")]
                                if verdict.passed else [_failure(verdict.message)])
            elif index in skipped:
                cell.outputs = [new_output("stream", name="stdout", text=SKIPPED_NOTE + "\n")]
            elif index in report.cell_errors:
                cell.outputs = [new_output("stream", name="stdout",
                                           text=f"When graded, this cell failed: {report.cell_errors[index]}\n")]
            else:
                cell.outputs = []

        notes = list(nb.metadata.get(NOTES_KEY, {}).get("notes", [])) + report.notes
        nb.metadata[NOTES_KEY] = {"notes": notes, "seconds": round(report.seconds, 2)}
        if notes:
            nb.cells.insert(0, new_markdown_cell("**Notes from the grader**\n\n"
                                                 + "\n".join(f"- {note}" for note in notes)))
        return nb, resources
