"""A lab in another language: ``solutions/<lab>/ko.yml`` turned into the Korean release's source.

The Korean release (``labs/ko/<lab>/<lab>.ipynb``) is the English instructor notebook with the
text of its instruction cells (markdown cells with an nbgrader ``grade_id`` that are not
answers) replaced by the Korean in ``ko.yml``, one first code cell that switches the
self-checks to Korean, and the notebook's language in its metadata. Everything else (code
cells, grade_ids, points, solution and hidden-test regions) is the English notebook's, so
nbgrader generates it as it generates the English one and one grader grades both.

``ko.yml`` holds, per grade_id, in notebook order, ``en``: the first 16 hex digits of the
sha256 of the English cell it translates, and ``ko``: the Korean text. Each step below is a
function; :func:`translated_source` runs them. A problem with the file is a
:class:`TranslationError` of one line that names the file and the cell.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import re
from pathlib import Path

import nbformat
import yaml
from nbformat.v4 import new_code_cell

from .course import LABS, SOLUTIONS

LANGUAGES = ("ko",)                   # the languages a lab may be translated into, besides English
LANGUAGE_KEY = "course_language"      # notebook metadata of a translated release: its language
SWITCH = {"ko": '# 이 셀을 먼저 실행하세요: 이제부터 자가 점검(self-check)이 한국어로 말합니다.\n'
                'from speechcourse.language import use\n'
                'use("ko")'}
HEADING = re.compile(r"^(#{1,6})\s", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


class TranslationError(Exception):
    """A translation file that cannot be used; the message is one line."""


def digest(text: str) -> str:
    """The fingerprint ``en:`` records: the first 16 hex digits of the sha256 of the English text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def translation_file(lab: str, language: str) -> Path:
    return SOLUTIONS / lab / f"{language}.yml"


def translated_notebook(lab: str, language: str) -> Path:
    """Where the release in ``language`` is committed: ``labs/<language>/<lab>/<lab>.ipynb``."""
    return LABS / language / lab / f"{lab}.ipynb"


def languages(lab: str) -> list[str]:
    """The languages ``lab`` has a translation file for."""
    return [language for language in LANGUAGES if translation_file(lab, language).is_file()]


def translatable_cells(notebook) -> list[tuple[str, str]]:
    """(grade_id, English text) of each instruction cell, in notebook order: a markdown cell with a
    grade_id that is not an answer (answers stay "YOUR ANSWER HERE" in every language)."""
    cells = []
    for cell in notebook.cells:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "markdown" and "grade_id" in nbgrader and not nbgrader.get("solution"):
            cells.append((nbgrader["grade_id"], cell.source))
    return cells


def read_entries(path: Path) -> dict[str, dict[str, str]]:
    """grade_id -> {"en": digest, "ko": text} as the file holds them, in its order; malformed is an error."""
    where = path.relative_to(SOLUTIONS.parent) if path.is_relative_to(SOLUTIONS.parent) else path
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise TranslationError(f"{where}: cannot be read ({type(error).__name__})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise TranslationError(f"{where}: is not valid YAML{line}") from None
    if not isinstance(data, dict) or not data:
        raise TranslationError(f"{where}: expected a mapping of grade_id to {{en, ko}}, one per instruction cell")
    entries = {}
    for grade_id, entry in data.items():
        if not isinstance(entry, dict) or set(entry) != {"en", "ko"} \
                or not isinstance(entry["en"], str) or not isinstance(entry["ko"], str) \
                or not re.fullmatch(r"[0-9a-f]{16}", entry["en"]) or not entry["ko"].strip():
            raise TranslationError(f"{where}: entry {grade_id!r} is malformed: it needs exactly en "
                                   f"(16 hex digits of the English cell's sha256) and ko (the Korean text)")
        entries[str(grade_id)] = entry
    return entries


def _headings(text: str) -> list[int]:
    """The heading levels of a markdown text, in order (code fences skipped)."""
    return [len(match.group(1)) for match in HEADING.finditer(FENCE.sub("", text))]


def check_entries(path: Path, english: list[tuple[str, str]], entries: dict[str, dict[str, str]]) -> None:
    """One entry per instruction cell, in order, each of the current English text, same headings."""
    where = path.relative_to(SOLUTIONS.parent) if path.is_relative_to(SOLUTIONS.parent) else path
    wanted = [grade_id for grade_id, _ in english]
    for grade_id in wanted:
        if grade_id not in entries:
            raise TranslationError(f"{where}: no entry for cell {grade_id!r} (en: {digest(dict(english)[grade_id])})")
    extra = [grade_id for grade_id in entries if grade_id not in wanted]
    if extra:
        raise TranslationError(f"{where}: entry {extra[0]!r} is for no instruction cell of the English notebook")
    if list(entries) != wanted:
        raise TranslationError(f"{where}: the entries are not in the notebook's order ({', '.join(wanted)})")
    for grade_id, text in english:
        if entries[grade_id]["en"] != digest(text):
            raise TranslationError(f"{where}: entry {grade_id!r} is stale: it translates en {entries[grade_id]['en']}, "
                                   f"the English cell is now {digest(text)}; update the Korean and its en")
        if _headings(entries[grade_id]["ko"]) != _headings(text):
            raise TranslationError(f"{where}: entry {grade_id!r} has headings {_headings(entries[grade_id]['ko'])}, "
                                   f"the English cell {_headings(text)}; keep the same heading levels")


def translations(lab: str, language: str, source=None) -> dict[str, str]:
    """grade_id -> translated text of ``lab``'s instruction cells, checked against the English notebook."""
    from .course import source_notebook
    path = translation_file(lab, language)
    source = source if source is not None else nbformat.read(source_notebook(lab), as_version=4)
    entries = read_entries(path)
    check_entries(path, translatable_cells(source), entries)
    return {grade_id: entry[language] for grade_id, entry in entries.items()}


def translated_source(lab: str, language: str, source=None):
    """The instructor notebook of ``lab`` in ``language``: what nbgrader generates the release from."""
    from .course import source_notebook
    source = source if source is not None else nbformat.read(source_notebook(lab), as_version=4)
    texts = translations(lab, language, source)
    notebook = copy.deepcopy(source)
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "markdown" and grade_id in texts:
            cell.source = texts[grade_id].rstrip("\n")
    switch = new_code_cell(SWITCH[language])
    switch.id = f"language-{language}"          # fixed, so that the release is the same every time
    notebook.cells.insert(0, switch)
    notebook.metadata[LANGUAGE_KEY] = language
    return notebook


@functools.lru_cache(maxsize=64)
def _current(lab: str, language: str, stamp: tuple) -> dict[str, str]:
    try:
        return {grade_id: text.rstrip("\n") for grade_id, text in translations(lab, language).items()}
    except (TranslationError, OSError):
        return {}


def current_texts(lab: str) -> dict[str, dict[str, str]]:
    """language -> grade_id -> the text of that instruction cell in today's release in that language
    ({} for a language whose file is broken: then nothing counts as that release's text)."""
    from .course import source_notebook
    texts = {}
    for language in languages(lab):
        stamp = tuple(path.stat().st_mtime_ns for path in (translation_file(lab, language), source_notebook(lab)))
        texts[language] = _current(lab, language, stamp)
    return texts
