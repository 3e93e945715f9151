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

import re
from pathlib import Path

from nbformat.v4 import new_markdown_cell, new_output
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Int, Unicode

from .feedback import NOTES_CELL_KEY, STUDENT_OUTPUT_KEY, redact, sanitise_notebook
from .hidden import load_hidden_tests
from .sandbox import Limits, Verdict, grade_in_sandbox
from .translation import LANGUAGES
from .skipping import SKIPPED_NOTE, should_skip, skipped_sources

NOTES_KEY = "autograder"   # notebook metadata the intake fills: {"notes": [...]}
# notebook metadata the intake fills (and clears) for a translated submission:
# {"language": "ko", "cells": {grade_id: the release's text of that instruction cell}}
EDITION_KEY = "autograder_edition"
KEPT_MIMES = ("image/png", "image/jpeg", "text/plain")
MAX_KEPT_BYTES = 8 << 20   # the student's own outputs kept in one notebook
MAX_KEPT_TEXT = 20_000     # characters of one kept text output
MAX_NOTE = 1_000           # characters of one note


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
        edition = nb.metadata.get(EDITION_KEY)
        language = edition.get("language") if isinstance(edition, dict) else None
        report = grade_in_sandbox(cells, tests, limits, language if language in LANGUAGES else "en")

        budget = [MAX_KEPT_BYTES]
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell.execution_count = None
            if utils.is_grade(cell) and not utils.is_solution(cell):
                grade_id = cell.metadata.nbgrader["grade_id"]
                verdict = report.verdicts.get(
                    grade_id, Verdict(False, f"the course has no hidden test for {grade_id}"))
                passed = "통과" if language == "ko" else "passed"
                cell.outputs = ([new_output("stream", name="stdout", text=f"✓ {grade_id} {passed}\n")]
                                if verdict.passed else [_failure(verdict.message)])
            elif index in skipped:
                cell.outputs = [new_output("stream", name="stdout", text=SKIPPED_NOTE + "\n")] \
                    + _students_own(cell, budget)
            elif index in report.cell_errors:
                cell.outputs = [new_output("stream", name="stdout",
                                           text=f"When graded, this cell failed: {report.cell_errors[index]}\n")]
            else:
                cell.outputs = _students_own(cell, budget)

        notes = list(nb.metadata.get(NOTES_KEY, {}).get("notes", [])) + report.notes
        nb.metadata[NOTES_KEY] = {"notes": notes, "seconds": round(report.seconds, 2)}
        if notes:
            cell = new_markdown_cell("**Notes from the grader**\n\n"
                                     + "\n".join(f"- {markdown_text(note)}" for note in notes))
            cell.metadata[NOTES_CELL_KEY] = True
            nb.cells.insert(0, cell)
        return nb, resources


class RestoreEdition(NbGraderPreprocessor):
    """After the grades are saved: a translated submission's instruction cells get back the text of
    the release the student worked from (nbgrader restored the English from the gradebook), so its
    feedback page and the formgrader read in the student's language. Only locked markdown cells
    that are not answers change, only to the text the intake found to be that release's, and the
    sanitiser (the next step) still applies."""

    def preprocess(self, nb, resources):
        edition = nb.metadata.pop(EDITION_KEY, None)
        cells = edition.get("cells") if isinstance(edition, dict) else None
        if isinstance(cells, dict):
            for cell in nb.cells:
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                if (cell.cell_type == "markdown" and utils.is_locked(cell) and not utils.is_solution(cell)
                        and isinstance(cells.get(grade_id), str)):
                    cell.source = cells[grade_id]
            if isinstance(edition.get("language"), str):
                nb.metadata["course_language"] = edition["language"]
        return nb, resources


class SanitiseForFormgrader(NbGraderPreprocessor):
    """The last step of autograding: the notebook nbgrader saves (and its formgrader renders raw
    in the instructor's browser) gets the feedback page's sanitiser (``feedback.sanitise_notebook``).

    It runs after ``SaveAutoGrades``, so grades and checksums are of what the student handed in.
    """

    def preprocess(self, nb, resources):
        return sanitise_notebook(nb), resources


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$<>&:])")


def markdown_text(text: str) -> str:
    """``text`` (a note, which may quote student-controlled names) as inert markdown.

    Host paths are replaced, every markdown and HTML character is escaped, and line breaks
    become spaces, so the note renders as the literal text in any viewer: nbgrader's
    formgrader, the feedback page or a notebook.
    """
    text = redact(" ".join(str(text).split()))[:MAX_NOTE]
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _students_own(cell, budget: list[int]) -> list:
    """The outputs the student's own run left in a cell, reduced to inert kinds and capped.

    The written questions ask about the student's plots, so a grader must see them; the
    grader's run does not draw them. Only PNG/JPEG images, plain text and streams are
    kept (no HTML, no JavaScript, no SVG), each flagged as the student's own.
    """
    kept = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            text = str(output.get("text", ""))[:MAX_KEPT_TEXT]
            item = new_output("stream", name="stdout", text=text)
        elif kind in ("display_data", "execute_result"):
            data = {mime: output.get("data", {})[mime] for mime in KEPT_MIMES if mime in output.get("data", {})}
            data = {mime: value if isinstance(value, str) else "".join(map(str, value))
                    for mime, value in data.items()}
            if "text/plain" in data:
                data["text/plain"] = data["text/plain"][:MAX_KEPT_TEXT]
            if not data:
                continue
            item = new_output("display_data", data=data)
        else:
            continue
        size = len(str(item))
        if size > budget[0]:
            break
        budget[0] -= size
        kept.append(item)
    if kept:
        cell.metadata[STUDENT_OUTPUT_KEY] = True
    return kept

