"""The labs in Korean: labs/ko/<lab>/<lab>.ipynb, made by `make labs` from solutions/<lab>/ko.yml.

- Each Korean release is the English release with the instruction cells' text in Korean and one
  first cell that switches the self-checks to Korean: the same graded cells, grade_ids, points
  and code cells (the drift test, labs/ko equal to what `make labs` generates, is in
  test_labs_release.py beside the English one).
- A stale, missing, extra or malformed entry of a ko.yml is one line from `make labs`.
- One grader grades both: a Korean submission, in the session's one class run (conftest.py's
  ``ko-solution`` and ``ko-untouched``), scores what the English one with the same answers
  scores, cell by cell, without an edited-cell note, and its feedback page reads in Korean.
"""
from __future__ import annotations

import copy
import hashlib
import re

import nbformat
import pytest
from nbgrader import utils

from autograder import translation
from autograder.course import lab_names, source_notebook, student_notebook
from autograder.intake import restore_graded_cells
from autograder.preprocessors import EDITION_KEY
from autograder.release import given_cells
from autograder.translation import (TranslationError, check_entries, read_entries, translatable_cells,
                                    translated_notebook, translation_file)

KOREAN_LABS = [lab for lab in lab_names() if translation_file(lab, "ko").is_file()]
SAMPLE = KOREAN_LABS[0] if KOREAN_LABS else None
needs_korean = pytest.mark.skipif(not KOREAN_LABS, reason="no lab has a solutions/<lab>/ko.yml yet")


def _read(path):
    return nbformat.read(path, as_version=4)


def _shape(cell) -> dict:
    """What must be the same in both languages: everything of a cell but an instruction cell's text."""
    nbgrader = {key: value for key, value in cell.metadata.get("nbgrader", {}).items() if key != "checksum"}
    return {"type": cell.cell_type, "id": cell.get("id"), "nbgrader": nbgrader,
            "metadata": {key: value for key, value in cell.metadata.items() if key != "nbgrader"},
            "source": cell.source if cell.cell_type == "code" or utils.is_solution(cell) else None}


def test_every_translation_has_its_release_and_every_release_its_translation():
    committed = sorted(path.parent.name for path in (translation.LABS / "ko").glob("*/*.ipynb")
                       if path.stem == path.parent.name)
    assert committed == KOREAN_LABS, "labs/ko/ differs from the labs with a solutions/<lab>/ko.yml: run `make labs`"


def test_nothing_that_lists_the_labs_takes_labs_ko_for_a_lab():
    import sys
    sys.path.insert(0, str(translation.LABS.parent / "tools"))
    import course_labs
    import student_release
    assert "ko" not in student_release.lab_names() and "ko" not in lab_names()
    assert course_labs.lab_of_page("labs/ko/ch01_vanilla_rnn/ch01_vanilla_rnn") == ("ch01_vanilla_rnn", "ko")
    assert course_labs.lab_of_page("labs/ch01_vanilla_rnn/ch01_vanilla_rnn") == ("ch01_vanilla_rnn", "en")
    assert course_labs.lab_of_page("labs/ko/ko") is None and course_labs.lab_of_page("book/labs") is None


@needs_korean
@pytest.mark.parametrize("lab", KOREAN_LABS)
def test_korean_release_has_the_english_cells_and_the_translated_text(lab):
    english, korean = _read(student_notebook(lab)), _read(translated_notebook(lab, "ko"))
    switch, *cells = korean.cells
    assert switch.cell_type == "code" and "nbgrader" not in switch.metadata
    assert 'use("ko")' in switch.source and any("가" <= char <= "힣" for char in switch.source)
    assert [_shape(cell) for cell in cells] == [_shape(cell) for cell in english.cells]
    assert korean.metadata[translation.LANGUAGE_KEY] == "ko"
    texts = {grade_id: entry["ko"].rstrip("\n") for grade_id, entry in read_entries(translation_file(lab, "ko")).items()}
    shown = {gid: source for gid, source in translatable_cells(korean)}
    assert shown == texts
    points = {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader.get("points") for c in cells if utils.is_grade(c)}
    assert points == {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader.get("points")
                      for c in english.cells if utils.is_grade(c)}


@needs_korean
@pytest.mark.parametrize("lab", KOREAN_LABS)
def test_the_committed_korean_release_is_on_record(lab):
    """make labs records the Korean release's given cells in releases.json too: commit it with labs/ko."""
    from autograder.release import RELEASE_KEY, released_cells
    korean = _read(translated_notebook(lab, "ko"))
    assert korean.metadata.get(RELEASE_KEY) != _read(student_notebook(lab)).metadata.get(RELEASE_KEY)
    assert released_cells(korean, lab) == given_cells(korean), \
        f"solutions/{lab}/releases.json lacks the release in labs/ko/{lab}: run make labs and commit both"


# ------------------------------------------------------------------- a broken ko.yml, in one line

def _entries_file(tmp_path, lab: str, change) -> tuple:
    """A ko.yml for ``lab`` written from the committed one (or from the English text), changed by ``change``."""
    english = translatable_cells(_read(source_notebook(lab)))
    entries = {gid: {"en": hashlib.sha256(text.encode()).hexdigest()[:16], "ko": text + "\n\n(번역)"}
               for gid, text in english}
    change(entries)
    import yaml
    path = tmp_path / "ko.yml"
    path.write_text(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, english


def _message(path, english) -> str:
    with pytest.raises(TranslationError) as caught:
        check_entries(path, english, read_entries(path))
    message = str(caught.value)
    assert "\n" not in message and str(path.name) in message
    return message


LAB1 = "ch01_vanilla_rnn"


def test_a_correct_file_passes(tmp_path):
    path, english = _entries_file(tmp_path, LAB1, lambda entries: None)
    check_entries(path, english, read_entries(path))


def test_a_stale_entry_says_which_and_what_changed(tmp_path):
    path, english = _entries_file(tmp_path, LAB1, lambda e: e["md_rnn_step"].update(en="0123456789abcdef"))
    message = _message(path, english)
    assert "'md_rnn_step' is stale" in message and "0123456789abcdef" in message


def test_a_missing_entry_names_the_cell(tmp_path):
    path, english = _entries_file(tmp_path, LAB1, lambda e: e.pop("md_outro"))
    assert "no entry for cell 'md_outro'" in _message(path, english)


def test_an_extra_entry_names_itself(tmp_path):
    path, english = _entries_file(tmp_path, LAB1, lambda e: e.update(md_gone={"en": "0" * 16, "ko": "없음"}))
    assert "'md_gone' is for no instruction cell" in _message(path, english)


def test_malformed_entries_and_files_say_so(tmp_path):
    path, english = _entries_file(tmp_path, LAB1, lambda e: e["intro"].pop("en"))
    assert "'intro' is malformed" in _message(path, english)
    path.write_text("intro: [unclosed\n", encoding="utf-8")
    with pytest.raises(TranslationError, match="is not valid YAML"):
        read_entries(path)


def test_a_translation_must_keep_the_headings(tmp_path):
    path, english = _entries_file(tmp_path, LAB1, lambda e: e["md_rnn_step"].update(ko="### 한 단계\n"))
    assert "keep the same heading levels" in _message(path, english)


def test_make_labs_stops_on_a_broken_file_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from autograder.__main__ import main
    path, _ = _entries_file(tmp_path, LAB1, lambda e: e.pop("intro"))
    monkeypatch.setattr(translation, "translation_file", lambda lab, language: path)
    before = student_notebook(LAB1).read_bytes()
    assert main(["release", LAB1]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and "no entry for cell 'intro'" in error, error
    assert "Traceback" not in error and student_notebook(LAB1).read_bytes() == before


# ------------------------------------------------------------------- one grader, at intake (fast)

@needs_korean
def test_a_korean_submission_is_not_told_it_edited_its_instructions():
    english, korean = _read(student_notebook(SAMPLE)), _read(translated_notebook(SAMPLE, "ko"))
    submission = copy.deepcopy(korean)
    notes = restore_graded_cells(submission, english, given_cells(korean), translation.current_texts(SAMPLE))
    assert notes == []
    kept = submission.metadata[EDITION_KEY]
    assert kept["language"] == "ko" and kept["cells"] == dict(translatable_cells(korean))
    # graded with the English text (what nbgrader's gradebook holds)
    assert dict(translatable_cells(submission)) == dict(translatable_cells(english))


@needs_korean
def test_an_edited_korean_instruction_is_an_edit_and_its_text_is_not_kept():
    english, korean = _read(student_notebook(SAMPLE)), _read(translated_notebook(SAMPLE, "ko"))
    submission = copy.deepcopy(korean)
    grade_id, _ = translatable_cells(korean)[1]
    cell = next(c for c in submission.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    cell.source += "\n<script>alert(1)</script>"
    submission.metadata[EDITION_KEY] = {"language": "ko", "cells": {grade_id: "<script>forged</script>"}}
    notes = restore_graded_cells(submission, english, given_cells(korean), translation.current_texts(SAMPLE))
    assert notes == [f"Cell {grade_id} is not for editing but was edited; the original was restored."]
    assert grade_id not in submission.metadata[EDITION_KEY]["cells"]
    assert "forged" not in str(submission.metadata)


@needs_korean
def test_an_earlier_korean_release_is_told_its_instructor_changed_it():
    english, korean = _read(student_notebook(SAMPLE)), _read(translated_notebook(SAMPLE, "ko"))
    submission = copy.deepcopy(korean)
    grade_id, _ = translatable_cells(korean)[1]
    cell = next(c for c in submission.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    cell.source = "## 옛 번역\n"
    earlier = dict(given_cells(korean), **{grade_id: translation.digest(cell.source)})
    notes = restore_graded_cells(submission, english, earlier, translation.current_texts(SAMPLE))
    assert notes == [f"Cell {grade_id} was changed by your instructor after your copy of the lab was released; "
                     "the current version was graded."]


# ------------------------------------------------------------------- one grader, graded (the class run)

def _korean_graded(graded):
    from conftest import lab_results
    # every Korean lab in the class run (GRADED_LABS may narrow it while working on one lab)
    return [lab for lab in KOREAN_LABS if lab in graded["labs"] and "ko-solution" in lab_results(graded, lab)]


@needs_korean
def test_a_korean_submission_scores_what_the_english_one_scores(graded):
    from conftest import lab_results, points
    labs = _korean_graded(graded)
    assert labs, "the class run graded no Korean submission"
    for lab in labs:
        results = lab_results(graded, lab)
        english, korean = results["solution"], results["ko-solution"]
        assert points(korean) == points(english) and korean.score == english.score == english.max_score, lab
        assert (korean.status, korean.max_score, korean.manual_max_score) == \
            (english.status, english.max_score, english.manual_max_score)
        assert not [note for note in korean.notes if "edit" in note or "changed by your instructor" in note
                    or "differs from the current release" in note], korean.notes


@needs_korean
def test_an_untouched_korean_release_scores_zero(graded):
    from conftest import lab_results
    for lab in _korean_graded(graded):
        result = lab_results(graded, lab)["ko-untouched"]
        assert result.score == 0 and result.submitted == "untouched", (lab, result.notes)
        assert not [note for note in result.notes if "edit" in note], result.notes


@needs_korean
def test_a_korean_submission_is_in_the_same_gradebook_and_csv(graded):
    import csv
    rows = list(csv.DictReader((graded["out"] / "grades.csv").open(encoding="utf-8")))
    for lab in _korean_graded(graded):
        labs_of = {(row["student_id"], row["lab"]) for row in rows}
        assert ("ko-solution", lab) in labs_of and ("solution", lab) in labs_of


@needs_korean
def test_a_korean_feedback_page_shows_the_korean_instructions(graded):
    for lab in _korean_graded(graded):
        korean = translatable_cells(_read(translated_notebook(lab, "ko")))
        heading = next(line for line in korean[0][1].splitlines() if line.startswith("# "))[2:].strip()
        page = (graded["out"] / "feedback" / "ko-solution" / lab / f"{lab}.html").read_text(encoding="utf-8")
        assert heading in page and "<script" not in page
        english_page = (graded["out"] / "feedback" / "solution" / lab / f"{lab}.html").read_text(encoding="utf-8")
        assert heading not in english_page


HANGUL = re.compile(r"[\uac00-\ud7a3]")


@needs_korean
def test_a_korean_mistake_loses_what_the_english_one_loses_and_is_told_in_korean(graded):
    """The lab's first mistake fixture, made in the Korean release: the same points per test as
    in the English release, and the hidden tests' messages in Korean (the grader runs them in the
    submission's language), the English submission's without Hangul."""
    from conftest import FIXTURES, lab_results, points
    for lab in _korean_graded(graded):
        results = lab_results(graded, lab)
        if "ko-mistake" not in results:
            continue
        first = min((FIXTURES / lab).glob("*.py")).stem
        english, korean = results[f"mistake-{first}"], results["ko-mistake"]
        assert points(korean) == points(english) and korean.score < korean.max_score, (lab, first)
        failed = {test.grade_id: test.message for test in english.tests if test.score < test.max_score}
        told = {test.grade_id: test.message for test in korean.tests if test.grade_id in failed}
        assert failed and not any(HANGUL.search(message) for message in failed.values()), failed
        assert all(HANGUL.search(message) for message in told.values()), (lab, told)
