"""``make labs``: generate the student notebooks in ``labs/`` from ``solutions/`` with nbgrader.

nbgrader's ``generate_assignment`` strips solutions and hidden tests, records checksums
and locks cells. It runs in a scratch course folder so that no gradebook or stray file
lands in the repository, and only the generated notebook is copied into ``labs/``.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from .course import nbgrader_config, source_notebook, student_notebook
from .translation import LANGUAGE_KEY, translated_notebook, translated_source


class ReleaseError(Exception):
    pass


def generate(lab: str, course_root: Path, notebook=None) -> Path:
    """Run nbgrader's generate_assignment for ``lab`` in ``course_root`` (which it fills).

    ``course_root`` gets ``source/<lab>/<lab>.ipynb``, ``release/<lab>/<lab>.ipynb`` and a
    gradebook that knows the lab: all a later autograde needs. Returns the release notebook.
    ``notebook`` is the source to generate from (default: ``solutions/<lab>/<lab>.ipynb``;
    the Korean release passes its translated source, :mod:`autograder.translation`).
    """
    source = course_root / "source" / lab
    source.mkdir(parents=True, exist_ok=True)
    if notebook is None:
        shutil.copy(source_notebook(lab), source / f"{lab}.ipynb")
    else:
        nbformat.write(notebook, source / f"{lab}.ipynb")
    config = nbgrader_config(course_root, source_directory="source", release_directory="release")
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    result = api.generate_assignment(lab, force=True, create=True)
    if not result["success"]:
        lines = [line.strip() for line in (result.get("log") or result.get("error") or "").splitlines()
                 if line.strip() and "Traceback" not in line and not line.startswith(("File ", "^"))]
        errors = [line for line in lines if "Error" in line or "error" in line] or lines or ["?"]
        raise ReleaseError(f"nbgrader could not generate {lab}: {errors[-1]}")
    return course_root / "release" / lab / f"{lab}.ipynb"


RELEASE_KEY = "course_release"       # notebook metadata: the release's fingerprint
RELEASES_FILE = "releases.json"      # solutions/<lab>/releases.json: every release's given cells


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def given_cells(notebook) -> dict[str, str]:
    """grade_id -> checksum of each graded cell a student must not edit (tests, read-only cells)."""
    return {cell.metadata.nbgrader["grade_id"]: _digest(cell.source) for cell in notebook.cells
            if utils.is_grade(cell) or utils.is_locked(cell)
            if "grade_id" in cell.metadata.get("nbgrader", {}) and not utils.is_solution(cell)}


def release_fingerprint(notebook) -> str:
    return _digest(json.dumps(sorted(given_cells(notebook).items())))


def release(lab: str, destination: Path | None = None, language: str = "en") -> Path:
    """Write the student notebook of ``lab`` to ``destination`` (default ``labs/<lab>/<lab>.ipynb``,
    or ``labs/<language>/<lab>/<lab>.ipynb`` for a translated release).

    The notebook carries its release's fingerprint; ``make labs`` (the default destination)
    also records that release's given cells in ``solutions/<lab>/releases.json`` (the English
    and the Korean release alike), so a later edit of the lab is not blamed on students who
    hold an earlier release.
    """
    record = destination is None
    if language == "en":
        destination, source = destination or student_notebook(lab), None
    else:
        destination = destination or translated_notebook(lab, language)
        source = translated_source(lab, language)   # a broken ko.yml stops here, in one line
    with tempfile.TemporaryDirectory(prefix="release-") as scratch:
        generated = generate(lab, Path(scratch), source)
        notebook = nbformat.read(generated, as_version=4)
    if language != "en":
        notebook.metadata[LANGUAGE_KEY] = language
    notebook.metadata[RELEASE_KEY] = release_fingerprint(notebook)
    if record:
        path = source_notebook(lab).parent / RELEASES_FILE
        known = json.loads(path.read_text()) if path.is_file() else {}
        known[notebook.metadata[RELEASE_KEY]] = given_cells(notebook)
        path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    destination.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, destination)
    return destination


def released_cells(notebook, lab: str) -> dict[str, str] | None:
    """The given cells of the release ``notebook`` says it came from, or None when that release is unknown."""
    fingerprint = notebook.metadata.get(RELEASE_KEY)
    path = source_notebook(lab).parent / RELEASES_FILE
    if not isinstance(fingerprint, str) or not path.is_file():
        return None
    try:
        known = json.loads(path.read_text())
    except ValueError:
        return None
    cells = known.get(fingerprint)
    return cells if isinstance(cells, dict) else None


def release_all(lab: str) -> list[Path]:
    """``make labs`` for one lab: the English release and one per language it has a translation for.

    Every translation file is checked first, so a broken one stops ``make labs`` before it writes anything.
    """
    from .translation import languages, translations
    for language in languages(lab):
        translations(lab, language)
    return [release(lab)] + [release(lab, language=language) for language in languages(lab)]


def edited_cell_note(grade_id: str, source: str, earlier: dict[str, str] | None) -> str:
    """What a submission whose given cell differs from today's release is told."""
    if earlier is not None and earlier.get(grade_id) == _digest(source):
        return (f"Cell {grade_id} was changed by your instructor after your copy of the lab was released; "
                "the current version was graded.")
    if earlier is None:
        return f"Cell {grade_id} differs from the current release of the lab; the current version was graded."
    return f"Cell {grade_id} is not for editing but was edited; the original was restored."
