"""Sphinx extension: figures (and tables, code blocks) are numbered per chapter, "Fig. 3.1".

Sphinx numbers figures book-wide unless the toctree is ``numbered``, and a numbered toctree
would number the chapters itself: from 1 (chapter 0 would become 1, chapter 3 would become 4)
and on top of the numbers the headings already carry ("# 3. Attention", "## 3.1 ..."), so the
reader would see every heading numbered twice. The headings keep their own numbers; this
extension only renumbers the captions, after Sphinx has assigned its book-wide numbers: a
chapter's page, ``book/chNN_<slug>``, takes ``NN`` from its name, so its figures are NN.1,
NN.2, ... in the order they appear. Any other page numbers its own captions 1, 2, ...
(``{numref}`` uses the same numbers, since both read ``env.toc_fignumbers``.)
"""
from __future__ import annotations

import re

CHAPTER = re.compile(r"^book/(?:ko/)?ch(\d\d)_")   # a Korean twin, book/ko/chNN_<slug>, too


def chapter_of(docname: str) -> int | None:
    match = CHAPTER.match(docname)
    return int(match.group(1)) if match else None


def renumber(app, env) -> list[str]:
    changed = []
    for docname, by_type in env.toc_fignumbers.items():
        chapter = chapter_of(docname)
        prefix = () if chapter is None else (chapter,)
        new = {figtype: {figure_id: (*prefix, position)
                         for position, figure_id in enumerate(sorted(numbers, key=numbers.get), 1)}
               for figtype, numbers in by_type.items()}
        if new != by_type:
            env.toc_fignumbers[docname] = new
            changed.append(docname)
    return changed


def setup(app):
    # after Sphinx's TocTreeCollector (default priority 500) has assigned the book-wide numbers
    app.connect("env-get-updated", renumber, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
