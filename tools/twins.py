"""Sphinx extension: the Korean edition's pages and their English twins.

A page ``book/<name>`` has a Korean twin ``book/ko/<name>`` (DEVELOPERS.md, "The Korean
edition"), and a lab page ``labs/<lab>/<lab>`` has one in ``labs/ko/<lab>/<lab>`` (the Korean
release, made by ``make labs``; its instruction cells keep the English headings' levels and
order, so the n-th section is the same section there too). Both are in the same site, built
by the same ``make book``. For every page that has a twin, this extension

- adds a language switch to each heading (h1, h2, ...) of the page: a link to the twin's
  heading at the same position (the n-th section of one page is the n-th section of the
  other; ``tests/test_book_content.py`` checks that twins have the same headings, so the
  position is the section), so the switch on the page's title leads to the twin's top and
  the one on section 0.3 to the twin's section 0.3;
- marks a Korean page ``<html lang="ko">`` and captions its figures "그림 0.1" instead of
  "Fig. 0.1" (the numbers are the English page's: ``chapter_numbers`` numbers both alike).

- gives a Korean page's figures their Korean names and captions. A twin's code cells are the
  English page's, metadata included (`mystnb: figure: {name, caption}`), because the execution
  cache hashes every cell's source *and metadata*: only then does the twin reuse the English
  page's execution. Figure names are site-wide labels, so a twin's figure ``fig-band`` is
  renamed ``fig-band-ko`` (its ``{numref}``s say ``fig-band-ko``), and its caption is replaced
  by the one under ``captions:`` in the twin's front matter (front matter other than the kernel
  is not hashed either).

Section ids are read from each page's doctree when it is read and kept in the environment,
so a page rebuilt alone still links to the ids of a twin that was not.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import yaml
from docutils import nodes
from sphinx.transforms import SphinxTransform

KOREAN = "book/ko/"
KOREAN_LABS = "labs/ko/"  # the Korean lab releases, labs/ko/<lab>/<lab>, twins of labs/<lab>/<lab>
SUFFIX = "-ko"          # a twin's figure names: the English page's plus this
AUTOMATIC_ID = re.compile(r"id\d+")   # docutils' id for a heading with no ASCII letters
LABEL = {"ko": ("한국어", "이 절을 한국어로 읽기"), "en": ("English", "Read this section in English")}


def twin_of(docname: str) -> str | None:
    """The other language's docname of a page (whether or not it exists)."""
    if docname.startswith(KOREAN):
        return "book/" + docname[len(KOREAN):]
    if docname.startswith("book/"):
        return KOREAN + docname[len("book/"):]
    parts = docname.split("/")
    if len(parts) == 4 and docname.startswith(KOREAN_LABS) and parts[2] == parts[3]:
        return f"labs/{parts[2]}/{parts[3]}"
    if len(parts) == 3 and parts[0] == "labs" and parts[1] == parts[2] and parts[1] != "ko":
        return f"{KOREAN_LABS}{parts[1]}/{parts[2]}"
    return None


def is_korean(docname: str) -> bool:
    return docname.startswith((KOREAN, KOREAN_LABS))


def front_matter(path: str | Path) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    return (yaml.safe_load(text[4:text.index("\n---", 4)]) or {}) if text.startswith("---\n") else {}


_INLINE = re.compile(r"\$([^$]+)\$|`([^`]+)`")


def inline_markup(text: str) -> list[nodes.Node]:
    """A front-matter caption's text as nodes: ``$math$`` as math (MathJax renders it, as it
    does the English caption's) and ```code``` as code; everything else as plain text."""
    parts, at = [], 0
    for match in _INLINE.finditer(text):
        parts.append(nodes.Text(text[at:match.start()]))
        math, code = match.groups()
        parts.append(nodes.math(math, math) if math is not None else nodes.literal(code, code))
        at = match.end()
    return [*parts, nodes.Text(text[at:])]


class TwinFigures(SphinxTransform):
    """On a Korean twin: each figure's name gets the suffix, its caption the front matter's text."""

    default_priority = 100          # before any transform reads the names (Sphinx's domains: 850)

    def apply(self, **kwargs) -> None:
        if not is_korean(self.env.docname):
            return
        document = self.document
        captions = front_matter(document["source"]).get("captions") or {}
        for figure in list(document.findall(nodes.figure)):
            names = list(figure["names"])
            for old in names:
                new = old + SUFFIX
                old_id = document.nameids.pop(old, None)
                new_id = nodes.make_id(new)
                document.nametypes[new] = document.nametypes.pop(old, True)
                document.nameids[new] = new_id
                if old_id is not None:
                    document.ids.pop(old_id, None)
                    figure["ids"] = [new_id if i == old_id else i for i in figure["ids"]]
                document.ids[new_id] = figure
                figure["names"] = [new if n == old else n for n in figure["names"]]
                if old in captions:
                    caption = next(iter(figure.findall(nodes.caption)), None)
                    if caption is not None:
                        del caption[:]
                        caption += inline_markup(" ".join(str(captions[old]).split()))


class TwinSections(SphinxTransform):
    """On a Korean twin: each section's id made from its heading takes the id of the English
    twin's section at the same position. docutils makes ids from ASCII letters only, so a
    Korean heading became ``id1``, ``id2``, ... (a counter that shifts when a section is
    added) or a fragment ("0.4 왜 8 kHz인가": ``khz``); now a section's address is the English
    one's on the other page (``ko/ch00_waveform_to_frames.html#why-8-khz``). Ids of
    ``(label)=`` targets are kept."""

    default_priority = 100

    def apply(self, **kwargs) -> None:
        if not is_korean(self.env.docname):
            return
        english = _sections(self.env).get(twin_of(self.env.docname)) or []
        document = self.document
        sections = [section for section in document.findall(nodes.section) if section["ids"]]
        for section, wanted in zip(sections, english):
            title = next((child for child in section.children if isinstance(child, nodes.title)), None)
            from_title = nodes.make_id(title.astext()) if title is not None else None
            automatic = [i for i in section["ids"] if AUTOMATIC_ID.fullmatch(i) or i == from_title]
            if not automatic or AUTOMATIC_ID.fullmatch(wanted) or wanted in document.ids:
                continue
            old = automatic[0]
            section["ids"] = [wanted if i == old else i for i in section["ids"]]
            document.ids.pop(old, None)
            document.ids[wanted] = section
            for name, id_ in list(document.nameids.items()):
                if id_ == old:
                    document.nameids[name] = wanted


def _sections(env) -> dict[str, list[str]]:
    if not hasattr(env, "twin_sections"):
        env.twin_sections = {}
    return env.twin_sections


def record_sections(app, doctree) -> None:
    _sections(app.env)[app.env.docname] = [section["ids"][0] for section in doctree.findall(nodes.section)
                                           if section["ids"]]


def purge(app, env, docname) -> None:
    _sections(env).pop(docname, None)


def merge(app, env, docnames, other) -> None:
    _sections(env).update({d: ids for d, ids in _sections(other).items() if d in docnames})


def add_switches(app, doctree, docname) -> None:
    twin = twin_of(docname)
    sections = _sections(app.env)
    if twin is None or twin not in sections or twin not in app.env.all_docs:
        return
    language = "en" if is_korean(docname) else "ko"
    text, title = LABEL[language]
    targets = sections[twin]
    page = app.builder.get_relative_uri(docname, twin)
    for position, section in enumerate(s for s in doctree.findall(nodes.section) if s["ids"]):
        heading = next((child for child in section.children if isinstance(child, nodes.title)), None)
        if heading is None or not targets:
            continue
        anchor = targets[position] if position < len(targets) else targets[0]
        href = f"{page}#{anchor}"
        heading += nodes.raw("", f' <a class="language-switch" href="{html.escape(href)}" hreflang="{language}" '
                                 f'lang="{language}" title="{title}">{text}</a>', format="html")


def korean_page(app, pagename, templatename, context, doctree) -> None:
    if not is_korean(pagename):
        return
    context["language"] = "ko"
    if "body" in context:
        for before in ('<span class="caption-number">Fig. ', '<span class="std std-numref">Fig. '):
            context["body"] = context["body"].replace(before, before.replace("Fig. ", "그림 "))


def setup(app):
    app.add_transform(TwinFigures)
    app.add_transform(TwinSections)
    app.connect("doctree-read", record_sections)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    app.connect("doctree-resolved", add_switches)
    app.connect("html-page-context", korean_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
