"""``make labs``: generate the student notebooks in ``labs/`` from ``solutions/`` with nbgrader.

nbgrader's ``generate_assignment`` strips solutions and hidden tests, records checksums
and locks cells. It runs in a scratch course folder so that no gradebook or stray file
lands in the repository, and only the generated notebook is copied into ``labs/``.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from .course import nbgrader_config, source_notebook, student_notebook


class ReleaseError(Exception):
    pass


def generate(lab: str, course_root: Path) -> Path:
    """Run nbgrader's generate_assignment for ``lab`` in ``course_root`` (which it fills).

    ``course_root`` gets ``source/<lab>/<lab>.ipynb``, ``release/<lab>/<lab>.ipynb`` and a
    gradebook that knows the lab: all a later autograde needs. Returns the release notebook.
    """
    source = course_root / "source" / lab
    source.mkdir(parents=True, exist_ok=True)
    shutil.copy(source_notebook(lab), source / f"{lab}.ipynb")
    config = nbgrader_config(course_root, source_directory="source", release_directory="release")
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    result = api.generate_assignment(lab, force=True, create=True)
    if not result["success"]:
        raise ReleaseError(f"nbgrader could not generate {lab}:\n{result['error'] or result['log']}")
    return course_root / "release" / lab / f"{lab}.ipynb"


def release(lab: str, destination: Path | None = None) -> Path:
    """Write the student notebook of ``lab`` to ``destination`` (default ``labs/<lab>/<lab>.ipynb``)."""
    destination = destination or student_notebook(lab)
    with tempfile.TemporaryDirectory(prefix="release-") as scratch:
        generated = generate(lab, Path(scratch))
        notebook = nbformat.read(generated, as_version=4)
    destination.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, destination)
    return destination
