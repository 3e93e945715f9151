"""labs/ is generated from solutions/ by nbgrader, and holds no solution or hidden test."""
from __future__ import annotations

import json

import nbformat
import pytest

from autograder.course import lab_names, source_notebook, student_notebook
from autograder.release import release
from autograder.translation import languages, translated_notebook
from leaks import hidden_fragments

LABS = lab_names()
TRANSLATED = [(lab, language) for lab in LABS for language in languages(lab)]   # labs/ko/<lab>


def test_there_are_labs():
    assert "ch01_vanilla_rnn" in LABS


@pytest.mark.parametrize("lab", LABS)
def test_committed_lab_matches_generation(lab, tmp_path):
    fresh = release(lab, tmp_path / f"{lab}.ipynb")
    committed = student_notebook(lab)
    assert committed.exists(), f"{committed} is missing: run `make labs`"
    assert json.loads(fresh.read_text()) == json.loads(committed.read_text()), \
        f"{committed} differs from what `make labs` generates from {source_notebook(lab)}: run `make labs`"


@pytest.mark.parametrize("lab,language", TRANSLATED)
def test_committed_translated_lab_matches_generation(lab, language, tmp_path):
    fresh = release(lab, tmp_path / f"{lab}.ipynb", language=language)
    committed = translated_notebook(lab, language)
    assert committed.exists(), f"{committed} is missing: run `make labs`"
    assert json.loads(fresh.read_text()) == json.loads(committed.read_text()), \
        f"{committed} differs from what `make labs` generates from {source_notebook(lab)} and its {language}.yml: " \
        "run `make labs`"


@pytest.mark.parametrize("lab", LABS)
def test_lab_holds_no_solution_or_hidden_test(lab):
    for path in [student_notebook(lab), *(translated_notebook(lab, language) for language in languages(lab))]:
        text = path.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "run_here", "hidden_tests"):
            assert marker not in text, f"{path} contains {marker!r}"
        leaked = [fragment for fragment in hidden_fragments(lab) if fragment in text]
        assert not leaked, f"solution code in the student notebook {path}: {leaked[:3]}"


@pytest.mark.parametrize("lab", LABS)
def test_every_answer_is_a_stub(lab):
    notebook = nbformat.read(student_notebook(lab), as_version=4)
    answers = [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("solution")]
    assert answers
    for cell in answers:
        stub = "raise NotImplementedError()" if cell.cell_type == "code" else "YOUR ANSWER HERE"
        assert stub in cell.source, cell.metadata.nbgrader["grade_id"]
