"""The feedback page a student receives: made here, from the autograded notebook, and safe to open.

Everything in a submission is hostile input, so the page is built, not converted:

- Markdown is parsed by markdown-it with raw HTML **off** (``<script>`` or ``<img onerror>``
  in a written answer shows as text), and each student cell and the whole student share are
  capped first, so the parse stays linear and bounded (nbconvert's math regex is quadratic).
- Math is rendered here, offline, to MathML (``latex2mathml``): no MathJax, no CDN.
- Outputs keep what a grader needs, above all the student's plots (PNG/JPEG as ``data:``
  images; SVG only inside ``<img>``, where it cannot run scripts), and text, escaped.
  HTML outputs are shown as their text version.
- The body then goes through an allowlist sanitiser (bleach): only text, tables, links,
  ``data:`` images and MathML survive. The page carries a Content-Security-Policy that
  forbids every script and every request (``default-src 'none'``), in case anything got past.
- Host paths (the repository, the venv, scratch folders) and the host name are replaced.
- The summary names each test, its points and its message; written answers read
  "awaiting manual grading" until a person has marked them.

Entry point: :func:`write_feedback` (or :func:`render_feedback` for the HTML as a string).
"""
from __future__ import annotations

import base64
import binascii
import html
import os
import re
from pathlib import Path

import bleach
import nbformat

NOTES_KEY = "autograder"                 # notebook metadata: {"notes": [...]}
NOTES_CELL_KEY = "autograder_notes"      # metadata flag of the "Notes from the grader" cell
STUDENT_OUTPUT_KEY = "autograder_student_output"   # outputs kept from the student's own run
SANITISED_KEY = "autograder_sanitised"   # a markdown cell whose source is already inert HTML
INERT_CLASS = "tex2jax_ignore mathjax_ignore"   # MathJax (the formgrader loads it) leaves it alone

MAX_MARKDOWN_CELL = 20_000               # characters of one student markdown cell
MAX_MARKDOWN_TOTAL = 200_000             # characters of all student markdown
MAX_MATH = 400                           # math fragments rendered; the rest shown as TeX
MAX_MATH_CHARS = 2_000                   # one fragment
MAX_TEXT_OUTPUT = 20_000                 # characters of one text output
MAX_SOURCE = 50_000                      # characters of one code cell shown
MAX_IMAGE_BYTES = 2 << 20                # one image
MAX_IMAGES_BYTES = 8 << 20               # every image of the page

CSP = ("default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; form-action 'none'; "
       "base-uri 'none'")
FONT_CSS = Path(__file__).resolve().parent.parent / "_static" / "korean.css"   # the book's Noto Sans KR slices
FONT_FAMILY = "Noto Sans KR"
MAX_FONT_BYTES = 1 << 20                 # the Hangul font slices one page may carry
MATHML_TAGS = {"math", "mi", "mn", "mo", "ms", "mtext", "mspace", "mrow", "mfrac", "msqrt", "mroot",
               "msub", "msup", "msubsup", "munder", "mover", "munderover", "mtable", "mtr", "mtd",
               "mstyle", "mpadded", "mphantom", "menclose", "merror", "semantics", "annotation"}
TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3",
        "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "section", "small", "span",
        "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
        "header", "main", "figure", "figcaption", "caption"} | MATHML_TAGS
def _image_attribute(tag: str, name: str, value: str) -> bool:
    """An image may only show data the page carries: no request leaves the reader's machine."""
    if name == "src":
        return value.startswith(("data:image/png;base64,", "data:image/jpeg;base64,",
                                 "data:image/svg+xml;base64,"))
    return name in ("alt", "title")


ATTRIBUTES = {"a": ["href", "title"], "img": _image_attribute, "th": ["colspan", "rowspan"],
              "td": ["colspan", "rowspan"], "*": ["class"],
              "math": ["display", "xmlns"], "mo": ["stretchy", "fence", "separator", "lspace", "rspace",
                                                  "largeop", "movablelimits", "form"],
              "mstyle": ["displaystyle", "scriptlevel"], "mspace": ["width"], "mtd": ["columnalign"],
              "mtable": ["columnalign", "rowspacing", "columnspacing"], "mfrac": ["linethickness"]}
PROTOCOLS = {"http", "https", "mailto", "data"}

STYLE = """
body { font: 15px/1.5 "Noto Sans KR", system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } table.summary { border-collapse: collapse; margin: 1rem 0; width: 100%; }
table.summary td, table.summary th { border: 1px solid #ccc; padding: .3rem .5rem; vertical-align: top; text-align: left; }
.pass { color: #0a6b2d; } .fail { color: #a4161a; } .wait { color: #7a5a00; }
.cell { margin: 1rem 0; } .code pre, pre.output { background: #f6f6f6; padding: .5rem; overflow-x: auto; white-space: pre-wrap; }
pre.error { background: #fde8e8; } .label { font-size: .8rem; color: #666; }
.answer { border-left: 4px solid #7a5a00; padding-left: .8rem; } img { max-width: 100%; }
.notes { background: #fff7d6; padding: .5rem 1rem; }
code, pre { font-family: "Noto Sans KR", ui-monospace, monospace; }
"""

_cleaner = bleach.Cleaner(tags=TAGS, attributes=ATTRIBUTES, protocols=PROTOCOLS, strip=True,
                          strip_comments=True)


# ------------------------------------------------------------------------ host paths

_SCRATCH = re.compile(r"/tmp/(?:course|grade|grading|template|tmp|pytest-of-[\w-]+)[\w./-]*")


def redact(text: str) -> str:
    """``text`` without the grading machine's paths and name."""
    from .sandbox import host_paths
    for path in host_paths():
        text = text.replace(path, "<grader>")
    host = os.uname().nodename
    if len(host) >= 4:
        text = re.sub(rf"\b{re.escape(host)}\b", "<host>", text)
    return _SCRATCH.sub("<scratch>", text)


# -------------------------------------------------------------------------- markdown

class _Budget:
    """How much student markdown and math this page may still render."""

    def __init__(self):
        self.markdown, self.math = MAX_MARKDOWN_TOTAL, MAX_MATH


def _math(content: str, display: bool, budget: _Budget) -> str:
    """TeX as MathML, every piece of text in it escaped.

    latex2mathml's own ``convert`` unescapes its whole output, so the text of ``\\text{...}``
    (or ``\\mbox``, ``\\operatorname``) reached the page as raw tags. Its tree is written out
    here instead, escaped; only its numeric character references (``&#x000A0;``) are turned back,
    and those are text.
    """
    if budget.math > 0 and len(content) <= MAX_MATH_CHARS:
        budget.math -= 1
        try:
            from xml.etree.ElementTree import tostring

            from latex2mathml.converter import convert_to_element
            tree = convert_to_element(content, display="block" if display else "inline")
            return re.sub(r"&amp;(#x?[0-9A-Fa-f]{1,8};)", r"&\1", tostring(tree, encoding="unicode"))
        except Exception:  # noqa: BLE001 - any TeX it cannot read is shown as TeX
            pass
    delimiter = "$$" if display else "$"
    return f"<code>{html.escape(delimiter + content[:MAX_MATH_CHARS] + delimiter)}</code>"


def markdown_html(source: str, budget: _Budget, student: bool) -> str:
    """Markdown to HTML: raw HTML escaped, math as MathML, student text capped."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    if student:
        room = max(0, min(MAX_MARKDOWN_CELL, budget.markdown))
        if len(source) > room:
            source = source[:room] + "\n\n*[the rest of this answer was cut: it is too long to show here]*"
        budget.markdown -= len(source)
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    md.use(dollarmath_plugin, allow_space=True, double_inline=True,
           renderer=lambda content, options: _math(content, options.get("display_mode", False), budget))
    md.validateLink = lambda url: url.lower().startswith(("http://", "https://", "mailto:", "#"))
    return md.render(source)


# --------------------------------------------------------------------------- outputs

def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _pre(text: str, kind: str = "output") -> str:
    text = _ANSI.sub("", text)
    if len(text) > MAX_TEXT_OUTPUT:
        text = text[:MAX_TEXT_OUTPUT] + "\n[output cut]"
    return f'<pre class="{kind}">{html.escape(redact(text))}</pre>'


def _image(mime: str, data, images: list[int]) -> str:
    raw = _text(data).strip()
    if mime == "image/svg+xml":
        raw = base64.b64encode(raw.encode()).decode()
    try:
        size = len(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        return _pre("[an image that is not valid base64 was left out]")
    if size > MAX_IMAGE_BYTES or images[0] + size > MAX_IMAGES_BYTES:
        return _pre("[an image too large to show was left out]")
    images[0] += size
    return f'<img alt="a figure from the notebook" src="data:{mime};base64,{raw}">'


def outputs_html(outputs, images: list[int]) -> str:
    parts = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(_pre(_text(output.get("text", ""))))
        elif kind == "error":
            trace = "\n".join(_text(line) for line in output.get("traceback", []))
            parts.append(_pre(trace or f"{output.get('ename', '')}: {output.get('evalue', '')}", "output error"))
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            for mime in ("image/png", "image/jpeg", "image/svg+xml"):
                if mime in data:
                    parts.append(_image(mime, data[mime], images))
                    break
            else:
                if "text/plain" in data:
                    parts.append(_pre(_text(data["text/plain"])))
    return "".join(parts)


# ----------------------------------------------------------------------------- page

def _nbgrader(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _strip_hidden(source: str) -> str:
    return re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", source, flags=re.S)


def test_title(grade_id: str) -> str:
    """``test_rnn_forward_hidden_states`` -> ``rnn forward hidden states``."""
    return re.sub(r"^test_", "", grade_id).replace("_", " ").strip() or grade_id


def tests_from_notebook(notebook) -> list[dict]:
    """Each test cell's grade_id, points and outcome, as the autograded notebook records them."""
    tests = []
    for cell in notebook.cells:
        meta = _nbgrader(cell)
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            points = float(meta.get("points", 0))
            message = " ".join(str(o.get("evalue", "")) for o in errors) or "passed"
            tests.append({"grade_id": meta.get("grade_id", "?"), "score": 0.0 if errors else points,
                          "max_score": points, "message": message})
    return tests


def _points(value) -> str:
    return f"{float(value):g}"


def _summary(tests: list[dict], written: list[tuple[str, float]], manual: dict) -> str:
    rows = []
    for test in tests:
        full = float(test["score"]) >= float(test["max_score"])
        mark = '<span class="pass">✓ passed</span>' if full else '<span class="fail">✗ failed</span>'
        message = "" if full else html.escape(redact(str(test.get("message", ""))))
        rows.append(f"<tr><td>{html.escape(test_title(test['grade_id']))}<br><small><code>"
                    f"{html.escape(test['grade_id'])}</code></small></td><td>{mark}</td>"
                    f"<td>{_points(test['score'])} / {_points(test['max_score'])}</td><td>{message}</td></tr>")
    for grade_id, points in written:
        score = manual.get(grade_id)
        if score is None:
            cell = f'<span class="wait">awaiting manual grading</span></td><td>– / {_points(points)}'
        else:
            cell = f'<span class="pass">marked</span></td><td>{_points(score)} / {_points(points)}'
        rows.append(f"<tr><td>written answer<br><small><code>{html.escape(grade_id)}</code></small></td>"
                    f"<td>{cell}</td><td></td></tr>")
    return ('<table class="summary"><thead><tr><th>test</th><th>result</th><th>points</th><th>why</th>'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


# --------------------------------------------------------------------------- fonts

_font_slices: list | None = None


def _slices() -> list[tuple[Path, str, list[tuple[int, int]]]]:
    """(woff2 file, unicode-range text, ranges) of each slice of the book's Noto Sans KR."""
    global _font_slices
    if _font_slices is None:
        _font_slices = []
        text = FONT_CSS.read_text(encoding="utf-8") if FONT_CSS.is_file() else ""
        for block in re.findall(r"@font-face\s*{(.*?)}", text, flags=re.S):
            source = re.search(r"url\(([^)]+\.woff2)\)", block)
            ranges = re.search(r"unicode-range:\s*([^;]+);", block)
            if not (source and ranges):
                continue
            spans = []
            for part in ranges.group(1).split(","):
                low, _, high = part.strip().removeprefix("U+").partition("-")
                spans.append((int(low, 16), int(high or low, 16)))
            path = FONT_CSS.parent / source.group(1).strip("'\"")
            if path.is_file():
                _font_slices.append((path, ranges.group(1).strip(), spans))
    return _font_slices


def font_faces(text: str) -> str:
    """@font-face rules carrying, as ``data:`` URLs, the Hangul font slices that ``text`` uses.

    The page then draws Korean on a machine without CJK fonts, and still makes no request
    (the CSP allows fonts from ``data:`` only). At most :data:`MAX_FONT_BYTES` of font per page.
    """
    used = {ord(char) for char in set(text) if ord(char) >= 0x1100}
    if not used:
        return ""
    rules, budget = [], MAX_FONT_BYTES
    for path, ranges, spans in _slices():
        if not any(low <= code <= high for code in used for low, high in spans):
            continue
        data = path.read_bytes()
        if len(data) > budget:
            break
        budget -= len(data)
        rules.append(f"@font-face {{ font-family: '{FONT_FAMILY}'; font-style: normal; font-weight: 400; "
                     f"font-display: block; src: url(data:font/woff2;base64,{base64.b64encode(data).decode()}) "
                     f"format('woff2'); unicode-range: {ranges}; }}")
    return "\n".join(rules)


def _page(lab: str, body: str) -> str:
    clean = _cleaner.clean(body)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="referrer" content="no-referrer">'
            f"<title>{html.escape(lab)}: feedback</title><style>{font_faces(clean)}{STYLE}</style></head>"
            f"<body>{clean}</body></html>\n")


def plain_page(lab: str, status: str, reason: str, score: float, max_score: float, notes: list[str]) -> str:
    """The page for a submission that could not be graded (no notebook to show): same shell, same rules."""
    items = "".join(f"<li>{html.escape(redact(str(note)))}</li>" for note in notes)
    return _page(lab, f"<header><h1>{html.escape(lab)}: {html.escape(status)}</h1></header>"
                      f"<p>{html.escape(redact(reason))}</p><p>Score: {_points(score)} / {_points(max_score)}</p>"
                      f"<ul>{items}</ul>")


def render_feedback(notebook, lab: str, tests: list[dict] | None = None, manual: dict | None = None,
                    notes: list[str] | None = None) -> str:
    """The whole feedback page for an autograded ``notebook``, as sanitised HTML."""
    manual = manual or {}
    tests = tests if tests is not None else tests_from_notebook(notebook)
    if notes is None:
        notes = list(notebook.metadata.get(NOTES_KEY, {}).get("notes", []))
    budget, images = _Budget(), [0]
    written, cells = [], []
    for cell in notebook.cells:
        meta = _nbgrader(cell)
        if cell.get("metadata", {}).get(NOTES_CELL_KEY):
            continue
        source = _text(cell.get("source", ""))
        is_answer = bool(meta.get("solution"))
        if cell.cell_type == "markdown":
            if cell.get("metadata", {}).get(SANITISED_KEY):
                body = source          # made inert by sanitise_notebook; cleaned again with the page
            else:
                body = markdown_html(source, budget, student=not meta.get("locked"))
            if meta.get("grade") and is_answer:
                points = float(meta.get("points", 0))
                written.append((meta.get("grade_id", "?"), points))
                score = manual.get(meta.get("grade_id"))
                state = ("awaiting manual grading" if score is None
                         else f"marked {_points(score)} / {_points(points)}")
                body = (f'<div class="answer"><p class="label">Your written answer ({_points(points)} '
                        f"points): {html.escape(state)}</p>{body}</div>")
            cells.append(f'<section class="cell markdown">{body}</section>')
        elif cell.cell_type == "code":
            if meta.get("grade") and not meta.get("solution"):
                source = _strip_hidden(source)
            if len(source) > MAX_SOURCE:
                source = source[:MAX_SOURCE] + "\n[cut]"
            label = ""
            if cell.get("metadata", {}).get(STUDENT_OUTPUT_KEY):
                label = '<p class="label">Output from your own run of the notebook (not the grader\'s):</p>'
            outputs = outputs_html(cell.get("outputs", []), images)
            cells.append(f'<section class="cell code"><pre>{html.escape(redact(source))}</pre>'
                         f"{label if outputs else ''}{outputs}</section>")
    score = sum(float(t["score"]) for t in tests)
    total = sum(float(t["max_score"]) for t in tests)
    notes_html = ""
    if notes:
        items = "".join(f"<li>{html.escape(redact(str(note)))}</li>" for note in notes)
        notes_html = f'<div class="notes"><p><strong>Notes from the grader</strong></p><ul>{items}</ul></div>'
    waiting = " (written answers are marked by a person later)" if any(
        manual.get(g) is None for g, _ in written) else ""
    body = (f"<header><h1>{html.escape(lab)}: feedback</h1><p>Tests: <strong>{_points(score)} / "
            f"{_points(total)}</strong> points{html.escape(waiting)}.</p></header>{notes_html}"
            f"{_summary(tests, written, manual)}<main>{''.join(cells)}</main>")
    return _page(lab, body)


def _inert(body: str) -> str:
    """Sanitised HTML as a markdown cell's source that every renderer shows as it is.

    One line inside one ``<div>`` (an HTML block that no markdown parser reads into), ``$`` as
    an entity (no math extractor takes it), and a class MathJax skips.
    """
    clean = _cleaner.clean(body).replace("\r", "").replace("\n", "&#10;").replace("$", "&#36;")
    return f'<div class="{INERT_CLASS}">{clean}</div>'


def sanitise_notebook(notebook):
    """The notebook the formgrader shows, made as inert as the feedback page; changed in place.

    nbgrader's formgrader renders markdown raw (HTML and all) in the instructor's browser,
    where a script could type into the score boxes. So every markdown cell becomes the
    sanitised HTML this module makes for the feedback page (:func:`markdown_html`, bleach),
    flagged with :data:`SANITISED_KEY` so the feedback page shows it as it is; raw cells become
    escaped text; attachments and widget state (which makes nbconvert load scripts) go.
    Run after nbgrader has saved the grades: a written answer's checksum is of what the student wrote.
    """
    budget = _Budget()
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        metadata = cell.setdefault("metadata", {})
        if metadata.get(SANITISED_KEY) or cell.get("cell_type") not in ("markdown", "raw"):
            continue
        source = _text(cell.get("source", ""))
        if cell.cell_type == "raw":
            cell.cell_type = "markdown"
            body = _pre(source[:MAX_SOURCE], "raw")
            for key in ("format", "raw_mimetype"):
                metadata.pop(key, None)
        else:
            body = markdown_html(source, budget, student=not _nbgrader(cell).get("locked"))
        cell.pop("attachments", None)
        cell.source = _inert(body)
        metadata[SANITISED_KEY] = True
    return notebook


def write_feedback(autograded: Path, page: Path, lab: str, tests: list[dict] | None = None,
                   manual: dict | None = None) -> bool:
    """Write the feedback page of the autograded notebook at ``autograded`` to ``page``.

    ``tests`` (dicts with grade_id, score, max_score, message; default: read from the
    notebook) and ``manual`` (grade_id -> points given by a person, absent while
    unmarked) make the summary. Returns True. Bounded in time by construction (every
    student input is capped), but callers still run it inside the notebook's budget.
    """
    notebook = nbformat.read(str(autograded), as_version=4)
    text = render_feedback(notebook, lab, tests, manual)
    page.parent.mkdir(parents=True, exist_ok=True)
    partial = page.with_name(page.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(page)
    return True


def manual_marks(db_url: str, course_id: str, lab: str, student: str) -> dict:
    """grade_id -> points a person gave, for the written answers already marked in the gradebook.

    Pass it as ``manual`` to :func:`write_feedback` when feedback is made again after manual
    grading; answers not yet marked are absent, and read "awaiting manual grading".
    """
    from nbgrader.api import Gradebook
    marks = {}
    with Gradebook(db_url, course_id) as gradebook:
        notebook = gradebook.find_submission_notebook(lab, lab, student)
        for grade in notebook.grades:
            if grade.manual_score is not None and grade.cell_type == "markdown":
                marks[grade.name] = float(grade.manual_score)
    return marks
