"""Feedback pages opened in Chromium: no script from a submission runs, no request leaves 127.0.0.1.

Two sets of pages: one made here from a notebook stuffed with every injection we know
(fast, no grading), and every page the shared graded run wrote (``conftest.graded``), which
includes the attack fixtures (``xss_written_answer``, ``print_host_paths``) and the
malformed submissions with HTML in their file name, kernel name and cell ids.

Each page is served from 127.0.0.1; every request to anywhere else is recorded and
aborted. Every injection tries to change ``document.title`` or open a dialog, so a title
that changed, a dialog, or a recorded request is a failure. The HTML itself is also
checked: no script, no event-handler attribute, no image that is not ``data:``.
"""
from __future__ import annotations

import base64
import io
import shutil
import threading
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

from autograder.feedback import STUDENT_OUTPUT_KEY, render_feedback
from autograder.sandbox import REPO
from conftest import LAB, lab_submission

CHROMIUM = next((path for path in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "")
                 if path and Path(path).exists()), "/usr/bin/chromium")
TITLE_PREFIX = "feedback"   # every page's title ends with ": feedback"; an injection sets "pwned-..."

PAYLOADS = [
    "<img src=x onerror=\"document.title='pwned-img'\">",
    "<svg><script>document.title='pwned-svg'</script></svg>",
    "<svg onload=\"document.title='pwned-svg-onload'\"></svg>",
    "<iframe srcdoc=\"<script>parent.document.title='pwned-srcdoc'</script>\"></iframe>",
    "<script>alert('pwned-dialog')</script>",
    "<style>body{background:url(http://192.0.2.1/style.png)}</style>",
    "<link rel=stylesheet href=http://192.0.2.1/x.css>",
    "<meta http-equiv=refresh content=\"0;url=http://192.0.2.1/\">",
    "<base href=http://192.0.2.1/>",
    "<object data=http://192.0.2.1/o></object><embed src=http://192.0.2.1/e>",
    "<a href=\"javascript:document.title='pwned-link'\">x</a>",
    "<math><mtext><img src=x onerror=\"document.title='pwned-mathml'\"></mtext></math>",
]


def _png() -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(2, 1))
    axes.plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def hostile_notebook():
    """A filled Lab 1 with every payload in markdown, outputs, notes, ids and metadata."""
    notebook = lab_submission(LAB)
    joined = "\n\n".join(PAYLOADS)
    notebook.cells.append(nbformat.v4.new_markdown_cell(
        f"My answer. {joined}\n\n![t](http://192.0.2.1/tracker.png) [x](javascript:alert(1))\n\n"
        "$$\\href{javascript:alert(1)}{x}$$ and $h_t = \\tanh(a_t)$\n\n" + "\\\\[\n" * 50_000))
    plot = nbformat.v4.new_code_cell("plot()", metadata={STUDENT_OUTPUT_KEY: True})
    plot.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={
            "text/html": PAYLOADS[0], "application/javascript": "document.title='pwned-js'",
            "image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg' onload=\"document.title='pwned-svgout'\">"
                             "<script>document.title='pwned-svgout2'</script></svg>"}),
        nbformat.v4.new_output("stream", name="stdout", text=joined + f"\n{REPO}/solutions\n"),
        nbformat.v4.new_output("error", ename="X", evalue=PAYLOADS[1], traceback=[PAYLOADS[2]]),
    ]
    notebook.cells.append(plot)
    notebook.metadata["autograder"] = {"notes": [f"kernel {PAYLOADS[0]}", f"log tail {PAYLOADS[1]} {REPO}"]}
    tests = [{"grade_id": "test_<script>x</script>", "score": 0, "max_score": 1, "message": PAYLOADS[0]}]
    return notebook, tests


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "link", "base", "form", "svg") or \
                (tag == "meta" and any(k == "http-equiv" and v != "Content-Security-Policy" for k, v in attrs)):
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            if tag == "img" and name == "src" and not (value or "").startswith("data:image/"):
                self.problems.append(f"<img src={value!r}>")


def static_problems(text: str) -> list[str]:
    parser = _Tags()
    parser.feed(text)
    problems = parser.problems
    if text.count("<style") > 1:
        problems.append("a <style> that is not the page's own")
    if str(REPO) in text:
        problems.append("the repository path")
    return problems


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("feedback-pages")
    handler = partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def open_page(browser, site: str, name: str) -> tuple[object, list[str]]:
    """Open a served page with JavaScript on; every outside request and script effect is a problem."""
    page = browser.new_page()
    problems: list[str] = []

    def route(route):
        if route.request.url.startswith(site):
            route.continue_()
        else:
            problems.append(f"request to {route.request.url}")
            route.abort()

    page.route("**/*", route)
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("popup", lambda popup: problems.append(f"popup: {popup.url}"))
    page.goto(site + name, wait_until="load")
    page.wait_for_timeout(300)
    title = page.title()
    if not title.endswith(TITLE_PREFIX):
        problems.append(f"the title was changed to {title!r}: a script ran")
    return page, problems


def test_a_hostile_notebook_gives_a_page_where_nothing_runs_and_nothing_leaves(browser, served):
    root, site = served
    notebook, tests = hostile_notebook()
    text = render_feedback(notebook, LAB, tests)
    assert static_problems(text) == []
    (root / "hostile.html").write_text(text)
    page, problems = open_page(browser, site, "hostile.html")
    # and what a grader needs is still there: math rendered offline, the student's plot shown
    assert page.eval_on_selector_all("math", "nodes => nodes.length") > 10
    shown = page.eval_on_selector_all("img", "i => i.filter(x => x.complete && x.naturalWidth > 0).length")
    assert shown >= 1, "the student's own plot is not shown"
    assert "awaiting manual grading" in page.content()
    page.close()
    assert problems == []


def test_every_page_of_the_graded_run_is_inert(browser, served, graded):
    """Every page passes the static checks; the browser opens every page but the honest mistake
    fixtures' and all but one "missing submission" page (hundreds of pages of one template, with
    nothing hostile in them): the attacks, the malformed submissions, each lab's solution and
    untouched notebook, and one page for a lab not handed in."""
    root, site = served
    feedback = graded["out"] / "feedback"
    pages = sorted(feedback.rglob("*.html"))
    assert len(pages) >= 20
    opened, missing_opened = 0, False
    for number, path in enumerate(pages):
        text = path.read_text()
        assert static_problems(text) == [], path
        missing = "missing submission" in text     # one template for every lab a student did not hand in
        if "mistake-" in path.relative_to(feedback).parts[0] or (missing and missing_opened):
            continue
        missing_opened = missing_opened or missing
        (root / f"graded-{number}.html").write_text(text)
        page, problems = open_page(browser, site, f"graded-{number}.html")
        page.close()
        assert problems == [], path
        opened += 1
    assert opened >= 20


def test_a_huge_written_answer_costs_seconds_not_hours():
    """2 MB of math delimiters in a written answer (quadratic in nbconvert's regex) is capped first."""
    import time
    notebook = lab_submission(LAB)
    notebook.cells.append(nbformat.v4.new_markdown_cell("\\\\[\n" * 700_000))
    started = time.monotonic()
    text = render_feedback(notebook, LAB)
    assert time.monotonic() - started < 20
    assert "the rest of this answer was cut" in text


def _fonts_drawing(page, selector: str) -> dict[str, int]:
    """family -> glyphs Chromium drew with it for the text of the first node matching ``selector``
    (web fonts only: a family the machine has installed is not counted)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return {font["familyName"]: font["glyphCount"] for font in fonts if font.get("isCustomFont")}


def test_lab_3s_korean_quote_is_drawn_with_the_pages_own_font(browser, served):
    """The Hangul of Lab 3's introduction is drawn with the Noto Sans KR slices the page carries
    (data: URLs, allowed by its CSP), not as boxes from whatever fonts the machine has."""
    from autograder.feedback import CSP, FONT_FAMILY
    from autograder.course import student_notebook
    root, site = served
    notebook = nbformat.read(student_notebook("ch03_attention"), as_version=4)
    text = render_feedback(notebook, "ch03_attention")
    assert static_problems(text) == [] and "font-src data:" in CSP
    (root / "korean.html").write_text(text)
    page, problems = open_page(browser, site, "korean.html")
    page.evaluate("document.fonts.ready")
    quote = page.evaluate("""() => { const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let n = walk.nextNode(); n; n = walk.nextNode()) {
          if (/[\\uac00-\\ud7a3]/.test(n.textContent)) { n.parentElement.id = 'hangul'; return n.textContent; } }
        return null; }""")
    assert quote, "the page lost Lab 3's Korean quote"
    loaded = page.evaluate(f"() => [...document.fonts].filter(f => f.family.replace(/\"/g, '') === "
                           f"'{FONT_FAMILY}' && f.status === 'loaded').length")
    drawn = _fonts_drawing(page, "#hangul")
    page.close()
    assert problems == []
    assert loaded >= 1, "no Noto Sans KR slice of the page loaded"
    hangul = sum(1 for char in quote if "\uac00" <= char <= "\ud7a3")
    carried = sum(count for family, count in drawn.items() if family.startswith(FONT_FAMILY))
    assert carried >= hangul, f"of {hangul} Hangul glyphs, {carried} were drawn with the page's {FONT_FAMILY}"
