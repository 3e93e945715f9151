"""What every lab's in-process tests share: its notebook, reference answers, fixtures and runs.

A chapter's test module makes one ``LabUnderTest`` and runs the reference, the untouched
stubs and each fixture through the hidden tests (via ``autograder.hidden.LocalStudent``,
which keeps the grader's data-only semantics) and through the visible self-checks.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

from autograder.course import SOLUTIONS, source_notebook
from autograder.fill import answers_from_source, read_answers
from autograder.hidden import LocalStudent, load_hidden_tests, load_sibling, run_test

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def read_fixture(path: Path) -> dict[str, str]:
    """grade_id -> source, parsed exactly as the grader's ``fill`` parses it."""
    first = next(line for line in path.read_text().splitlines() if line.strip())
    assert first.startswith("# %% "), f"{path.name}: must start with a '# %% <grade_id>' line"
    return read_answers(path)


def stub(source: str) -> str:
    """What nbgrader leaves of a solution cell: the region becomes raise NotImplementedError()."""
    return re.sub(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION",
                  r"\1raise NotImplementedError()", source, flags=re.S)


class LabUnderTest:
    """One lab: ``solution_ids`` are its graded code cells, ``setup`` what its setup cell gives them,
    ``visible`` maps each test cell to (self-check name, names of the student objects it takes)."""

    def __init__(self, slug: str, solution_ids: tuple[str, ...], setup: str,
                 selfcheck, visible: dict[str, tuple[str, tuple[str, ...]]]):
        self.slug, self.solution_ids, self.setup = slug, solution_ids, setup
        self.selfcheck, self.visible = selfcheck, visible
        self.folder = SOLUTIONS / slug
        self.notebook = source_notebook(slug)
        self.fixtures = FIXTURES / slug
        self.hidden = load_hidden_tests(self.folder)
        self.reference = load_sibling(str(self.folder / "reference.py"), "reference")

    def notebook_cells(self) -> dict[str, nbformat.NotebookNode]:
        notebook = nbformat.read(self.notebook, as_version=4)
        return {c.metadata["nbgrader"]["grade_id"]: c for c in notebook.cells if "nbgrader" in c.metadata}

    def reference_answers(self) -> dict[str, str]:
        """The solution cells' code, markers removed, as the grader fills a submission."""
        answers = answers_from_source(nbformat.read(self.notebook, as_version=4))
        return {grade_id: answers[grade_id] for grade_id in self.solution_ids}

    def reference_cells(self) -> dict[str, str]:
        """The solution cells as written in the instructor notebook, with their markers."""
        cells = self.notebook_cells()
        return {grade_id: cells[grade_id].source for grade_id in self.solution_ids}

    def namespace(self, answers: dict[str, str]) -> dict:
        ns = {"__name__": "__student__"}
        exec(self.setup, ns)
        for grade_id in self.solution_ids:
            exec(compile(answers[grade_id], f"<{grade_id}>", "exec"), ns)
        return ns

    def submission(self, fixture: str) -> dict:
        return self.namespace({**self.reference_answers(), **read_fixture(self.fixtures / f"{fixture}.py")})

    def hidden_results(self, ns: dict) -> dict[str, tuple[bool, str]]:
        student = LocalStudent(ns)
        return {grade_id: run_test(test, student) for grade_id, test in self.hidden.items()}

    def visible_results(self, ns: dict) -> dict[str, BaseException | None]:
        results = {}
        for grade_id, (check, names) in self.visible.items():
            try:
                getattr(self.selfcheck, check)(*(ns[name] for name in names))
                results[grade_id] = None
            except Exception as error:  # noqa: BLE001 - recorded and judged by the caller
                results[grade_id] = error
        return results
