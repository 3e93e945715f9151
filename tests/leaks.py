"""What must never reach a student: lines of solution code and of hidden tests.

A fragment is a distinctive line (30 characters or more, not a comment) of a solution
cell, of ``reference.py`` or of ``hidden_tests.py`` that nothing public contains: no
student notebook, no book page, no module of ``speechcourse`` (signatures, docstrings and
plumbing such as ``rng = np.random.default_rng(seed)`` are shared on purpose).
"""
from __future__ import annotations

import re

import nbformat

from autograder.course import SOLUTIONS, lab_names, source_notebook, student_notebook
from autograder.sandbox import REPO

SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.DOTALL)
HIDDEN_REGION = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()
            if len(line.strip()) >= 30 and not line.strip().startswith(("#", '"""', "'''"))}


def hidden_fragments(lab: str) -> list[str]:
    source = nbformat.read(source_notebook(lab), as_version=4)
    secret = set()
    for cell in source.cells:
        for region in SOLUTION_REGION.findall(cell.source) + HIDDEN_REGION.findall(cell.source):
            secret |= _lines(region)
    for name in ("reference.py", "hidden_tests.py"):
        path = SOLUTIONS / lab / name
        if path.exists():
            secret |= _lines(path.read_text())
    public = _public_text()
    return sorted(fragment for fragment in secret if fragment not in public)


def _public_text() -> str:
    texts = [cell.source for lab in lab_names()
             for cell in nbformat.read(student_notebook(lab), as_version=4).cells]
    texts += [path.read_text() for path in sorted((REPO / "book").glob("*.md"))]
    texts += [path.read_text() for path in sorted((REPO / "speechcourse").rglob("*.py"))]
    return "\n".join(texts)
