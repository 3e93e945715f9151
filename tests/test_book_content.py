"""Quick checks of the book's text that do not need a build.

They catch what a full Sphinx build does not: a seed term missing from the glossary, a
glossary entry without its Korean (or English) term, a bibliography key that drifted,
and lab solutions leaking into the book.
"""
from __future__ import annotations

import ast
import re
import unicodedata
from pathlib import Path

import nbformat
import pytest
import yaml

from autograder.course import lab_names, source_notebook

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
KOREAN = BOOK / "ko"                      # the Korean edition: twins of pages of book/ (DEVELOPERS.md)
PAGES = sorted([*BOOK.glob("*.md"), *KOREAN.glob("*.md")])
# every chapter, English and Korean, as its path under book/ ("ch00_....md", "ko/ch00_....md")
CHAPTERS = sorted(str(p.relative_to(BOOK)) for p in [*BOOK.glob("ch[0-9][0-9]_*.md"), *KOREAN.glob("ch[0-9][0-9]_*.md")])
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


GLOSSARIES = {"en": BOOK / "glossary.md", "ko": KOREAN / "glossary.md"}
# the first line of an entry's definition: its term in the other language, linked ("({term}`어텐션`)")
PARTNER = re.compile(r"\A\(\{term\}`([^`<>]+)`\)(?: |\Z)")


def glossary_entries(language: str = "en", text: str | None = None) -> list[tuple[list[str], str]]:
    """(term lines, definition) for each entry of a glossary directive: book/glossary.md's
    (English terms) or book/ko/glossary.md's (Korean terms)."""
    text = GLOSSARIES[language].read_text(encoding="utf-8") if text is None else text
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


def all_glossary_terms() -> set[str]:
    """Every term a {term} role may name (lower case): Sphinx's glossary terms are site-wide."""
    return {t.lower() for language in GLOSSARIES for terms, _ in glossary_entries(language) for t in terms}


def glossary_pairing_problems(english_text: str, korean_text: str) -> list[str]:
    """Why book/glossary.md (English terms) and book/ko/glossary.md (Korean terms) are not one
    glossary in two languages: one sentence per problem. Each English entry has one English term
    line, and its definition starts with "({term}`<Korean term>`)"; each Korean entry has one
    Korean term line, its definition starting with "({term}`<English term>`)" and then in Korean;
    the two name each other, one to one."""
    problems = []
    partners = {}
    for language, text in (("en", english_text), ("ko", korean_text)):
        other = "ko" if language == "en" else "en"
        partners[language] = {}
        for terms, definition in glossary_entries(language, text):
            if len(terms) != 1:
                problems.append(f"{language}: {terms}: an entry has one term line, its own language's")
                continue
            term = terms[0]
            if bool(HANGUL.search(term)) != (language == "ko"):
                problems.append(f"{language}: {term!r} is not a{' Korean' if language == 'ko' else 'n English'} term")
            partner = PARTNER.match(definition)
            if not partner:
                problems.append(f"{language}: {term!r}: the definition does not start with its {other} term, "
                                f"as ({{term}}`...`)")
                continue
            rest = definition[partner.end():]
            if not rest.strip():
                problems.append(f"{language}: {term!r}: no definition")
            elif language == "ko" and not HANGUL.search(rest):
                problems.append(f"ko: {term!r}: the definition is not in Korean")
            if term in partners[language]:
                problems.append(f"{language}: {term!r} is defined twice")
            partners[language][term] = partner.group(1).strip()
    en, ko = partners["en"], partners.get("ko", {})
    for term, korean in en.items():
        if korean not in ko:
            problems.append(f"en: {term!r} names {korean!r}, which the Korean glossary lacks")
        elif ko[korean] != term:
            problems.append(f"en: {term!r} names {korean!r}, whose Korean entry names {ko[korean]!r}")
    for term, english in ko.items():
        if english not in en:
            problems.append(f"ko: {term!r} names {english!r}, which the English glossary lacks")
        elif en[english] != term:
            problems.append(f"ko: {term!r} names {english!r}, whose English entry names {en[english]!r}")
    return problems


def test_every_glossary_entry_pairs_english_and_korean():
    """Every English entry has exactly one Korean entry and the other way round, each naming the
    other in its definition's first line; a Korean entry's definition is in Korean."""
    texts = {language: path.read_text(encoding="utf-8") for language, path in GLOSSARIES.items()}
    assert len(glossary_entries("en")) >= 40
    assert len(glossary_entries("ko")) == len(glossary_entries("en"))
    problems = glossary_pairing_problems(texts["en"], texts["ko"])
    assert not problems, "the two glossaries do not pair: " + "; ".join(problems)


def test_glossary_pairing_check_sees_a_broken_glossary():
    """The check above, on glossaries broken six ways."""
    en, ko = (path.read_text(encoding="utf-8") for path in GLOSSARIES.values())
    assert glossary_pairing_problems(en, ko) == []
    broken = {
        "no Korean entry": (en, ko.replace("어텐션\n  ({term}`attention`)\n", "어텐션 맵\n  ({term}`attention`)\n")),
        "no English entry": (en.replace("attention\n  ({term}`어텐션`)\n", "attention map\n  ({term}`어텐션`)\n"), ko),
        "names another": (en, ko.replace("  ({term}`attention`)\n", "  ({term}`attention weight`)\n", 1)),
        "no link back": (en, ko.replace("  ({term}`attention`)\n", "  (attention)\n", 1)),
        "two term lines": (en.replace("\nattention\n", "\nattention\n어텐션\n", 1), ko),
        "not in Korean": (en, re.sub(r"(\n어텐션\n  \(\{term\}`attention`\)\n)(  .*\n)+", r"\1  A way for a decoder.\n", ko)),
    }
    for what, (english, korean) in broken.items():
        assert (english, korean) != (en, ko), what
        assert glossary_pairing_problems(english, korean), f"{what}: not seen"


def test_glossary_terms_are_unique():
    """Glossary terms are site-wide in Sphinx: no term twice, in one glossary or across the two."""
    seen = [t.lower() for language in GLOSSARIES for terms, _ in glossary_entries(language) for t in terms]
    assert len(seen) == len(set(seen)), sorted({t for t in seen if seen.count(t) > 1})


# Terms chapters 3-5 teach beyond the seed (issue 20), with the Korean term the glossary gives each
TAUGHT_TERMS = {
    "CTC (connectionist temporal classification)": "연결주의 시간 분류",
    "label smoothing": "레이블 스무딩",
    "cross-attention": "교차 어텐션",
    "location-aware attention": "위치 인식 어텐션",
    "residual connection": "잔차 연결",
    "layer normalisation": "층 정규화",
    "key/value cache": "키/값 캐시",
}


def test_glossary_has_the_terms_chapters_three_to_five_teach():
    entries = {terms[0]: definition for terms, definition in glossary_entries("en")}
    korean = {terms[0]: definition for terms, definition in glossary_entries("ko")}
    for english, term in TAUGHT_TERMS.items():
        assert english in entries, f"the glossary lacks {english!r}"
        definition = entries[english]
        assert definition.startswith(f"({{term}}`{term}`)"), f"{english!r}: the Korean term {term!r} is missing"
        assert re.search(r"Chapters? \d|\{doc\}`ch\d\d_", definition), f"{english!r}: no chapter named"
        assert term in korean, f"the Korean glossary lacks {term!r}"
        assert re.search(r"\d장|\{doc\}`ch\d\d_", korean[term]), f"{term!r}: no chapter named"


def glossary_key(term: str) -> str:
    """The key Sphinx's `:sorted:` glossary orders by (sphinx.transforms.GlossarySorter)."""
    return unicodedata.normalize("NFD", term.lower())


@pytest.mark.parametrize("language", GLOSSARIES)
def test_glossary_source_is_in_the_order_the_page_shows(language):
    """`:sorted:` orders the rendered glossary; the source keeps that order too, so that a new
    entry goes where a reader (of the page or of the file) looks for it. The Korean glossary is
    in Korean order (NFD jamo: ㄱ, ㄲ, ㄴ, ...)."""
    text = GLOSSARIES[language].read_text(encoding="utf-8")
    assert re.search(r"```\{glossary\}\n:sorted:\n", text), f"the {language} glossary is no longer :sorted:"
    first = [terms[0] for terms, _ in glossary_entries(language)]
    misplaced = [(a, b) for a, b in zip(first, first[1:]) if glossary_key(a) > glossary_key(b)]
    assert not misplaced, f"{language} glossary entries out of order: " + "; ".join(f"{a!r} before {b!r}" for a, b in misplaced)


def test_every_seed_term_is_in_the_glossary():
    """Every seed term is taught by an English glossary entry (whose Korean partner the pairing
    test checks)."""
    seed = _seed_text()
    english = {t.lower() for terms, _ in glossary_entries("en") for t in terms}
    for phrase, term in SEED_TERMS.items():
        assert phrase in seed, f"{phrase!r} is not in the seed any more; update SEED_TERMS"
        assert term.lower() in english, f"seed term {phrase!r}: glossary lacks {term!r}"


def _quoted_letters(text: str) -> str:
    """Text as a quote is compared with the note: MyST roles and backticks unwrapped, and
    whitespace and the note's list punctuation (* : . , ( ) - → =) dropped, since a quote
    joins the note's lines and bullets into one sentence."""
    text = re.sub(r"\{\w+\}`([^`<]*)(?:<[^>]*>)?`", r"\1", text).replace("`", "")
    return re.sub(r"[\s*:.,()\-→=]", "", text)


def test_the_notes_korean_quoted_as_it_is_written():
    """Every quotation with Korean in it (a page of the book or a lab's instructions) is the
    note's own words, in the note's order; "…" marks what a quote leaves out. A paraphrase in
    quotation marks (Lab 5 once quoted "그것이 다시 입력으로 들어가서 두번째 단어에 영향을 줌",
    which the note never says) fails. The Korean pages and the Korean labs' instructions
    too: their own phrases in quotation marks use ‘single’ ones."""
    seed = _quoted_letters(_seed_text())
    # prose only: not the code cells and raw HTML blocks (a Korean page's aria-label="...")
    unquotable = re.compile(r"^```\{(?:code-cell|raw)\}.*?^```\s*$", re.S | re.M)
    texts = {str(page.relative_to(BOOK)): unquotable.sub("", page.read_text(encoding="utf-8")) for page in PAGES}
    for lab in lab_names():
        notebook = nbformat.read(source_notebook(lab), as_version=4)
        texts[lab] = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
        korean = source_notebook(lab).parent / "ko.yml"      # the Korean release's instructions
        if korean.is_file():
            texts[f"{lab}/ko.yml"] = "\n".join(str(entry.get("ko", "")) for entry in
                                               (yaml.safe_load(korean.read_text(encoding="utf-8")) or {}).values())
    quote = re.compile(r'["“]([^"”\n]*(?:\n[^"”\n]+)*)["”]')
    checked, wrong = 0, []
    for name, text in texts.items():
        for match in quote.finditer(text):
            words = match.group(1)
            if not re.search(r"[\uac00-\ud7a3]", words) or len(words) > 300:
                continue
            checked += 1
            at = 0
            for piece in filter(None, (_quoted_letters(p).lower() for p in re.split(r"…|\.\.\.", words))):
                at = seed.find(piece, at)
                if at < 0:
                    wrong.append(f"{name}: {words[:80]!r}")
                    break
                at += len(piece)
    assert checked >= 20, f"only {checked} Korean quotations found: is the pattern still right?"
    assert not wrong, "quoted as the note's words, but the note does not say them: " + "; ".join(wrong)


def term_role_problems(page: str, text: str, terms: dict[str, str]) -> list[str]:
    """The {term} roles of a page that do not resolve, or lead to the other language's glossary:
    an English page (book/<name>.md) links English terms, a Korean page (book/ko/<name>.md)
    Korean ones; only each glossary's first line of a definition names its partner across.
    ``terms``: every glossary term, lower case, with its language."""
    korean = page.startswith("ko/")
    text = re.sub(r"``.*?``", "", text)  # the glossary shows the syntax as code
    problems = []
    if Path(page).name == "glossary.md":     # a definition's first line names the other language's term
        partner = re.compile(r"^  \(\{term\}`([^`]+)`\)$", re.M)
        problems += [f"{page}: {{term}} {ref!r} is not in the glossary"
                     for ref in partner.findall(text) if ref.strip().lower() not in terms]
        text = partner.sub("", text)
    for ref in re.findall(r"\{term\}`([^`]+)`", text):
        target = re.search(r"<([^>]+)>$", ref)
        target = (target.group(1) if target else ref).strip().lower()
        if target not in terms:
            problems.append(f"{page}: {{term}} {ref!r} is not in the glossary")
        elif terms[target] != ("ko" if korean else "en"):
            problems.append(f"{page}: {{term}} {ref!r} leads to the {'English' if korean else 'Korean'} glossary")
    return problems


def test_term_roles_point_at_glossary_terms():
    terms = {t.lower(): language for language in GLOSSARIES for ts, _ in glossary_entries(language) for t in ts}
    problems = [problem for page in PAGES
                for problem in term_role_problems(str(page.relative_to(BOOK)), page.read_text(encoding="utf-8"), terms)]
    assert not problems, "; ".join(problems)
    # the check itself: an unknown term, and a term of the other language's glossary
    assert term_role_problems("ch03_attention.md", "{term}`attention map`", terms)
    assert term_role_problems("ko/ch03_attention.md", "{term}`attention`", terms)
    assert term_role_problems("ch03_attention.md", "{term}`어텐션`", terms)
    assert not term_role_problems("ko/ch03_attention.md", "{term}`어텐션` and {term}`자기 어텐션`", terms)


def test_bibliography_keys_and_citations():
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    assert keys >= BIB_KEYS
    cited = set()
    for page in PAGES:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text(encoding="utf-8")):
            for key in group.split(","):
                assert key.strip() in keys, f"{page.name} cites unknown key {key!r}"
                cited.add(key.strip())
    assert keys <= cited, f"entries no page cites: {sorted(keys - cited)}"


def _code_cells(page: Path) -> list[str]:
    """The source of each code cell, without its YAML header (``---`` ... ``---``)."""
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    cells = [cell[4:].partition("\n---\n")[2] if cell.startswith("---\n") else cell for cell in cells]
    return [re.sub(r"\A(:\w[\w-]*:.*\n)+", "", cell) for cell in cells]        # ":tags: [...]" lines


def test_book_does_not_define_lab_functions():
    for page in PAGES:
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


# ------------------------------------------------------------ numbers, figures, backslashes

RESULTS = BOOK / "results"
# A number in a chapter's prose: a fraction (0.92), a value with two or more decimals
# (1.04, 12.25) or a percentage with decimals (12.5%). Counts, sizes and section numbers
# (2.5, 40, 16,000) are definitions, not results.
RESULT_NUMBER = re.compile(r"(?<![\w.$\\])(0\.\d+|\d+\.\d{2,}|\d+\.\d+\s?%)(?![\w.]*\d)")


def _prose(text: str) -> str:
    """A chapter's text without code cells, math, inline code, roles and directives."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    text = re.sub(r"(?<!\\)\$[^$\n]+\$", "", text)
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", "", text)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"^#.*$", "", text, flags=re.M)                      # headings: "## 0.4 ..."
    text = re.sub(r"(?i)\b(section|chapter|§)\s*\d+(\.\d+)*", "", text)   # "section 2.5"
    text = re.sub(r"\d+(\.\d+)*\s*(절|장)", "", text)                      # "2.5절", "3장"
    return text


def _committed_numbers(files=None) -> set[str]:
    """Every number in the given result files (default: all of book/results), as prose could round it."""
    import json

    def walk(value):
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            yield float(value)
        elif isinstance(value, dict):
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v)

    numbers = set()
    for path in (RESULTS.glob("*.json") if files is None else files):
        for value in walk(json.loads(path.read_text())):
            for digits in range(1, 5):
                numbers.add(f"{value:.{digits}f}")
                numbers.add(f"{100 * value:.{digits}f}")
    return numbers


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_states_no_number_that_no_committed_result_holds(chapter):
    """A measured number in a chapter is glued from a committed result, never typed.

    The page loads book/results/<name>.json and glues each number into the prose
    ({glue:text}`name:.2f`); a number typed into the prose must at least be one that a
    committed result file the page loads holds, so a claim without a committed run
    cannot hide there.
    """
    text = (BOOK / chapter).read_text(encoding="utf-8")
    loaded = [RESULTS / name for name in sorted(set(re.findall(r"results/([\w.-]+\.json)", text)))
              if (RESULTS / name).is_file()]
    committed = _committed_numbers(loaded)
    unbacked = sorted({m.group(1).rstrip("% ") for m in RESULT_NUMBER.finditer(_prose(text))}
                      - committed)
    assert not unbacked, (f"{chapter} states {unbacked} in its prose, which no result file it "
                          f"loads ({[p.name for p in loaded]}) holds: glue the number from the "
                          f"result that measured it")


def _figure_cells(page: Path):
    """(metadata text, source) of each code cell of a chapter that draws a figure."""
    for match in re.finditer(r"```\{code-cell\}[^\n]*\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
        cell = match.group(1)
        header = ""
        if cell.startswith("---\n"):
            header, _, cell = cell[4:].partition("\n---\n")
        if "plt.show()" in cell:
            yield header, cell


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_figure_has_a_numbered_caption(chapter):
    """A cell that draws a figure carries MyST-NB figure metadata: a caption and a name."""
    for header, cell in _figure_cells(BOOK / chapter):
        first = cell.strip().splitlines()[0]
        assert "figure:" in header and "caption:" in header and "name:" in header, (
            f"{chapter}: the figure drawn by the cell starting {first!r} has no numbered "
            f"caption (mystnb: figure: caption/name metadata)")


def _lab_markdown() -> list[tuple[str, str]]:
    from autograder.course import student_notebook
    return [(lab, cell.source) for lab in lab_names() if student_notebook(lab).exists()
            for cell in nbformat.read(student_notebook(lab), as_version=4).cells
            if cell.cell_type == "markdown"]


def test_no_raw_backslash_escape_in_text_mode_math():
    r"""``\texttt{dh\_next}`` shows its backslash in MathJax; ``\mathtt{dh\_next}`` does not."""
    texts = [(page.name, page.read_text(encoding="utf-8")) for page in PAGES]
    for name, text in texts + _lab_markdown():
        for group in re.findall(r"\\(?:texttt|text|textrm|textbf|textit|mbox)\{([^{}]*)\}", text):
            assert "\\_" not in group and "\\%" not in group and "\\&" not in group, (
                f"{name}: \\text-mode group {{{group}}} would show its backslash: use \\mathtt")


# ------------------------------------------------------------ bookkeeping behind a toggle

HIDDEN = {"hide-input", "remove-input", "remove-cell"}
GLUE = {"g", "glue"}                                     # chapters glue with glue(...) or their helper g(...)
SHOWN = {"display", "Markdown", "HTML", "table"}         # tables and text built for the page
READS_RESULTS = re.compile(r"results/|\bRESULTS\b|json\.loads?\(|torch\.load\(|load_state_dict\(")


def _cells_with_tags(page: Path):
    """(tags, source) of each code cell of a page, tags from ``:tags:`` or the YAML header."""
    for cell in re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
        header = ""
        if cell.startswith("---\n"):
            header, _, cell = cell[4:].partition("\n---\n")
        options = re.match(r"(:\w[\w-]*:.*\n)*", cell).group(0)
        tags = {t.strip() for group in re.findall(r"tags:\s*\[([^\]]*)\]", header + options)
                for t in group.split(",")}
        yield tags, cell[len(options):]


def _bookkeeping_counts(source: str) -> tuple[int, int, int]:
    """(code lines, lines of glue calls, lines of bookkeeping) of a cell's source.

    Bookkeeping is gluing, importing, IPython magics, reading a committed result and building
    a table or text for the page; a call counts for every line it spans.
    """
    lines = dict(enumerate(source.splitlines(), 1))
    code = {i for i, line in lines.items() if line.strip() and not line.lstrip().startswith("#")}
    magic = {i for i, line in lines.items() if line.lstrip().startswith("%")}
    glue, kept = set(), magic | {i for i, line in lines.items() if READS_RESULTS.search(line)}
    for node in ast.walk(ast.parse("\n".join("" if i in magic else line for i, line in lines.items()))):
        name = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
        if name in GLUE | SHOWN or isinstance(node, (ast.Import, ast.ImportFrom)):
            span = set(range(node.lineno, node.end_lineno + 1))
            kept |= span
            glue |= span if name in GLUE else set()
    return len(code), len(glue & code), len(kept & code)


def _bookkeeping_only(source: str) -> str | None:
    """Why a cell's code is bookkeeping that the reader should not have to read past, or None."""
    n, glue, kept = _bookkeeping_counts(source)
    if glue >= 3 and glue > n / 2:
        return f"{glue} of its {n} lines glue numbers"
    if n > 25 and kept > n / 2:
        return f"{kept} of its {n} lines import, glue, read results or build tables"
    return None


def test_bookkeeping_rule_tells_plumbing_from_teaching():
    plumbing = "\n".join(f'g("n_{i}", result["n"][{i}])' for i in range(4)) + "\nprint(result)\n"
    assert _bookkeeping_only(plumbing) == "4 of its 5 lines glue numbers"
    setup = "%matplotlib inline\n" + "import numpy\n" * 20 + 'result = json.loads(Path("results/x.json").read_text())\n' \
        + "x = 1\n" * 5
    assert _bookkeeping_only(setup) == "22 of its 27 lines import, glue, read results or build tables"
    teaching = "scores = q @ k.T\nweights = softmax(scores)\nout = weights @ v\nglue('ch_gap', 1.0, display=False)\n"
    assert _bookkeeping_only(teaching) is None


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_bookkeeping_cells_hide_their_code(chapter):
    """A cell that mostly glues numbers, or a long one made mostly of imports, glue, results
    reading and tables, hides its code (hide-input, or remove-input), as d2l hides its
    plumbing: the code a reader sees is the code that teaches."""
    for tags, source in _cells_with_tags(BOOK / chapter):
        why = _bookkeeping_only(source)
        first = next(line for line in source.splitlines() if line.strip())
        assert not why or tags & HIDDEN, (f"{chapter}: the cell starting {first!r} is bookkeeping ({why}): "
                                          f"give it :tags: [hide-input] (or remove-input)")


# ------------------------------------------------------------ the Korean edition: twins

KOREAN_GLUE = "_ko"        # a glued name's Korean variant, glued by the English page's own cell
TWIN_SUFFIX = "-ko"        # a twin's figure names and (labels)= are the English page's plus this
TWINS = sorted(p.name for p in KOREAN.glob("*.md"))
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`|```\{glue(?::\w+)?\}\s+(\S+)")
FIGURE_REF = re.compile(r"\{numref\}`(?:[^`<]*<)?([\w-]+)>?`")


def _front_matter(text: str) -> dict:
    import yaml
    return yaml.safe_load(text[4:text.index("\n---", 4)]) if text.startswith("---\n") else {}


def _code_cells_with_metadata(text: str) -> list[tuple[str, dict]]:
    """(source, metadata) of each code cell: metadata from its YAML header and ``:key:`` lines."""
    import yaml
    cells = []
    for cell in re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S):
        metadata = {}
        if cell.startswith("---\n"):
            header, _, cell = cell[4:].partition("\n---\n")
            metadata = yaml.safe_load(header) or {}
        options = re.match(r"(:\w[\w-]*:.*\n)*", cell).group(0)
        for line in options.splitlines():
            key, _, value = line[1:].partition(":")
            metadata[key] = yaml.safe_load(value)
        cells.append((cell[len(options):], metadata))
    return cells


def _outside_fences(text: str) -> str:
    """A page's text without its front matter, fenced blocks (code cells, directives) and $$ math."""
    if text.startswith("---\n"):
        text = text[text.index("\n---", 4) + 4:]
    return re.sub(r"\$\$.*?\$\$", "", re.sub(r"^(`{3,}).*?^\1\s*$", "", text, flags=re.S | re.M), flags=re.S)


def strip_korean(name: str) -> str:
    return name[:-len(KOREAN_GLUE)] if name.endswith(KOREAN_GLUE) else name


def page_skeleton(text: str, suffix: str = "") -> dict:
    """What a page and its twin must share, with the twin's ``suffix`` taken off its names.

    cells: each code cell's source and metadata, figure name and caption included (the
    execution cache hashes them: a twin translates its captions in its front matter instead);
    glue: the glued names (with their formats) the prose shows; figures: the figure names of
    the cells and of {numref}; sections: the level of each heading, in order; labels: the
    ``(name)=`` targets; front: the front matter but for the twin's ``captions``. A twin's name
    without the suffix is kept with a note, so that the mismatch shows."""
    def strip(name: str) -> str:
        return name[:-len(suffix)] if suffix and name.endswith(suffix) else (name if not suffix else f"{name} (no {suffix})")

    cells = _code_cells_with_metadata(text)
    prose = _outside_fences(text)
    figures = [cell[1]["mystnb"]["figure"]["name"] for cell in cells if "name" in cell[1].get("mystnb", {}).get("figure", {})]
    front = _front_matter(text)
    return {
        "front": {key: value for key, value in front.items() if key not in ("jupytext", "captions")},
        "captions": front.get("captions") or {},
        "cells": cells,
        # a twin may show `<name>_ko` where the English page shows `<name>`: a sentence or table
        # whose words depend on the results, made by the same cell in both languages
        "glue": sorted({strip_korean(a or b) if suffix else a or b for a, b in GLUE_ROLE.findall(text)}),
        "figure names": figures,
        "figures": sorted(set(figures) | {strip(name) for name in FIGURE_REF.findall(prose)}),
        "sections": [len(m.group(1)) for m in re.finditer(r"^(#{1,6})\s", prose, re.M)],
        "labels": [strip(name) for name in re.findall(r"^\(([\w-]+)\)=\s*$", prose, re.M)],
        # equation labels are site-wide too: a twin's are the English page's plus the suffix
        "equations": [strip(name) for name in re.findall(r"^:label:\s*([\w-]+)\s*$", text, re.M)],
        "equation refs": sorted({strip(name) for name in re.findall(r"\{eq\}`([\w-]+)`", prose)}),
    }


def twin_differences(english: str, korean: str) -> list[str]:
    """Why a Korean page is not a twin of an English page: one sentence per difference."""
    en, ko = page_skeleton(english), page_skeleton(korean, TWIN_SUFFIX)
    problems = []
    if en["front"] != ko["front"]:
        problems.append(f"the front matter differs: {en['front']} against {ko['front']}")
    for i, (a, b) in enumerate(zip(en["cells"], ko["cells"]), 1):
        if a[0] != b[0]:
            line = next(n for n, (x, y) in enumerate(zip(a[0].splitlines() + [""], b[0].splitlines() + [""]), 1) if x != y)
            problems.append(f"code cell {i} differs from the English one at its line {line}: "
                            f"{(a[0].splitlines() + [''])[line - 1]!r} against {(b[0].splitlines() + [''])[line - 1]!r}")
        elif a[1] != b[1]:
            problems.append(f"code cell {i} has other metadata (tags, figure, options): {a[1]} against {b[1]}")
    if len(en["cells"]) != len(ko["cells"]):
        problems.append(f"{len(ko['cells'])} code cells against the English page's {len(en['cells'])}")
    for what in ("glue", "figures"):
        missing, extra = sorted(set(en[what]) - set(ko[what])), sorted(set(ko[what]) - set(en[what]))
        if missing or extra:
            said = ([f"the English page has {missing} that the twin lacks"] if missing else []) + \
                   ([f"the twin has {extra} that the English page lacks"] if extra else [])
            problems.append(f"{what}: " + ", ".join(said)
                            + (f" (a twin's {{numref}} names end in {TWIN_SUFFIX!r})" if what == "figures" else ""))
    untranslated = [name for name in en["figure names"] if not HANGUL.search(str(ko["captions"].get(name, "")))]
    stray = sorted(set(ko["captions"]) - set(en["figure names"]))
    if untranslated or stray:
        problems.append("captions: the front matter's captions: " + ", ".join(
            ([f"no Korean one for {untranslated}"] if untranslated else []) +
            ([f"one for {stray}, which the page does not draw"] if stray else [])))
    if en["sections"] != ko["sections"]:
        problems.append(f"its headings (levels {ko['sections']}) are not the English page's ({en['sections']}): "
                        f"the language switch maps sections by their order")
    for what in ("equations", "equation refs"):
        if en[what] != ko[what]:
            problems.append(f"its {what} {ko[what]} are not the English page's {en[what]} plus {TWIN_SUFFIX!r}")
    if en["labels"] != ko["labels"]:
        problems.append(f"its (labels)= {ko['labels']} are not the English page's {en['labels']} plus {TWIN_SUFFIX!r}")
    return problems


@pytest.mark.parametrize("page", TWINS)
def test_korean_twin_runs_the_same_code_and_shows_the_same_results(page):
    """book/ko/<page> is the twin of book/<page>: the same code cells (source, order, tags,
    metadata; the figures' Korean captions are in its front matter, and tools/twins.py names its
    figures "<name>-ko", since figure names are site-wide labels), the same glued numbers, the
    same figures and the same sections. Change a code cell, a glue, a figure or a heading of the English page, and
    this fails until the twin has it too."""
    english = BOOK / page
    assert english.is_file(), f"book/ko/{page} has no English page book/{page} to be the twin of"
    problems = twin_differences(english.read_text(encoding="utf-8"), (KOREAN / page).read_text(encoding="utf-8"))
    assert not problems, f"book/ko/{page} is no longer a twin of book/{page}: " + "; ".join(problems)


def test_twin_check_sees_a_changed_code_cell_glue_figure_and_section():
    """The check above, on an English page changed five ways that its twin was not."""
    english = (BOOK / "ch00_waveform_to_frames.md").read_text(encoding="utf-8")
    korean = (KOREAN / "ch00_waveform_to_frames.md").read_text(encoding="utf-8")
    assert twin_differences(english, korean) == []
    changed = {
        "code cell": english.replace("glue(\"ch00_L\", L, display=False)", "glue(\"ch00_L\", L + 0, display=False)"),
        "glue": english.replace("## 0.2 Frames", "## 0.2 Frames\n\nAt {glue:text}`ch00_new`.", 1),
        "figures": english.replace("{numref}`fig-band`", "{numref}`fig-new`", 1),
        "headings": english.replace("## 0.5 Two time axes", "## 0.5 Two time axes\n\n### 0.5.1 More", 1),
        "captions": english.replace("name: fig-band\n", "name: fig-bands\n").replace("`fig-band`", "`fig-bands`"),
    }
    for what, text in changed.items():
        assert text != english, what
        problems = twin_differences(text, korean)
        # a renamed figure is also a changed cell and a changed figure name
        assert any(what in problem for problem in problems) and (len(problems) == 1 or what == "captions"), (what, problems)


def test_every_korean_twin_is_in_the_table_of_contents():
    import yaml
    def files(entries):
        for entry in entries:
            yield entry.get("file")
            yield from files(entry.get("sections", []))
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    listed = set(files([chapter for part in toc["parts"] for chapter in part["chapters"]]))
    assert {f"book/ko/{Path(page).stem}" for page in TWINS} <= listed


def _font_slices() -> set[int]:
    """Every code point some @font-face of _static/korean.css serves, its file present."""
    css = (ROOT / "_static" / "korean.css").read_text(encoding="utf-8")
    served = set()
    for src, ranges in re.findall(r"src:\s*url\(([^)]+)\).*?unicode-range:\s*([^;]+);", css, re.S):
        if not (ROOT / "_static" / src).is_file():
            continue
        for part in ranges.split(","):
            first, _, last = part.strip()[2:].partition("-")
            served.update(range(int(first, 16), int(last or first, 16) + 1))
    return served


@pytest.mark.parametrize("page", [str(p.relative_to(BOOK)) for p in PAGES if HANGUL.search(p.read_text(encoding="utf-8"))])
def test_the_korean_webfont_serves_every_syllable_a_page_uses(page):
    """The site's Noto Sans KR is cut into slices (korean.css): a syllable no slice holds would
    render as a box on a machine without a Korean font. The browser test checks the built pages."""
    used = set(HANGUL.findall((BOOK / page).read_text(encoding="utf-8")))
    missing = sorted(c for c in used if ord(c) not in _font_slices())
    assert not missing, f"book/{page} uses {len(missing)} syllables that no font slice serves: {''.join(missing[:40])}"
