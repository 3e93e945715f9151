"""The book: it builds with warnings as errors, leaks nothing, and works in a real browser.

The build writes the same ``_build/html`` as ``make book`` (re-reading every page, reusing
the execution cache). The browser check serves the site on 127.0.0.1, blocks every other
address (so the math must come from the site itself, as it does offline), and opens the
chapter and lab pages in Debian's Chromium driven by Playwright.
"""
from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from autograder.course import lab_names
from leaks import hidden_fragments

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "_build" / "html"
# Debian's binary itself, not its /usr/bin/chromium wrapper script (which adds nothing headless needs)
CHROMIUM = next((path for path in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "")
                 if path and Path(path).exists()), "/usr/bin/chromium")
CHAPTERS = sorted(path.stem for path in (REPO / "book").glob("ch[0-9][0-9]_*.md"))
# the Korean edition: book/ko/<name> is the twin of book/<name> (DEVELOPERS.md, "The Korean edition")
TWINS = sorted(path.stem for path in (REPO / "book" / "ko").glob("*.md"))
# and labs/ko/<lab>/<lab> the twin of labs/<lab>/<lab>: each built page with its twin's
KOREAN_LABS = [lab for lab in lab_names() if (REPO / "labs" / "ko" / lab / f"{lab}.ipynb").is_file()]
TWIN_PAGES = {**{f"book/{name}.html": f"book/ko/{name}.html" for name in TWINS},
              **{f"labs/{lab}/{lab}.html": f"labs/ko/{lab}/{lab}.html" for lab in KOREAN_LABS}}


@pytest.fixture(scope="module")
def book():
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", ".", "--all",
               "--warningiserror", "--nitpick", "--keep-going"]
    # without MPLBACKEND, so that the kernels draw figures inline as they do in `make book`
    env = {name: value for name, value in os.environ.items() if name != "MPLBACKEND"}
    build = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    assert build.returncode == 0, f"book build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    warnings = [line for line in build.stderr.splitlines() if "WARNING:" in line]
    assert not warnings, warnings
    return SITE


def _visible_text(path: Path) -> str:
    text = path.read_text(errors="replace")
    if path.suffix == ".html":
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return text


def test_every_chapter_and_lab_is_built(book):
    for chapter in CHAPTERS:
        assert (book / "book" / f"{chapter}.html").is_file(), chapter
    for lab in lab_names():
        assert (book / "labs" / lab / f"{lab}.html").is_file(), lab


def test_site_holds_no_solution_or_hidden_test(book):
    fragments = {lab: hidden_fragments(lab) for lab in lab_names()}
    assert all(fragments.values())
    for path in book.rglob("*"):
        if path.suffix not in (".html", ".ipynb", ".md", ".txt", ".py", ".js") or "_static" in path.parts:
            continue
        text = _visible_text(path)
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "run_here("):
            assert marker not in text, f"{path.relative_to(book)} contains {marker!r}"
        for lab, lab_fragments in fragments.items():
            leaked = [fragment for fragment in lab_fragments if fragment in text]
            assert not leaked, f"{path.relative_to(book)} shows solution code of {lab}: {leaked[:3]}"


def test_labs_are_published_unexecuted(book):
    page = (book / "labs" / "ch01_vanilla_rnn" / "ch01_vanilla_rnn.html").read_text()
    assert "NotImplementedError" in page          # the stubs are shown
    assert "Traceback" not in page                # and were never run


@pytest.fixture(scope="module")
def site(book):
    handler = functools.partial(_QuietHandler, directory=str(book))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def _open(browser, site: str, path: str, **context):
    """Open ``path`` with every non-local request blocked; returns (page, problems).
    ``context``: options of the page's new browser context (``permissions=["microphone"]``)."""
    page = browser.new_page(accept_downloads=True, **context)
    problems: list[str] = []
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site)
               else route.abort())
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.on("response", lambda response: response.status >= 400
            and problems.append(f"HTTP {response.status}: {response.url}"))
    # any script error on the page, or anything it logs as an error, is a problem
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error"
            and problems.append(f"console error: {message.text}"))
    page.goto(site + path, wait_until="networkidle")
    return page, problems


def _broken_images(page) -> list[str]:
    return page.eval_on_selector_all(
        "img", "images => images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_renders_math_and_figures_offline(browser, site, chapter):
    page, problems = _open(browser, site, f"book/{chapter}.html")
    page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
    errors = page.eval_on_selector_all("mjx-merror", "nodes => nodes.map(n => n.textContent)")
    assert not errors, f"MathJax could not render: {errors[:3]}"
    figures = page.eval_on_selector_all("img", "images => images.map(i => i.src)")
    assert any("_images/" in src for src in figures), "no figure made by the chapter's code"
    assert not _broken_images(page)
    assert not problems, problems
    page.close()


def test_lab_page_and_its_download_link(browser, site):
    page, problems = _open(browser, site, "book/labs.html")
    link = page.locator("a[download][href$='ch01_vanilla_rnn.ipynb']").first
    with page.expect_download() as download:
        link.click()
    notebook = json.loads(Path(download.value.path()).read_text())
    assert notebook["nbformat"] == 4 and notebook["cells"]
    assert "BEGIN SOLUTION" not in json.dumps(notebook)
    assert not problems, problems
    page.close()
    page, problems = _open(browser, site, "labs/ch01_vanilla_rnn/ch01_vanilla_rnn.html")
    page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
    source = page.locator("a[href$='.ipynb']").first.get_attribute("href")
    response = page.request.get(site + "labs/ch01_vanilla_rnn/" + source if not source.startswith("http") else source)
    assert response.status == 200 and json.loads(response.text())["cells"]
    assert not _broken_images(page)
    assert not problems, problems
    page.close()


# ------------------------------------------------- the student's way in: zips, links, fonts (issue 12)

HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")


def _student_labs() -> list[str]:
    return sorted(path.parent.name for path in (REPO / "labs").glob("*/*.ipynb") if path.stem == path.parent.name)


def test_every_lab_page_the_labs_page_and_the_intro_link_the_labs_zip(book):
    zips = {}
    for lab in _student_labs():
        page = (book / "labs" / lab / f"{lab}.html").read_text()
        links = re.findall(rf'<a[^>]*class="[^"]*download[^"]*"[^>]*href="([^"]*/{lab}\.zip)"', page)
        assert links and "Run this lab" in page, f"the page of {lab} does not offer its zip"
        assert f".venv/bin/jupyter lab {lab}.ipynb" in html.unescape(re.sub(r"<[^>]+>", "", page))
        zips[lab] = (book / "labs" / lab / links[0]).resolve()
        assert zipfile.is_zipfile(zips[lab]), zips[lab]
    for page in ("book/labs.html", "book/intro.html"):
        text = (book / page).read_text()
        for lab in zips:
            assert re.search(rf'href="[^"]*/{lab}\.zip"', text), f"{page} does not link {lab}.zip"


def test_every_link_of_the_site_leads_somewhere(book):
    """No local link to a missing file, no link to a placeholder."""
    for path in book.rglob("*.html"):
        text = path.read_text(errors="replace")
        for tag, href in re.findall(r'(<a\s[^>]*href="([^"]*)"[^>]*>)', text):
            href = html.unescape(href)
            placeholder = href == ""              # "#" is fine: the page's own link, back to its top
            assert not placeholder and not re.search(r"example\.(com|org)|<|%3C|TODO", href), \
                f"{path.relative_to(book)} links to a placeholder: {tag}"
            if href.startswith(("http://", "https://", "mailto:", "#", "javascript:")):
                continue
            target = (path.parent / href.split("#")[0].split("?")[0]).resolve()
            assert target.exists(), f"{path.relative_to(book)} links to a missing {href!r}"


def test_every_font_is_served_by_the_site(book):
    for path in [*book.rglob("*.css"), *book.rglob("*.html")]:
        text = path.read_text(errors="replace")
        assert not re.search(r"fonts\.(googleapis|gstatic)\.com|@import\s+url\(\s*['\"]?https?:", text), path
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+\.(?:woff2?|ttf|otf))", text):
            assert not url.startswith(("http:", "https:", "//")), f"{path.relative_to(book)} loads a font from {url}"
            assert (path.parent / url.split("?")[0]).resolve().exists(), f"{path.relative_to(book)}: {url} missing"
    assert (book / "_static" / "fonts" / "noto-sans-kr" / "OFL.txt").exists(), "the font's licence ships with it"


def test_a_lab_zip_downloads_from_the_labs_page(browser, site):
    lab = _student_labs()[0]
    page, problems = _open(browser, site, "book/labs.html")
    with page.expect_download() as download:
        page.locator(f"a[download][href$='{lab}.zip']").first.click()
    with zipfile.ZipFile(download.value.path()) as archive:
        names = set(archive.namelist())
        notebook = json.loads(archive.read(f"{lab}/{lab}.ipynb"))
    for needed in (f"{lab}.ipynb", "requirements.txt", "README.md", "speechcourse/__init__.py",
                   "speechcourse/selfcheck/__init__.py"):
        assert f"{lab}/{needed}" in names, f"{lab}.zip lacks {needed}"
    assert not any(part in name for name in names for part in ("solutions/", "hidden_tests", "reference.py", "tests/"))
    assert "BEGIN SOLUTION" not in json.dumps(notebook)
    assert not problems, problems
    page.close()


@pytest.mark.parametrize("path", ["book/intro.html", "book/glossary.html", *TWIN_PAGES.values()])
def test_korean_renders_in_the_sites_own_font_not_as_boxes(browser, site, path):
    """This machine has no CJK font: Hangul can only render through the site's Noto Sans KR.
    Chromium reports, per element, which font drew how many glyphs; every Hangul syllable
    of every visible element must have been drawn by it (a box is drawn by a system font)."""
    page, problems = _open(browser, site, path)
    page.evaluate("document.fonts.ready")
    count = page.evaluate("""() => {
        let n = 0;
        for (const element of document.body.querySelectorAll('*')) {
            if (!element.getClientRects().length) continue;
            // a closed <details> (the sidebar's folded Korean part) lays out nothing to draw
            if (element.closest('details:not([open])') && !element.closest('summary')) continue;
            // MathJax's copy of the math for screen readers, clipped to nothing: never drawn
            if (element.closest('mjx-assistive-mml')) continue;
            const own = Array.from(element.childNodes).filter(c => c.nodeType === 3).map(c => c.data).join('');
            const hangul = (own.match(/[\\u1100-\\u11ff\\u3130-\\u318f\\uac00-\\ud7a3]/g) || []).length;
            if (hangul) { element.dataset.hangul = hangul; n += 1; }
        }
        return n;
    }""")
    assert count > 0, f"{path} shows no Korean text to check"
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    boxes = []
    for node in cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": "[data-hangul]"})["nodeIds"]:
        attributes = cdp.send("DOM.getAttributes", {"nodeId": node})["attributes"]
        hangul = int(attributes[attributes.index("data-hangul") + 1])
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        drawn = sum(font["glyphCount"] for font in fonts if font["familyName"].startswith("Noto Sans KR"))
        if drawn < hangul:
            boxes.append((cdp.send("DOM.getOuterHTML", {"nodeId": node})["outerHTML"][:80], fonts))
    assert not boxes, f"{len(boxes)} of {count} elements with Korean drew it with a system font: {boxes[:2]}"
    assert not problems, problems
    page.close()


# ------------------------------------------------------------------ layout, text, captions

PAGES = [f"book/{chapter}.html" for chapter in CHAPTERS] + \
        [f"book/ko/{name}.html" for name in TWINS if name in CHAPTERS] + \
        [f"labs/{lab}/{lab}.html" for lab in lab_names()] + \
        [f"labs/ko/{lab}/{lab}.html" for lab in KOREAN_LABS]

# Display math and code blocks (source and output) that are wider than their column: the
# reader sees them cut off, or has to scroll each one sideways.
_OVERFLOWING = """() => [...document.querySelectorAll(
      'mjx-container[display="true"], div.highlight pre, div.cell_output pre, div.output pre')]
    .filter(el => el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1)
    .map(el => `${el.tagName.toLowerCase()} ${el.scrollWidth}px in ${el.clientWidth}px: `
               + el.textContent.trim().slice(0, 70))"""
# a backslash escape that reached the reader: "dh\_next", "max\_norm"
_RAW_BACKSLASH = re.compile(r"\\[_%&#$]")


@pytest.mark.parametrize("width", [1280, 800])
@pytest.mark.parametrize("path", PAGES)
def test_no_math_or_code_wider_than_its_column(browser, site, path, width):
    page, problems = _open(browser, site, path)
    page.set_viewport_size({"width": width, "height": 900})
    if page.locator("mjx-container").count() or "$" in page.content():
        page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
    page.wait_for_timeout(300)                 # MathJax lays out again after the resize
    wide = page.evaluate(_OVERFLOWING)
    assert not wide, f"{path} at {width} px: split the equation or wrap the line: {wide[:4]}"
    assert not problems, problems
    page.close()


# Every page of the book, as _toc.yml lists them (chapters, labs, the intro, the glossary, ...).
def _toc_pages() -> list[str]:
    """Every page of the table of contents, as its built HTML path."""
    import yaml
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    def files(entries):
        for entry in entries:
            yield entry["file"]
            yield from files(entry.get("sections", []))     # the Korean chapters, under the Korean intro
    return [f"{file}.html" for file in [toc["root"], *files(chapter for part in toc.get("parts", [])
                                                            for chapter in part.get("chapters", []))]]


TOC_PAGES = _toc_pages()


def _wait_for_math(page) -> None:
    """Until MathJax (when the page loads it) has typeset everything."""
    if page.evaluate("() => !!document.querySelector('script[src*=\"mathjax\"]')"):
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=20_000)
        page.evaluate("() => MathJax.startup.promise.then(() => true)")


def _open_all(page) -> None:
    """Wait for MathJax to typeset the page, and open every dropdown and toggle, as a reader may."""
    _wait_for_math(page)
    page.evaluate("""() => {
        document.querySelectorAll('details').forEach(d => d.open = true);
        document.querySelectorAll('button.toggle-button-hidden').forEach(b => b.click());
    }""")
    page.wait_for_timeout(500)       # sphinx-togglebutton's transition takes 0.3 s


# Math cut off by a box that clips it. For every formula on the page, the boxes of its glyphs
# (mjx-c) and rules (fraction bars, roots) must lie inside every ancestor whose overflow is not
# visible, with at least 1 px to spare above and below: a glyph's ink reaches the top or bottom
# of its box (the bar of ⊤ is its top edge) and antialiasing a pixel beyond, so a box that ends
# where the glyph's box ends cuts it (issue 20: the top of ⊤ in h_t^⊤). Sideways, glyph boxes
# carry side bearings, so a glyph box may cross a box that hides by less than 1 px; a box that
# scrolls sideways (overflow auto) holds what the reader can scroll to, and only itself must fit
# in the boxes around it.
_CLIPPED_MATH = """() => {
    const cut = [];
    for (const math of document.querySelectorAll('mjx-container')) {
        if (!math.getClientRects().length) continue;
        const boxes = [...math.querySelectorAll('mjx-c, mjx-line, mjx-rule')]
            .filter(g => !g.closest('mjx-assistive-mml') && getComputedStyle(g).visibility === 'visible')
            .map(g => g.getBoundingClientRect())
            .filter(r => r.width > 0 && r.height > 0);
        if (!boxes.length) continue;
        const top = Math.min(...boxes.map(r => r.top)), bottom = Math.max(...boxes.map(r => r.bottom));
        let left = Math.min(...boxes.map(r => r.left)), right = Math.max(...boxes.map(r => r.right));
        for (let box = math; box && box !== document.body; box = box.parentElement) {
            const style = getComputedStyle(box);
            if (style.overflowX === 'visible' && style.overflowY === 'visible') continue;
            const r = box.getBoundingClientRect();
            const inner = {top: r.top + box.clientTop, left: r.left + box.clientLeft};
            const above = top - inner.top, below = inner.top + box.clientHeight - bottom;
            const before = left - inner.left, after = inner.left + box.clientWidth - right;
            const scrolls = ['auto', 'scroll'].includes(style.overflowX);
            const excess = Math.max(style.overflowY === 'visible' ? -Infinity : 1 - Math.min(above, below),
                                    scrolls ? -Infinity : -1 - Math.min(before, after));
            if (excess > 0) {
                cut.push({excess, text: `${math.getAttribute('display') === 'true' ? 'display' : 'inline'} `
                    + `"${math.textContent.trim().slice(0, 50)}" in ${box.tagName.toLowerCase()}.`
                    + `${[...box.classList].slice(0, 2).join('.')} (overflow ${style.overflowX} ${style.overflowY}): `
                    + `${above.toFixed(1)} px above, ${below.toFixed(1)} px below, `
                    + `${before.toFixed(1)} px left, ${after.toFixed(1)} px right`});
                break;
            }
            if (scrolls) {           // what lies beyond is scrolled to; the boxes around hold the scroller
                left = Math.max(left, inner.left);
                right = Math.min(right, inner.left + box.clientWidth);
            }
        }
    }
    return cut.sort((a, b) => b.excess - a.excess).map(c => c.text);     // the worst first
}"""


@pytest.mark.parametrize("width", [1280, 400])
@pytest.mark.parametrize("path", TOC_PAGES)
def test_no_math_is_clipped(browser, site, path, width):
    page, problems = _open(browser, site, path, viewport={"width": width, "height": 900})
    _open_all(page)
    cut = page.evaluate(_CLIPPED_MATH)
    assert not cut, (f"{path} at {width} px: {len(cut)} formulas are cut off, or less than 1 px "
                     f"from the edge of a box that clips them: {cut[:4]}")
    assert not problems, problems
    page.close()


# What sticks out of the right edge of the viewport, outside any box that scrolls or clips it
# (the innermost such elements; a formula or a piece of code is named whole).
_STICKING_OUT = """() => {
    const width = document.documentElement.clientWidth, found = new Map();
    for (const el of document.body.querySelectorAll('*')) {
        const right = el.getBoundingClientRect().right;
        if (right <= width + 1 || getComputedStyle(el).visibility !== 'visible') continue;
        let held = false;
        for (let box = el.parentElement; box && box !== document.body; box = box.parentElement)
            if (getComputedStyle(box).overflowX !== 'visible') { held = box.getBoundingClientRect().right <= width + 1; break; }
        const whole = el.closest('mjx-container, code, pre, table, img, svg') || el;
        if (!held) found.set(whole, Math.max(right, found.get(whole) || 0));
    }
    return [...found].filter(([el]) => ![...found.keys()].some(other => other !== el && el.contains(other)))
        .map(([el, right]) => `${el.tagName.toLowerCase()}.${[...el.classList].slice(0, 2).join('.')} to `
                              + `${Math.round(right)} px: ${el.textContent.trim().slice(0, 60)}`);
}"""


@pytest.mark.parametrize("path", TOC_PAGES)
def test_no_page_scrolls_sideways_at_400_px(browser, site, path):
    """On a phone, 400 px wide, the page itself never scrolls sideways (a code block or a table
    may scroll inside its own box): long inline code wraps, display math scrolls in its box."""
    page, problems = _open(browser, site, path, viewport={"width": 400, "height": 800})
    _open_all(page)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400 + 1, f"{path} scrolls sideways at 400 px, it is {width} px wide: {page.evaluate(_STICKING_OUT)[:4]}"
    assert not problems, problems
    page.close()


@pytest.mark.parametrize("path", PAGES)
def test_no_raw_backslash_reaches_the_reader(browser, site, path):
    page, problems = _open(browser, site, path)
    if "$" in page.content() or page.locator("mjx-container").count():
        page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
    text = page.evaluate("() => document.querySelector('main, article, body').innerText")
    raw = sorted({text[max(0, m.start() - 20):m.end() + 10] for m in _RAW_BACKSLASH.finditer(text)})
    assert not raw, f"{path} shows backslash escapes to the reader: {raw[:4]}"
    assert not problems, problems
    page.close()



# The text a reader sees outside code and rendered math, one string per block (paragraph,
# list item, cell, caption...). Hidden elements (a collapsed cell, say) have no client rects.
_BODY_TEXT = """() => {
    const skip = 'pre, code, kbd, samp, script, style, textarea, mjx-container, mjx-assistive-mml, '
               + '.MathJax, nav, header, footer, .bd-sidebar-primary, .bd-sidebar-secondary';
    const root = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
    const blocks = new Map();
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!parent || parent.closest(skip) || !parent.getClientRects().length) continue;
        const block = parent.closest('p, li, td, th, dt, dd, figcaption, h1, h2, h3, h4, h5, h6, div') || root;
        blocks.set(block, (blocks.get(block) || '') + node.data);
    }
    return [...blocks.values()];
}"""
# a Markdown table's rule row ("| --- |", "|---:|", or "| —: |" once the dashes became an em
# dash) and math that MathJax never saw
_RAW_MARKUP = {"Markdown table": re.compile(r"\|\s*:?(?:-{3,}|[\u2013\u2014]-*):?\s*\|"),
               "math": re.compile(r"\$[^$]+\$|\\\(|\\\[|\\(?:frac|mathrm|mathbf|top|alpha)\b")}


def raw_markup(page) -> list[str]:
    """Pieces of body text that show Markdown or math source instead of what it renders to."""
    _wait_for_math(page)
    found = []
    for text in page.evaluate(_BODY_TEXT):
        for what, pattern in _RAW_MARKUP.items():
            found += [f"{what}: ...{text[max(0, m.start() - 30):m.end() + 30]}..."
                      for m in pattern.finditer(text)]
    return found


@pytest.mark.parametrize("path", TOC_PAGES)
def test_no_raw_markdown_table_or_math_reaches_the_reader(browser, site, path):
    """A table a page builds from results renders as a table, and its math as math: the body
    text shows no "| ---" rule row and no "$...$" (a Markdown output rendered as CommonMark,
    or a table whose rows lost their newlines, showed both)."""
    page, problems = _open(browser, site, path)
    raw = raw_markup(page)
    assert not raw, f"{path} shows raw Markdown or math: {raw[:4]}"
    assert not problems, problems
    page.close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_figure_has_a_numbered_caption(book, chapter):
    """Each image a chapter's code draws sits in a <figure> with a "Fig. N" caption."""
    text = (book / "book" / f"{chapter}.html").read_text()
    image = re.compile(r"<img[^>]+src=\"([^\"]*_images/[^\"]+)\"")
    images = set(image.findall(text))
    figures = re.findall(r"<figure[^>]*>(.*?)</figure>", text, re.S)
    captioned = {src for f in figures if "<figcaption" in f
                 and re.search(r"Fig\.\s*(</span>\s*<span[^>]*>)?\s*\d", f)
                 for src in image.findall(f)}
    assert images, f"{chapter} draws no figure"
    assert images <= captioned, (
        f"{chapter}: {len(images - captioned)} of {len(images)} figures have no numbered "
        f"caption (give the cell mystnb figure metadata: caption and name)")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_figures_are_numbered_per_chapter(book, chapter):
    """Chapter 3's figures read Fig. 3.1, 3.2, ... in page order (tools/chapter_numbers.py), not
    the book-wide count (its first was Fig. 15), and a {numref} shows the same number."""
    text = (book / "book" / f"{chapter}.html").read_text()
    number = int(chapter[2:4])
    captions = [html.unescape(n).strip() for n in re.findall(r'class="caption-number">([^<]*)<', text)]
    figures = [c for c in captions if c.startswith("Fig.")]
    assert figures, f"{chapter} has no numbered figure"
    assert figures == [f"Fig. {number}.{i}" for i in range(1, len(figures) + 1)], (chapter, figures)
    refs = re.findall(r'<span class="std std-numref">Fig\. ([0-9.]+)</span>', text)
    assert all(ref.startswith(f"{number}.") for ref in refs), (chapter, refs)


# ------------------------------------------------------------------ the Korean edition

def _sections_and_switches(text: str) -> list[tuple[str, str | None]]:
    """(id, href of the heading's language switch) of each section of a built page, in order."""
    found = []
    for match in re.finditer(r'<section\b[^>]*\bid="([^"]+)"[^>]*>\s*(?:<span id="[^"]*"></span>\s*)*<h([1-6])[^>]*>(.*?)</h\2>',
                             text, re.S):
        switch = re.search(r'<a class="language-switch" href="([^"]+)"', match.group(3))
        found.append((match.group(1), html.unescape(switch.group(1)) if switch else None))
    return found


@pytest.mark.parametrize("english", TWIN_PAGES)
def test_language_switch_lands_on_the_same_section(book, english):
    """Every heading of a page with a twin links to the twin's heading at the same position
    (tools/twins.py), both ways: the title to the twin's title, section 0.3 to its 0.3; a lab's
    page likewise."""
    pages = {"en": english, "ko": TWIN_PAGES[english]}
    built = {language: _sections_and_switches((book / page).read_text()) for language, page in pages.items()}
    assert built["en"] and len(built["en"]) == len(built["ko"]), {k: [s for s, _ in v] for k, v in built.items()}
    for language, other in (("en", "ko"), ("ko", "en")):
        for (section, href), (twin_section, _) in zip(built[language], built[other]):
            assert href, f"{pages[language]}, section {section!r}: no language switch"
            page, _, anchor = href.partition("#")
            assert ((book / pages[language]).parent / page).resolve() == (book / pages[other]).resolve() \
                and anchor == twin_section, (f"{pages[language]}, section {section!r}: the switch leads to "
                                             f"{href!r}, not to {pages[other]}#{twin_section}")
    assert '<html lang="ko"' in (book / pages["ko"]).read_text(), f"{pages['ko']} is not marked lang=ko"


@pytest.mark.parametrize("name", [name for name in TWINS if name in CHAPTERS])
def test_korean_figures_are_numbered_as_the_english_ones(book, name):
    """The twin's figures are 그림 0.1, 0.2, ... as the English page's are Fig. 0.1, 0.2, ..."""
    numbers = {}
    for language, page in (("en", f"book/{name}.html"), ("ko", f"book/ko/{name}.html")):
        text = (book / page).read_text()
        numbers[language] = [html.unescape(n).strip() for n in re.findall(r'class="caption-number">([^<]*)<', text)]
    assert numbers["en"] and numbers["ko"] == [n.replace("Fig. ", "그림 ") for n in numbers["en"]], numbers


def test_korean_search_finds_the_korean_terms(book):
    """Sphinx's search index holds the Korean pages' words: 정보 병목 finds the Korean intro."""
    index = json.loads(re.search(r"Search\.setIndex\((.*)\)\s*$", (book / "searchindex.js").read_text(), re.S).group(1))
    korean = index["docnames"].index("book/ko/intro")
    for word in ("정보", "병목"):
        found = index["terms"].get(word)
        assert found is not None, f"the search index has no {word!r}"
        assert korean in ([found] if isinstance(found, int) else found), f"{word!r} does not find book/ko/intro"


# ------------------------------------------------------------------ audio players (issue 18)

# every <audio> under the node an XPath names, and whether the browser read its sound
_PLAYERS = """xpath => {
    const found = document.evaluate(xpath, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
    const players = Array.from({length: found.snapshotLength}, (_, i) => found.snapshotItem(i));
    return players.map(a => ({src: (a.currentSrc || a.querySelector('source')?.src || '').slice(0, 40),
                              ready: a.readyState, seconds: a.duration}));
}"""


@pytest.mark.parametrize("path, section", [("book/ch05_autoregression.html", "Your own voice"),
                                           ("book/ch00_waveform_to_frames.html", None)])
def test_audio_players_play_a_sound(browser, site, path, section):
    """Chapter 5's "Your own voice" section plays a test speaker's recording; chapter 0 plays the
    utterances it draws. Each player has a source whose sound the browser opens (its duration known)."""
    page, problems = _open(browser, site, path)
    scope = f"//section[h2[contains(., '{section}')]]" if section else "//article"
    if section:
        assert page.locator(f"xpath={scope}").count() == 1, f"{path} has no section {section!r}"
    players = page.evaluate(_PLAYERS, f"{scope}//audio")
    assert players, f"{path}: no <audio> player" + (f" in {section!r}" if section else "")
    assert all(p["src"] for p in players), f"{path}: a player without a source: {players}"
    try:
        page.wait_for_function(f"() => ({_PLAYERS})({json.dumps(scope + '//audio')})"
                               ".every(p => p.ready >= 1 && p.seconds > 0)", timeout=10_000)
    except Exception:
        pytest.fail(f"{path}: the browser could not open every player's sound: {page.evaluate(_PLAYERS, scope + '//audio')}")
    assert not problems, problems
    page.close()


# ------------------------------------------------------------------ the page "Say it" (issue 21)

SAY_IT = "book/say_it.html"
# the page in each language: the Korean twin loads the same script (../say_it/say_it.js), which
# writes its sentences in the page's <html lang>; each sentence's start, as the tests look for it
SAY_IT_PAGES = {"en": SAY_IT, "ko": "book/ko/say_it.html"}
SAID = {
    "en": {"recording": "Recording: ", "refused": "The microphone was refused",
           "no WebAssembly": "This browser cannot run WebAssembly",
           "no microphone at all": "This browser gives the page no microphone",
           "no microphone found": "No microphone was found", "short": "That was only 0.10 s",
           "silent": "The recording is silent", "quiet": "The recording is too quiet",
           "stopped": "The recording stopped at 1 s, the longest this page takes."},
    "ko": {"recording": "녹음 중: ", "refused": "마이크 사용이 거부되었습니다",
           "no WebAssembly": "이 브라우저는 인식기에 필요한 WebAssembly를 실행할 수 없습니다",
           "no microphone at all": "이 브라우저는 이 페이지에 마이크를 허락하지 않습니다",
           "no microphone found": "마이크를 찾지 못했습니다", "short": "녹음이 0.10초뿐입니다",
           "silent": "녹음에 소리가 없습니다", "quiet": "녹음이 너무 작아서",
           "stopped": "녹음은 이 페이지가 받는 가장 긴 길이인 1초에서 멈췄습니다."},
}
_SETTLED = "['done', 'error'].includes(document.querySelector('#say-it-status').dataset.kind)"


def _said(path: Path) -> str:
    """What a test recording says: examples.tsv for data/wav, the name for FSDD (<digit>_<speaker>_<take>)."""
    if path.parent.name == "recordings":
        from speechcourse.corpus import DIGITS
        return DIGITS[int(path.name.split("_")[0])]
    return next(line.split("\t")[-1] for line in (path.parent / "examples.tsv").read_text().splitlines()
                if line.startswith(path.name + "\t"))


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """The fake microphone's recording: a test speaker's recording between 0.3 s of silence before
    and 1 s after, the first that `transcribe` hears right and surely (each word's confidence
    >= 0.6); and what `python -m speechmodels.transcribe` prints for that very file."""
    import soundfile
    from speechmodels.transcribe import read_audio, transcribe_file
    candidates = sorted((REPO / "data" / "wav").glob("real_*.wav"), key=lambda p: p.name[5])[::-1] + \
        sorted((REPO / "data" / "fsdd" / "recordings").glob("*_[gl][eu]*_4[0-9].flac"))
    wav = tmp_path_factory.mktemp("microphone") / "speaker.wav"
    for path in candidates:
        samples = read_audio(path)[0]
        soundfile.write(wav, np.concatenate([np.zeros(2400), samples, np.zeros(8000)]), 8000, subtype="PCM_16")
        t = transcribe_file(wav)
        if t.text == _said(path) and min(t.confidences, default=0) >= 0.6:
            break
    else:
        pytest.fail("the committed model hears no test-speaker recording right and surely")
    done = subprocess.run([sys.executable, "-m", "speechmodels.transcribe", str(wav)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cli = re.match(r"heard: (.*?)  \(", done.stdout).group(1)
    return {"wav": wav, "said": _said(path), "cli": cli, "seconds": len(samples) / 8000 + 1.3, "source": path.name}


@pytest.fixture(scope="module")
def microphone(browser, spoken):
    """Chromium with a fake microphone that says ``spoken`` once (launched by the same Playwright
    as ``browser``: one sync Playwright per process). A page may use it where its context was
    granted the permission (`_open(..., permissions=["microphone"])`); elsewhere it is refused."""
    microphone = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--autoplay-policy=no-user-gesture-required",
              "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-audio-capture={spoken['wav']}%noloop"])
    yield microphone
    microphone.close()


def _ready(page):
    page.wait_for_function("window.sayIt && window.sayIt.loadSeconds !== null || "
                           "document.querySelector('#say-it-status').dataset.kind === 'error'", timeout=30_000)
    assert page.evaluate("window.sayIt.loadSeconds") is not None, page.inner_text("#say-it-status")


def _status(page) -> str:
    """The page's sentence once it has settled (done or refused) after the last `_unsettle`."""
    page.wait_for_function(_SETTLED, timeout=30_000)
    return page.inner_text("#say-it-status")


def _unsettle(page) -> None:
    page.evaluate("document.querySelector('#say-it-status').dataset.kind = 'waiting'")


@pytest.mark.parametrize("language", SAY_IT_PAGES)
def test_say_it_hears_the_microphone_as_transcribe_hears_the_file(microphone, site, spoken, language):
    page, problems = _open(microphone, site, SAY_IT_PAGES[language], permissions=["microphone"])
    _ready(page)
    assert page.evaluate("window.sayIt.language") == language
    page.click("#say-it-record")
    page.wait_for_function(f"document.querySelector('#say-it-status').textContent.startsWith({json.dumps(SAID[language]['recording'])})"
                           " && /[0-9]/.test(document.querySelector('#say-it-status').textContent)", timeout=10_000)
    page.wait_for_timeout(int(1000 * spoken["seconds"]))
    _unsettle(page)
    page.click("#say-it-stop")
    status = _status(page)
    last = page.evaluate("window.sayIt.last")
    assert last is not None, status
    assert last["text"] == spoken["cli"] == spoken["said"], (spoken["source"], status)
    assert len(last["confidences"]) == len(last["text"].split()) and all(0 < c <= 1 for c in last["confidences"])
    assert last["rows"] == len(last["text"].split()) + 1           # one row per symbol, </s> included
    words = page.locator("#say-it-heard li").all_inner_texts()
    assert [w.split()[0] for w in words] == last["text"].split()
    assert not page.locator("#say-it-play").is_disabled()
    page.click("#say-it-play")
    page.wait_for_timeout(200)
    assert not problems, problems
    page.close()


@pytest.mark.parametrize("language", SAY_IT_PAGES)
def test_say_it_refused_microphone_gets_one_sentence(microphone, site, language):
    page, problems = _open(microphone, site, SAY_IT_PAGES[language])   # the permission is not granted
    _ready(page)
    page.click("#say-it-record")
    status = _status(page)
    assert status.startswith(SAID[language]["refused"]), status
    assert page.evaluate("window.sayIt.last") is None
    assert not problems, problems
    page.close()


@pytest.mark.parametrize("language", SAY_IT_PAGES)
def test_say_it_examples_are_heard_as_transcribe_hears_them(browser, site, language):
    from speechmodels.transcribe import transcribe_file
    page, problems = _open(browser, site, SAY_IT_PAGES[language])
    _ready(page)
    examples = json.loads((SITE / "book" / "say_it" / "examples.json").read_text())
    assert {e["source"] for e in examples} == {"real", "synthetic"}
    buttons = page.locator(".say-it-example")
    assert buttons.count() == len(examples)
    for i, example in enumerate(examples):
        _unsettle(page)
        buttons.nth(i).click()
        status = _status(page)
        last = page.evaluate("window.sayIt.last")
        t = transcribe_file(REPO / "data" / "wav" / example["file"])
        assert last is not None and last["text"] == t.text, (example["file"], status)
        np.testing.assert_allclose(last["confidences"], t.confidences, atol=1e-3)
        assert f"“{example['text']}”" in status
    assert not problems, problems
    page.close()


@pytest.mark.parametrize("language", SAY_IT_PAGES)
@pytest.mark.parametrize("case, script", [
    ("no WebAssembly", "delete window.WebAssembly;"),
    ("no microphone at all", "Object.defineProperty(navigator, 'mediaDevices', {value: undefined});"),
    ("no microphone found", "navigator.mediaDevices.getUserMedia = () => "
     "Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));"),
])
def test_say_it_without_what_it_needs_says_so(browser, site, case, script, language):
    expected = SAID[language][case]
    page = browser.new_page()
    page.add_init_script(script)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site) else route.abort())
    page.goto(site + SAY_IT_PAGES[language], wait_until="networkidle")
    if case != "no WebAssembly":
        _ready(page)
        page.click("#say-it-record")
    page.wait_for_function(f"document.querySelector('#say-it-status').textContent.startsWith({json.dumps(expected)})",
                           timeout=20_000)
    assert page.inner_text("#say-it-status").count(". ") == 0        # one sentence
    assert not problems, problems
    page.close()


@pytest.mark.parametrize("language", SAY_IT_PAGES)
def test_say_it_refuses_short_silent_quiet_and_stops_long_recordings(microphone, site, language):
    page, problems = _open(microphone, site, SAY_IT_PAGES[language], permissions=["microphone"])
    _ready(page)
    rng = np.random.default_rng(0)
    said = SAID[language]
    cases = {said["short"]: np.zeros(800) + 0.5,
             said["silent"]: np.zeros(16_000),
             said["quiet"]: rng.normal(0, 0.003, 16_000)}
    for expected, samples in cases.items():
        _unsettle(page)
        page.evaluate("samples => window.sayIt.transcribe(samples)", samples.tolist())
        assert _status(page).startswith(expected), expected
        assert page.evaluate("window.sayIt.last") is None
    page.evaluate("window.sayIt.maxSeconds = 1")         # the page's 10 s, made short for the test
    _unsettle(page)
    page.click("#say-it-record")
    status = _status(page)
    assert status.startswith(said["stopped"]), status
    assert not problems, problems
    page.close()


@pytest.mark.parametrize("language", SAY_IT_PAGES)
def test_say_it_is_usable_400_px_wide(browser, site, language):
    page, problems = _open(browser, site, SAY_IT_PAGES[language])
    page.set_viewport_size({"width": 400, "height": 800})
    _ready(page)
    page.locator(".say-it-example").last.click()
    _status(page)
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways at 400 px: {width} px wide"
    for selector in ("#say-it-record", "#say-it-stop", "#say-it-play", ".say-it-example >> nth=-1",
                     "#say-it-attention"):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 400, f"{selector} is cut off: {box}"
    page.locator("#say-it-record").click(trial=True)     # nothing covers it
    assert not problems, problems
    page.close()


def test_say_it_is_linked_from_chapter_5_and_the_intro(book):
    """From the text itself (every page's sidebar links every page): chapter 5's "Your own voice"
    and the intro's map of the course."""
    for page, section in (("book/ch05_autoregression.html", "your-own-voice"), ("book/intro.html", "map-of-the-course")):
        text = (book / page).read_text()
        body = text[text.index(f'<section id="{section}"'):]
        body = body[:body.find("<section", 1)]
        assert 'href="say_it.html' in body, f"{page}, section {section}, does not link the page Say it"
    folder = book / "book" / "say_it"
    for name in ("encoder.onnx", "decoder.onnx", "ort-wasm-simd-threaded.wasm", "ort.wasm.bundle.min.mjs",
                 "say_it.js", "examples.json"):
        assert (folder / name).is_file(), f"the site lacks say_it/{name}"
