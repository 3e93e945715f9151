"""Sphinx extension of the book: each lab's zip, and how to run the lab, on the site.

- When the build starts, `student_release.write_bundles` writes `_build/bundles/<lab>.zip`
  for every lab in `labs/` (so `make book` builds them); links to them are Sphinx download
  links, so a missing zip fails the build.
- Every lab page gets a "Run this lab" box at its top: download the zip, two commands, and,
  when the instructor has set `launch_buttons.jupyterhub_url` and
  `course_student_repository` in `_config.yml`, a link that opens the lab on their
  JupyterHub through nbgitpuller. Nothing is shown for a hub that is not configured.
- Directives: ```` ```{lab-table} ```` (every lab: chapter, notebook, zip) and
  ```` ```{lab-bundles} ```` (a list of the zips), used by `book/labs.md` and `book/intro.md`.
- The Korean edition: a Korean lab page (labs/ko/<slug>/<slug>, made by `make labs` from
  `solutions/<slug>/ko.yml`) gets the box in Korean, offering the Korean zip `<slug>-ko.zip`;
  ```` ```{lab-table} ```` with `:language: ko` is the table of `book/ko/labs.md`: the Korean
  lab pages, notebooks and zips (the English ones, marked (영어), for a lab not yet translated).

The theme's own launch buttons stay off (they would put a hub button on every chapter
page too, pointing at files the student repository does not have).
"""
from __future__ import annotations

from urllib.parse import quote, urlencode

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx import addnodes
from sphinx.util import logging

import student_release

LOGGER = logging.getLogger(__name__)
BUNDLES = student_release.REPO / "_build" / "bundles"


def jupyterhub_link(hub: str, repository: str, branch: str, lab: str) -> str:
    """nbgitpuller link: the hub clones (or updates) the student repository and opens the lab."""
    name = repository.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    query = urlencode({"repo": repository, "branch": branch,
                       "urlpath": f"lab/tree/{name}/labs/{lab}/{lab}.ipynb"}, quote_via=quote, safe="/")
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def _megabytes(lab: str, language: str = "en") -> str:
    path = BUNDLES / student_release.bundle_name(lab, language)
    return f"{path.stat().st_size / 1e6:.1f} MB" if path.exists() else ""


def _download(docname: str, target: str, text: str) -> addnodes.download_reference:
    return addnodes.download_reference("", "", nodes.literal(text, text), reftarget=target,
                                       refdoc=docname, refdomain="", reftype="download",
                                       refexplicit=True, refwarn=True)


def _doc_link(docname: str, target: str, text: str, env=None) -> nodes.Node:
    """A link to the page ``target``; plain text when ``env`` says the book has no such page
    (a lab released in labs/ before its chapter adds it to _toc.yml)."""
    if env is not None and target.lstrip("/") not in env.found_docs:
        return nodes.Text(text)
    return addnodes.pending_xref("", nodes.inline(text, text), refdomain="std", reftype="doc",
                                 reftarget=target, refdoc=docname, refexplicit=True, refwarn=True)


def _paragraph(*parts) -> nodes.paragraph:
    paragraph = nodes.paragraph()
    for part in parts:
        paragraph += nodes.Text(part) if isinstance(part, str) else part
    return paragraph


def lab_page(lab: str, language: str = "en") -> str:
    """The docname of a lab's page: labs/<lab>/<lab>, or labs/ko/<lab>/<lab>."""
    return f"labs/{lab}/{lab}" if language == "en" else f"labs/{language}/{lab}/{lab}"


def lab_of_page(docname: str) -> tuple[str, str] | None:
    """(lab, language) of a lab page's docname; None for any other page."""
    parts = docname.split("/")
    if len(parts) == 3 and parts[0] == "labs" and parts[1] == parts[2] and parts[1] not in student_release.EDITIONS:
        return parts[1], "en"
    if len(parts) == 4 and parts[0] == "labs" and parts[1] in student_release.EDITIONS[1:] and parts[2] == parts[3]:
        return parts[2], parts[1]
    return None


def _commands(lab: str) -> nodes.literal_block:
    text = (f"python3 -m venv .venv && .venv/bin/pip install -r requirements.txt\n"
            f".venv/bin/jupyter lab {lab}.ipynb")
    block = nodes.literal_block(text, text, language="bash")
    block["classes"].append("run-this-lab-commands")
    return block


def run_box(app, docname: str, lab: str, language: str = "en") -> nodes.admonition:
    if language == "ko":
        return run_box_ko(app, docname, lab)
    box = nodes.admonition(classes=["tip", "run-this-lab"])
    box += nodes.title("Run this lab", "Run this lab")
    steps = nodes.enumerated_list()
    steps += nodes.list_item("", _paragraph(
        "Download ", _download(docname, f"/_build/bundles/{lab}.zip", f"{lab}.zip"),
        f" ({_megabytes(lab)}: this notebook, the course's helper package"
        f"{'' if student_release.splits_needed(lab) == [] else ' and the part of the speech corpus it uses'})"
        f" and unzip it."))
    steps += nodes.list_item("", _paragraph(f"In a terminal, in the unzipped folder {lab}/, install "
                                            "and open it (Python 3.11 or newer):"), _commands(lab))
    box += steps
    hub, repository, branch = _hub(app)
    if hub and repository:
        link = nodes.reference("", "", nodes.Text("open this lab on the course's JupyterHub"),
                               refuri=jupyterhub_link(hub, repository, branch, lab))
        box += _paragraph("Or, with nothing to install, ", link, ".")
    box += _paragraph("The first command takes a few minutes, once. ",
                      _doc_link(docname, "/book/labs", "How the labs work"),
                      " explains the self-checks, the grading and how to submit.")
    return box


def run_box_ko(app, docname: str, lab: str) -> nodes.admonition:
    """The box of a Korean lab page: the same steps, in Korean, with the Korean zip."""
    box = nodes.admonition(classes=["tip", "run-this-lab"])
    box += nodes.title("이 실습 실행하기", "이 실습 실행하기")
    name = student_release.bundle_name(lab, "ko")
    steps = nodes.enumerated_list()
    steps += nodes.list_item("", _paragraph(
        _download(docname, f"/_build/bundles/{name}", name),
        f" ({_megabytes(lab, 'ko')}: 이 노트북, 강좌의 도우미 패키지"
        f"{'' if student_release.splits_needed(lab) == [] else ', 이 실습이 쓰는 음성 말뭉치'})를 내려받아 압축을 풉니다."))
    steps += nodes.list_item("", _paragraph(f"터미널에서, 압축을 푼 폴더 {lab}/에서 설치하고 엽니다"
                                            "(Python 3.11 이상):"), _commands(lab))
    box += steps
    hub, repository, branch = _hub(app)
    if hub and repository:
        link = nodes.reference("", "", nodes.Text("강좌의 JupyterHub에서 이 실습 열기"),
                               refuri=jupyterhub_link(hub, repository, branch, lab))
        box += _paragraph("설치 없이 열려면: ", link, ".")
    box += _paragraph("첫 번째 명령은 처음 한 번, 몇 분 걸립니다. 노트북의 첫 셀을 실행하면 자가 점검이 한국어로 "
                      "말합니다. 자가 점검, 채점, 제출 방법은 ",
                      _doc_link(docname, "/book/ko/labs", "실습 안내", app.env), "에 있습니다.")
    return box


def _hub(app) -> tuple[str, str, str]:
    return (app.config.course_jupyterhub_url.strip(), app.config.course_student_repository.strip(),
            app.config.course_student_branch.strip() or "main")


def add_run_box(app, doctree) -> None:
    """doctree-read: a lab page (labs/<slug>/<slug>) gets the box right under its title."""
    docname = app.env.docname
    page = lab_of_page(docname)
    if page is None:
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        return
    title = next(iter(section.findall(nodes.title)), None)
    section.insert(section.index(title) + 1 if title is not None else 0, run_box(app, docname, *page))


class LabTable(Directive):
    """Every lab in labs/, with its chapter, its notebook and its zip (``:language: ko``: in Korean)."""

    option_spec = {"language": lambda value: directives.choice(value, ("en", "ko"))}

    def run(self):
        env = self.state.document.settings.env
        docname = env.docname
        if self.options.get("language", "en") == "ko":
            return [self._korean(env, docname)]
        table = nodes.table(classes=["lab-table"])
        group = nodes.tgroup(cols=4)
        table += group
        for _ in range(4):
            group += nodes.colspec(colwidth=1)
        head = nodes.thead()
        group += head
        head += self._row([_paragraph(text) for text in ("lab", "chapter", "notebook only", "all you need to run it")])
        body = nodes.tbody()
        group += body
        for lab in student_release.lab_names():
            chapter = f"book/{lab}"
            body += self._row([
                _paragraph(_doc_link(docname, f"/labs/{lab}/{lab}", student_release.lab_title(lab), env)),
                _paragraph(_doc_link(docname, f"/{chapter}", f"chapter {lab[2:4].lstrip('0') or '0'}")
                           if chapter in env.found_docs else "not yet published"),
                _paragraph(_download(docname, f"/labs/{lab}/{lab}.ipynb", f"{lab}.ipynb")),
                _paragraph(_download(docname, f"/_build/bundles/{lab}.zip", f"{lab}.zip"),
                           f" ({_megabytes(lab)})"),
            ])
        return [table]

    def _korean(self, env, docname) -> nodes.table:
        """The table in Korean: the Korean lab page, notebook and zip of each lab (English where none)."""
        table = nodes.table(classes=["lab-table"])
        group = nodes.tgroup(cols=4)
        table += group
        for _ in range(4):
            group += nodes.colspec(colwidth=1)
        head = nodes.thead()
        group += head
        head += self._row([_paragraph(text) for text in ("실습", "장", "노트북만", "실행에 필요한 모든 것")])
        body = nodes.tbody()
        group += body
        for lab in student_release.lab_names():
            korean = student_release.has_edition(lab, "ko")
            language = "ko" if korean else "en"
            english = "" if korean else " (영어)"
            number = lab[2:4].lstrip("0") or "0"
            chapter = next((name for name in (f"book/ko/{lab}", f"book/{lab}") if name in env.found_docs), None)
            notebook = f"/labs/ko/{lab}/{lab}.ipynb" if korean else f"/labs/{lab}/{lab}.ipynb"
            zip_name = student_release.bundle_name(lab, language)
            body += self._row([
                _paragraph(_doc_link(docname, "/" + lab_page(lab, language),
                                     student_release.lab_title(lab, language), env), english),
                _paragraph(_doc_link(docname, f"/{chapter}", f"{number}장") if chapter else "아직 공개되지 않음",
                           " (영어)" if chapter and not chapter.startswith("book/ko/") else ""),
                _paragraph(_download(docname, notebook, f"{lab}.ipynb"), english),
                _paragraph(_download(docname, f"/_build/bundles/{zip_name}", zip_name),
                           f" ({_megabytes(lab, language)})"),
            ])
        return table

    @staticmethod
    def _row(cells) -> nodes.row:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += cell
            row += entry
        return row


class LabBundles(Directive):
    """A list: each lab's title and its zip (``:language: ko``: the Korean ones, English where none)."""

    option_spec = {"language": lambda value: directives.choice(value, ("en", "ko"))}

    def run(self):
        env = self.state.document.settings.env
        docname = env.docname
        wanted = self.options.get("language", "en")
        items = nodes.bullet_list()
        for lab in student_release.lab_names():
            language = wanted if student_release.has_edition(lab, wanted) else "en"
            name = student_release.bundle_name(lab, language)
            items += nodes.list_item("", _paragraph(
                _doc_link(docname, "/" + lab_page(lab, language), student_release.lab_title(lab, language), env),
                " (영어)" if language != wanted else "", ": ",
                _download(docname, f"/_build/bundles/{name}", name), f" ({_megabytes(lab, language)})"))
        return [items]


def build_bundles(app) -> None:
    written = student_release.write_bundles(BUNDLES) + student_release.write_bundles(BUNDLES, edition="ko")
    LOGGER.info(f"lab bundles: {', '.join(f'{path.name} ({path.stat().st_size / 1e6:.1f} MB)' for path in written)}")


def take_hub_from_theme(app, config) -> None:
    """Move launch_buttons.jupyterhub_url from the theme's options to this extension."""
    launch = dict(config.html_theme_options.get("launch_buttons", {}) or {})
    if launch.get("jupyterhub_url") and not config.course_jupyterhub_url:
        config.course_jupyterhub_url = launch["jupyterhub_url"]
    launch["jupyterhub_url"] = ""
    config.html_theme_options = {**config.html_theme_options, "launch_buttons": launch}


def setup(app):
    app.add_config_value("course_jupyterhub_url", "", "env")
    app.add_config_value("course_student_repository", "", "env")
    app.add_config_value("course_student_branch", "main", "env")
    app.connect("config-inited", take_hub_from_theme)
    app.connect("builder-inited", build_bundles)
    # before Sphinx's own doctree-read collectors, which register the download links
    app.connect("doctree-read", add_run_box, priority=400)
    app.add_directive("lab-table", LabTable)
    app.add_directive("lab-bundles", LabBundles)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
