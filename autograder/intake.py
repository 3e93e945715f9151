"""Before nbgrader sees a submission: find it, read it, and put its graded cells in order.

Every problem becomes a sentence. A submission that cannot be graded at all gets a
``reason`` (and a score of 0); one that can be graded after a repair gets ``notes``
that end up in the feedback and in the grades CSV.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils

from .preprocessors import NOTES_KEY
from .release import edited_cell_note, released_cells

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


@dataclass
class Intake:
    notebook: nbformat.NotebookNode | None = None
    reason: str | None = None               # why it cannot be graded at all
    notes: list[str] = field(default_factory=list)
    path: Path | None = None


def find_notebook(folder: Path, lab: str) -> Intake:
    """The submitted notebook of ``lab`` in ``folder`` (``<student>/<lab>/``)."""
    expected = f"{lab}.ipynb"
    if not folder.is_dir():
        return Intake(reason=f"missing submission: no folder {lab}/")
    if (folder / expected).is_file():
        return Intake(path=folder / expected)
    notebooks = sorted(path for path in folder.iterdir() if path.suffix == ".ipynb" and path.is_file())
    if len(notebooks) == 1:
        return Intake(path=notebooks[0],
                      notes=[f"The notebook was named {notebooks[0].name}, not {expected}; it was graded anyway."])
    if not notebooks:
        return Intake(reason=f"missing notebook: {lab}/ holds no {expected}")
    names = ", ".join(path.name for path in notebooks)
    return Intake(reason=f"several notebooks ({names}) and none named {expected}")


def read_notebook(intake: Intake) -> Intake:
    """Parse ``intake.path`` as a version-4 notebook, upgrading an older version."""
    try:
        raw = intake.path.read_bytes()
    except OSError as error:
        return Intake(reason=f"cannot read the notebook: {error.strerror}", notes=intake.notes)
    if not raw.strip():
        return Intake(reason="the notebook file is empty", notes=intake.notes)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Intake(reason="the notebook is not a text file (not UTF-8)", notes=intake.notes)
    except json.JSONDecodeError as error:
        return Intake(reason=f"the notebook is not valid JSON ({error.msg} at line {error.lineno})",
                      notes=intake.notes)
    if not isinstance(data, dict) or not ("cells" in data or "worksheets" in data):
        return Intake(reason="the file is not a Jupyter notebook (it has no cells)", notes=intake.notes)
    notes = list(intake.notes)
    version = data.get("nbformat")
    try:
        notebook = nbformat.reads(json.dumps(data), as_version=4)
        nbformat.validate(notebook)
    except Exception as error:   # nbformat raises many types for many shapes of damage
        summary = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        return Intake(reason=f"the notebook's structure is invalid: {summary}", notes=notes)
    if version != 4:
        notes.append(f"The notebook was in nbformat {version}; it was upgraded to version 4.")
    return Intake(notebook=notebook, notes=notes, path=intake.path)


def _grade_id(cell) -> str | None:
    nbgrader_metadata = cell.get("metadata", {}).get("nbgrader")
    if isinstance(nbgrader_metadata, dict) and isinstance(nbgrader_metadata.get("grade_id"), str):
        return nbgrader_metadata["grade_id"]
    return None


def restore_graded_cells(notebook, student_version, earlier: dict[str, str] | None = None) -> list[str]:
    """Make ``notebook``'s graded cells match the released lab's, one each, in place.

    Deleted, duplicated and retyped graded cells are restored from ``student_version``
    (so they count as unanswered), edited test and read-only cells get their original
    text back, and every graded cell gets its original nbgrader metadata (points
    included). Returns a sentence for each repair.
    """
    released = {_grade_id(cell): cell for cell in student_version.cells if _grade_id(cell)}
    order = [gid for gid in (_grade_id(cell) for cell in student_version.cells) if gid]
    notes, kept, cells = [], {}, []
    for cell in notebook.cells:
        grade_id = _grade_id(cell)
        if grade_id is None:
            cells.append(cell)
            continue
        if grade_id not in released:
            del cell.metadata["nbgrader"]
            notes.append(f"A cell claimed the unknown id {grade_id!r}; it was treated as an ordinary cell.")
            cells.append(cell)
            continue
        if grade_id in kept:
            notes.append(f"Cell {grade_id} appeared more than once; only the first copy was graded.")
            continue
        original = released[grade_id]
        if cell.cell_type != original.cell_type:
            notes.append(f"Cell {grade_id} was changed from {original.cell_type} to {cell.cell_type}; "
                         "it was restored unanswered.")
            cell = copy.deepcopy(original)
        else:
            metadata = original.metadata["nbgrader"]
            is_answer = metadata.get("solution", False)
            if not is_answer and cell.source != original.source:
                # judged against the release the student received (``earlier``), not today's
                notes.append(edited_cell_note(grade_id, cell.source, earlier))
                cell.source = original.source
            cell.metadata["nbgrader"] = copy.deepcopy(metadata)
        kept[grade_id] = cell
        cells.append(cell)
    for position, grade_id in enumerate(order):
        if grade_id in kept:
            continue
        restored = copy.deepcopy(released[grade_id])
        before = next((kept[gid] for gid in reversed(order[:position]) if gid in kept), None)
        at = cells.index(before) + 1 if before is not None else 0
        cells.insert(at, restored)
        kept[grade_id] = restored
        notes.append(f"Cell {grade_id} was missing; it was restored unanswered.")
    notebook.cells = cells
    return notes


def prepare(folder: Path, lab: str, student_version) -> Intake:
    """Find, read and repair one submission; the notebook is ready for nbgrader."""
    intake = find_notebook(folder, lab)
    if intake.reason:
        return intake
    intake = read_notebook(intake)
    if intake.reason:
        return intake
    notebook = intake.notebook
    kernel = notebook.metadata.get("kernelspec", {}).get("name")
    if kernel != KERNEL["name"]:
        intake.notes.append(f"The notebook asked for the kernel {kernel!r}; it was graded with python3.")
    notebook.metadata["kernelspec"] = dict(KERNEL)
    intake.notes += restore_graded_cells(notebook, student_version, released_cells(notebook, lab))
    notebook.metadata[NOTES_KEY] = {"notes": list(intake.notes)}
    return intake
