"""Before nbgrader sees a submission: find it, read it, and put its graded cells in order.

This module is the one owner of what a submission folder holds: which file is the
notebook, the checks that make it safe to read (no link followed, nothing outside the
submissions folder, regular files only, a size cap), the bytes read, and the
fingerprint of exactly those bytes. :func:`read_submission` reads a submission once;
the fingerprint that decides whether a saved result is still good
(:meth:`Submission.fingerprint`) and the notebook that is graded
(:func:`prepare_submission`) both come from that one reading.

Every problem becomes a sentence. A submission that cannot be graded at all gets a
``reason`` (and a score of 0); one that can be graded after a repair gets ``notes``
that end up in the feedback and in the grades CSV.
"""
from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils

from .preprocessors import EDITION_KEY, NOTES_KEY
from .release import edited_cell_note, released_cells
from .translation import current_texts

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


@dataclass
class Intake:
    notebook: nbformat.NotebookNode | None = None
    reason: str | None = None               # why it cannot be graded at all
    notes: list[str] = field(default_factory=list)
    path: Path | None = None


MAX_NOTEBOOK_BYTES = 32 << 20     # a lab notebook with its plots is a few MB
MAX_ENTRIES = 1000                # files looked at in one lab folder


class UnreadableFile(Exception):
    """A path the grader will not read; the message says why, in a sentence."""


def kind(path: Path) -> str:
    """What ``path`` is, without following a link: missing, link, folder, file or special."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "missing"
    return ("link" if stat.S_ISLNK(mode) else "folder" if stat.S_ISDIR(mode)
            else "file" if stat.S_ISREG(mode) else "special")


_kind = kind


def read_regular_file(path: Path, cap: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of ``path``, read safely from a folder a student controls.

    Opens with ``O_NOFOLLOW`` (a link is refused, never followed) and ``O_NONBLOCK`` (a FIFO
    cannot hang the open), requires a regular file (not a folder, FIFO or device) of at most
    ``cap`` bytes, and reads at most ``cap + 1`` bytes whatever the file claims. Raises
    :class:`UnreadableFile` with a sentence.
    """
    name = _printable(Path(path).name)
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnreadableFile(f"{name} is a symbolic link; the grader does not follow links") from None
        raise UnreadableFile(f"cannot read {name}: {error.strerror}") from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise UnreadableFile(f"{name} is {what}")
        if info.st_size > cap:
            raise UnreadableFile(f"{name} is larger than the {cap >> 20} MiB a notebook may have "
                                 f"({info.st_size >> 20} MiB)")
        chunks, left = [], cap + 1
        while left > 0:
            chunk = os.read(handle, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > cap:
            raise UnreadableFile(f"{name} is larger than the {cap >> 20} MiB a notebook may have")
        return data
    except OSError as error:
        raise UnreadableFile(f"cannot read {name}: {error.strerror}") from None
    finally:
        os.close(handle)


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, every link resolved, lies inside ``root``."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except (OSError, ValueError):
        return False


def find_notebook(folder: Path, lab: str, root: Path | None = None) -> Intake:
    """The submitted notebook of ``lab`` in ``folder`` (``<student>/<lab>/``).

    Nothing is followed: a lab folder or notebook that is a symbolic link, or that resolves
    outside ``root`` (the submissions folder, when given), is refused with a reason. A
    notebook named ``<lab>.ipynb`` is taken as it is; otherwise the folder's one ``.ipynb``
    is, and a folder of more than :data:`MAX_ENTRIES` entries without ``<lab>.ipynb`` is
    refused (so what is chosen never depends on the order a file system lists names in).
    """
    expected = f"{lab}.ipynb"
    what = kind(folder)
    if what == "link":
        return Intake(reason=f"the folder {lab}/ is a symbolic link; the grader does not follow links")
    if what != "folder":
        return Intake(reason=f"missing submission: no folder {lab}/")
    if root is not None and not inside(folder, root):
        return Intake(reason=f"the folder {lab}/ lies outside the submissions folder")
    target = folder / expected
    if kind(target) != "missing":
        return _checked(target, root)
    names, count = [], 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                count += 1
                if count > MAX_ENTRIES:
                    return Intake(reason=f"the folder {lab}/ holds more than {MAX_ENTRIES} files and "
                                         f"no {expected}; name the notebook {expected}")
                if entry.name.endswith(".ipynb") and not entry.name.startswith("."):
                    names.append(entry.name)
    except OSError as error:
        return Intake(reason=f"cannot list the folder {lab}/: {error.strerror}")
    names.sort()
    if len(names) == 1:
        found = _checked(folder / names[0], root)
        if found.path is not None:
            found.notes.append(f"The notebook was named {_printable(names[0])}, not {expected}; "
                               "it was graded anyway.")
        return found
    if not names:
        return Intake(reason=f"missing notebook: {lab}/ holds no {expected}")
    shown = ", ".join(_printable(name) for name in names[:10])
    return Intake(reason=f"several notebooks ({shown}) and none named {expected}")


def _printable(name: str) -> str:
    """A file name as it may be shown: no control characters, no undecodable bytes, short."""
    text = name.encode("utf-8", "replace").decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:80] + ("…" if len(text) > 80 else "")


def _checked(path: Path, root: Path | None) -> Intake:
    what = kind(path)
    shown = _printable(path.name)
    if what == "link":
        return Intake(reason=f"{shown} is a symbolic link; the grader does not follow links")
    if what != "file":
        return Intake(reason=f"{shown} is {'a folder' if what == 'folder' else 'not a regular file'}")
    if root is not None and not inside(path, root):
        return Intake(reason=f"{shown} lies outside the submissions folder")
    return Intake(path=path)


# --- one submission, read once --------------------------------------------------------------

@dataclass
class Submission:
    """What one student's lab folder holds, read once: the refusal, or the notebook's bytes.

    Both the resume fingerprint and the notebook that is graded come from this one
    reading, so a result is reused only when exactly these bytes (and these notes) would
    be graded again.
    """
    lab: str
    reason: str | None = None               # why it cannot be graded (refused or missing)
    notes: list[str] = field(default_factory=list)
    name: str | None = None                 # the notebook's file name, as read
    data: bytes | None = None

    def fingerprint(self, grader: str) -> str:
        """The grade depends on exactly this: the grader's inputs and what intake read."""
        digest = hashlib.sha256()
        for part in (grader.encode(), self.lab.encode(), (self.reason or "").encode("utf-8", "surrogateescape"),
                     "\n".join(self.notes).encode("utf-8", "surrogateescape"),
                     os.fsencode(self.name or ""), b"-" if self.data is None else self.data):
            digest.update(hashlib.sha256(part).digest())
        return digest.hexdigest()


def read_submission(submissions: Path, student: str, lab: str) -> Submission:
    """Read ``submissions/student/lab`` once, refusing what the grader will not read.

    The student's folder and the lab folder must be real folders inside ``submissions``
    (a link is never followed), and the notebook a regular file inside it of at most
    :data:`MAX_NOTEBOOK_BYTES`; anything else is a ``reason``.
    """
    submissions = Path(submissions)
    student_folder = submissions / student
    if kind(student_folder) == "link":
        return Submission(lab, reason="the student's folder is a symbolic link; the grader does not follow links")
    found = find_notebook(student_folder / lab, lab, submissions)
    if found.reason:
        return Submission(lab, reason=found.reason, notes=list(found.notes))
    try:
        data = read_regular_file(found.path)
    except UnreadableFile as error:
        return Submission(lab, reason=str(error), notes=list(found.notes))
    return Submission(lab, notes=list(found.notes), name=found.path.name, data=data)


def student_folders(submissions: Path) -> list[str]:
    """The student folders of ``submissions``, sorted; a link is listed (and graded as "not
    followed"), never entered; names starting with ``.`` are not students."""
    with os.scandir(submissions) as entries:
        return sorted(entry.name for entry in entries
                      if not entry.name.startswith(".") and (entry.is_dir(follow_symlinks=False) or entry.is_symlink()))


def lab_folder_present(submissions: Path, student: str, lab: str) -> bool:
    """Whether a student's folder holds something at ``lab`` (without entering a link)."""
    return kind(Path(submissions) / student) == "folder" and kind(Path(submissions) / student / lab) != "missing"


def read_notebook(intake: Intake) -> Intake:
    """Read ``intake.path`` safely and parse it (see :func:`parse_notebook`)."""
    try:
        raw = read_regular_file(intake.path)
    except UnreadableFile as error:
        return Intake(reason=str(error), notes=intake.notes)
    return parse_notebook(raw, intake.notes, intake.path)


def parse_notebook(raw: bytes, notes: list[str], path: Path | None = None) -> Intake:
    """Parse ``raw`` as a version-4 notebook, upgrading an older version."""
    intake = Intake(notes=list(notes), path=path)
    if not raw.strip():
        return Intake(reason="the notebook file is empty", notes=intake.notes)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Intake(reason="the notebook is not a text file (not UTF-8)", notes=intake.notes)
    except json.JSONDecodeError as error:
        return Intake(reason=f"the notebook is not valid JSON ({error.msg} at line {error.lineno})",
                      notes=intake.notes)
    except RecursionError:
        return Intake(reason="the notebook's JSON is nested too deeply", notes=intake.notes)
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
        notes.append(f"The notebook was in nbformat {_printable(str(version))}; it was upgraded to version 4.")
    return Intake(notebook=notebook, notes=notes, path=intake.path)


def _grade_id(cell) -> str | None:
    nbgrader_metadata = cell.get("metadata", {}).get("nbgrader")
    if isinstance(nbgrader_metadata, dict) and isinstance(nbgrader_metadata.get("grade_id"), str):
        return nbgrader_metadata["grade_id"]
    return None


def restore_graded_cells(notebook, student_version, earlier: dict[str, str] | None = None,
                         editions: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Make ``notebook``'s graded cells match the released lab's, one each, in place.

    Deleted, duplicated and retyped graded cells are restored from ``student_version``
    (so they count as unanswered), edited test and read-only cells get their original
    text back, and every graded cell gets its original nbgrader metadata (points
    included). Returns a sentence for each repair.

    ``editions`` (language -> grade_id -> text, :func:`autograder.translation.current_texts`)
    are the instruction cells of today's release in another language: a cell that holds its
    text is unedited (no note); it is graded with the English text, and the notebook's
    metadata :data:`EDITION_KEY` keeps the translation for the feedback page.
    """
    released = {_grade_id(cell): cell for cell in student_version.cells if _grade_id(cell)}
    order = [gid for gid in (_grade_id(cell) for cell in student_version.cells) if gid]
    notes, kept, cells, kept_text = [], {}, [], {}
    notebook.metadata.pop(EDITION_KEY, None)   # only the grader writes it
    for cell in notebook.cells:
        grade_id = _grade_id(cell)
        if grade_id is None:
            if "nbgrader" in cell.get("metadata", {}):   # forged: grading flags without a usable id
                del cell.metadata["nbgrader"]
                notes.append("A cell carried nbgrader metadata without a valid id; "
                             "it was treated as an ordinary cell.")
            cells.append(cell)
            continue
        if grade_id not in released:
            del cell.metadata["nbgrader"]
            notes.append(f"A cell claimed the unknown id {_printable(repr(grade_id))}; it was treated as an ordinary cell.")
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
                language = next((language for language, texts in (editions or {}).items()
                                 if cell.cell_type == "markdown" and texts.get(grade_id) == cell.source), None)
                if language is not None:   # today's release in that language: not an edit
                    kept_text.setdefault(language, {})[grade_id] = cell.source
                else:
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
    if kept_text:
        language = max(kept_text, key=lambda name: len(kept_text[name]))
        notebook.metadata[EDITION_KEY] = {"language": language, "cells": kept_text[language]}
    return notes


def prepare(folder: Path, lab: str, student_version, root: Path | None = None) -> Intake:
    """Find, read and repair one submission; the notebook is ready for nbgrader.

    ``root`` is the submissions folder: nothing outside it is read (see :func:`find_notebook`).
    """
    intake = find_notebook(folder, lab, root)
    if intake.reason:
        return intake
    return _repair(read_notebook(intake), lab, student_version)


def prepare_submission(submission: Submission, lab: str, student_version) -> Intake:
    """Parse and repair the bytes :func:`read_submission` read; the notebook is ready for nbgrader."""
    if submission.reason:
        return Intake(reason=submission.reason, notes=list(submission.notes))
    return _repair(parse_notebook(submission.data, submission.notes), lab, student_version)


def _repair(intake: Intake, lab: str, student_version) -> Intake:
    if intake.reason:
        return intake
    notebook = intake.notebook
    kernel = notebook.metadata.get("kernelspec", {}).get("name")
    if kernel != KERNEL["name"]:
        intake.notes.append(f"The notebook asked for the kernel {_printable(repr(kernel))}; it was graded with python3.")
    notebook.metadata["kernelspec"] = dict(KERNEL)
    intake.notes += restore_graded_cells(notebook, student_version, released_cells(notebook, lab),
                                         current_texts(lab))
    notebook.metadata[NOTES_KEY] = {"notes": list(intake.notes)}
    return intake
