"""Cells the grader need not run: the instructor's ``skip-when-grading`` cell tag.

A lab may give cells that only train or plot, on which no hidden test depends (Lab 2's
training loop is the case). The instructor notebook tags them ``skip-when-grading``.
The grader then does not run them: the student's notebook is graded without them and
its feedback says so.

What is skipped is decided by the instructor's notebook, never by the submission: a
submitted cell is skipped only when it is not a graded cell and its source is, word for
word, the source of a tagged cell. A student who adds the tag to a cell of their own
changes nothing, and one who edits a given cell has it run as they wrote it.

``defined_names_used_later`` is the check that keeps the tag honest: a tagged cell must
not define a name that a later graded cell (an answer or a test) uses.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
from nbgrader import utils

SKIP_TAG = "skip-when-grading"
SKIPPED_NOTE = ("Not run when graded: this given cell only trains or plots, and no test depends on it. "
                "Run it yourself to see its output.")


def is_tagged(cell) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    return isinstance(tags, list) and SKIP_TAG in tags


def _key(source: str) -> str:
    return source.strip()


def skipped_sources(instructor_notebook: Path | nbformat.NotebookNode) -> frozenset[str]:
    """The sources of the tagged, ungraded code cells of a lab's instructor notebook."""
    notebook = (nbformat.read(instructor_notebook, as_version=4)
                if isinstance(instructor_notebook, (str, Path)) else instructor_notebook)
    return frozenset(_key(cell.source) for cell in notebook.cells
                     if cell.cell_type == "code" and is_tagged(cell) and not utils.is_grade(cell))


def should_skip(cell, sources: frozenset[str]) -> bool:
    """True for a submitted code cell that is a tagged cell of the lab, unchanged."""
    return (cell.cell_type == "code" and not utils.is_grade(cell)
            and not utils.is_solution(cell) and _key(cell.source) in sources)


def _defined(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def _used(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def _parse(source: str) -> ast.AST:
    # IPython magics and shell escapes are not Python; they neither define nor use names here
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return ast.parse("\n".join(lines))


def defined_names_used_later(notebook: nbformat.NotebookNode) -> list[str]:
    """Sentences, one per name that a tagged cell defines and a later graded cell uses."""
    problems, defined_by = [], {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        tree = _parse(cell.source)
        if is_tagged(cell):
            if utils.is_grade(cell) or utils.is_solution(cell):
                problems.append(f"cell {index} is graded and tagged {SKIP_TAG}; a graded cell always runs")
            for name in _defined(tree):
                defined_by.setdefault(name, index)
        elif utils.is_grade(cell) or utils.is_solution(cell):
            grade_id = cell.metadata.nbgrader.get("grade_id", index)
            for name in sorted(_used(tree) & set(defined_by)):
                problems.append(f"cell {defined_by[name]} is tagged {SKIP_TAG} but defines {name!r}, "
                                f"which the graded cell {grade_id} uses")
    return problems
