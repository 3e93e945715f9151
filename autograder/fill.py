"""Build a submission from a student notebook by filling named answer cells.

An answers file is Python with a ``# %% <grade_id>`` line before each answer cell::

    # %% rnn_step
    def rnn_step(x_t, h_prev, Wxh, Whh, bh):
        return np.tanh(x_t @ Wxh + h_prev @ Whh + bh)

    # %% [markdown] explain_short_term_memory
    # The gradient norm falls by a constant factor per step...

A markdown answer's lines lose their leading ``# ``. Cells the file does not name keep
the student notebook's text. The tests use this to turn fixtures into submissions;
an instructor can use it to try out a suspected mistake.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

MARKER = re.compile(r"^# %%(?: \[(?P<kind>markdown)\])? (?P<grade_id>[\w.-]+)\s*$")
SOLUTION_BLOCK = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def read_answers(path: Path) -> dict[str, str]:
    """grade_id -> cell text, from an answers file."""
    answers, grade_id, kind, lines = {}, None, None, []

    def close():
        if grade_id is not None:
            text = "\n".join(lines).strip("\n")
            if kind == "markdown":
                text = "\n".join(re.sub(r"^# ?", "", line) for line in text.splitlines())
            answers[grade_id] = text

    for line in Path(path).read_text().splitlines():
        match = MARKER.match(line)
        if match:
            close()
            grade_id, kind, lines = match["grade_id"], match["kind"], []
        elif grade_id is not None:
            lines.append(line)
    close()
    if not answers:
        raise ValueError(f"{path}: no '# %% <grade_id>' lines, so no answers")
    return answers


def answers_from_source(source_notebook) -> dict[str, str]:
    """The instructor notebook's answers: each answer cell with its solution markers removed."""
    answers = {}
    for cell in source_notebook.cells:
        metadata = cell.metadata.get("nbgrader", {})
        if metadata.get("solution"):
            answers[metadata["grade_id"]] = SOLUTION_BLOCK.sub("", cell.source).strip("\n")
    return answers


def fill(student_notebook, answers: dict[str, str]):
    """A copy of ``student_notebook`` with the named answer cells replaced."""
    notebook = copy.deepcopy(student_notebook)
    answer_ids = {cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells
                  if cell.metadata.get("nbgrader", {}).get("solution")}
    unknown = sorted(set(answers) - answer_ids)
    if unknown:
        raise KeyError(f"no answer cell named {', '.join(unknown)} (answer cells: {', '.join(sorted(answer_ids))})")
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return notebook


def fill_files(student_path: Path, answer_paths: list[Path], out_path: Path,
               source_path: Path | None = None) -> None:
    """CLI body: fill ``student_path`` from (optionally) the source's answers, then each file."""
    student = nbformat.read(student_path, as_version=4)
    answers = answers_from_source(nbformat.read(source_path, as_version=4)) if source_path else {}
    for path in answer_paths:
        answers.update(read_answers(path))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(fill(student, answers), out_path)
