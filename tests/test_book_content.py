"""Quick checks of the book's text that do not need a build.

They catch what a full Sphinx build does not: a seed term missing from the glossary, a
glossary entry without its Korean (or English) term, a bibliography key that drifted,
and lab solutions leaking into the book.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from autograder.course import lab_names, source_notebook

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
HANGUL = re.compile(r"[\uac00-\ud7a3]")

# Every term of the seed lecture note, as the note writes it (lower case), and the
# glossary term that teaches it.
SEED_TERMS = {
    "vanilla rnn": "vanilla RNN",
    "parameter": "parameter",
    "단기 메모리": "short-term memory",
    "attention": "attention",
    "lstm": "LSTM",
    "gru": "GRU",
    "sequence": "sequence",
    "seq 2 seq": "sequence-to-sequence (seq2seq)",
    "번역": "translation",
    "context vector": "context vector",
    "input token": "input token",
    "벡터 space": "vector space",
    "frame": "frame",
    "encoder": "encoder",
    "decoder": "decoder",
    "시간축": "time axis",
    "</s>": "end of sentence",
    "information bottleneck": "information bottleneck",
    "fixed size hidden state": "fixed-size hidden state",
    "hidden state": "hidden state",
    "시점": "time step",
    "dot product": "dot product",
    "내적": "dot product",
    "cosine similarity": "cosine similarity",
    "가중치": "attention weight",
    "hidden layer": "hidden layer",
    "node": "node",
    "attention distribution": "attention distribution",
    "시계열": "time series",
    "linear attention": "linear attention",
    "image": "image captioning",
    "query": "query",
    "key": "key",
    "value": "value",
    "weighted sum": "weighted sum",
    "self-attention": "self-attention",
    "autoregressive": "autoregressive",
    "multi-head attention": "multi-head attention",
    "transformer": "Transformer",
    "feed forward neural net": "feed-forward neural network",
    "음성인식": "speech recognition",
}

BIB_KEYS = {"elman1990", "bengio1994", "pascanu2013", "sutskever2014", "bahdanau2015",
            "luong2015", "vaswani2017", "chan2016las", "graves2006ctc", "cho2014gru",
            "hochreiter1997lstm", "werbos1990", "chorowski2015", "xu2015"}

# Functions a lab asks students to write; the book must never define them.
# every graded code answer of every lab: the book must not define any of them
LAB_FUNCTIONS = {cell.metadata.nbgrader["grade_id"]
                 for lab in lab_names()
                 for cell in nbformat.read(source_notebook(lab), as_version=4).cells
                 if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")}


def _seed_text() -> str:
    seeds = sorted((ROOT.parent / "shared" / "seed").glob("*.txt"))
    if not seeds:
        pytest.skip("the seed lecture note is not available here")
    return "\n".join(p.read_text(encoding="utf-8") for p in seeds).lower()


def glossary_entries() -> list[tuple[list[str], str]]:
    """(term lines, definition) for each entry of book/glossary.md's glossary directive."""
    text = (BOOK / "glossary.md").read_text(encoding="utf-8")
    body = re.search(r"```\{glossary\}\n(.*?)\n```", text, re.S).group(1)
    entries = []
    for block in re.split(r"\n\s*\n", body):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines or lines[0].startswith(":"):
            continue
        terms = [line.strip() for line in lines if not line.startswith((" ", "\t"))]
        definition = " ".join(line.strip() for line in lines if line.startswith((" ", "\t")))
        entries.append((terms, definition))
    return entries


def test_every_glossary_entry_pairs_english_and_korean():
    entries = glossary_entries()
    assert len(entries) >= 40
    for terms, definition in entries:
        assert any(not HANGUL.search(t) for t in terms), f"{terms}: no English term"
        assert any(HANGUL.search(t) for t in terms), f"{terms}: no Korean term"
        assert definition, f"{terms}: no definition"


def test_glossary_terms_are_unique():
    seen = [t.lower() for terms, _ in glossary_entries() for t in terms]
    assert len(seen) == len(set(seen)), sorted(t for t in seen if seen.count(t) > 1)


def test_every_seed_term_is_in_the_glossary():
    seed = _seed_text()
    english = {t.lower() for terms, _ in glossary_entries() for t in terms}
    for phrase, term in SEED_TERMS.items():
        assert phrase in seed, f"{phrase!r} is not in the seed any more; update SEED_TERMS"
        assert term.lower() in english, f"seed term {phrase!r}: glossary lacks {term!r}"


def test_term_roles_point_at_glossary_terms():
    terms = {t.lower() for ts, _ in glossary_entries() for t in ts}
    for page in BOOK.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        text = re.sub(r"``.*?``", "", text)  # the glossary shows the syntax as code
        for ref in re.findall(r"\{term\}`([^`]+)`", text):
            target = re.search(r"<([^>]+)>$", ref)
            target = (target.group(1) if target else ref).strip().lower()
            assert target in terms, f"{page.name}: {{term}} {ref!r} is not in the glossary"


def test_bibliography_keys_and_citations():
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    assert keys >= BIB_KEYS
    cited = set()
    for page in BOOK.glob("*.md"):
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text(encoding="utf-8")):
            for key in group.split(","):
                assert key.strip() in keys, f"{page.name} cites unknown key {key!r}"
                cited.add(key.strip())
    assert keys <= cited, f"entries no page cites: {sorted(keys - cited)}"


def _code_cells(page: Path) -> list[str]:
    return re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def test_book_does_not_define_lab_functions():
    for page in BOOK.glob("*.md"):
        for cell in _code_cells(page):
            source = "\n".join(l for l in cell.splitlines() if not l.lstrip().startswith("%"))
            defined = {node.name for node in ast.walk(ast.parse(source))
                       if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
            leaked = defined & LAB_FUNCTIONS
            assert not leaked, f"{page.name} defines lab function(s) {sorted(leaked)}"


def test_chapter_one_teaches_the_seed_points():
    text = (BOOK / "ch01_vanilla_rnn.md").read_text(encoding="utf-8")
    assert text.startswith("---\njupytext:")
    for quote in ["3개의 {term}`parameter`", "Wxh", "Whh", "Who", "단기", "해결책) attention",
                  "길이가 다른 sequence의 변환이 불가능함", "해결책) Seq 2 Seq", "번역"]:
        assert quote in text, f"chapter 1 does not quote {quote!r}"
    for key in ["elman1990", "bengio1994", "pascanu2013"]:
        assert key in text
