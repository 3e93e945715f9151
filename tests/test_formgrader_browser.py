"""nbgrader's formgrader, live, on the graded class: a hostile submission runs no script and changes no score.

The formgrader renders each autograded notebook in the instructor's browser, markdown as raw
HTML, on the origin of the Jupyter server that saves the scores. So the autograded notebook is
sanitised like the feedback page (``autograder.feedback.sanitise_notebook``, the last step of
autograding). This test copies the session's graded class (``conftest.graded``), starts a
Jupyter server on it, opens in Chromium the manual-grading page of every hostile submission
(the attack fixtures with HTML in a written answer or printed output, the malformed
submissions with HTML in their names) and of the solution, and checks that no dialog opened,
no payload ran (each sets ``window.__pwned`` or the title), no request went to the payloads'
host, and that the gradebook's every score is what it was before the pages were opened.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from autograder import gradebook
from autograder.feedback import SANITISED_KEY
from conftest import LAB
from test_feedback_browser import static_problems

HOSTILE = ("attack-formgrader_score_typing", "attack-formgrader_click_full_credit", "attack-xss_written_answer",
           "attack-print_host_paths", "malformed-html_in_names")
PAYLOAD_HOST = "192.0.2.1"
MANUAL_CELL = "explain_short_term_memory"


def _scores(out: Path) -> dict:
    """(student, grade id) -> (auto, manual, extra credit) for every grade of Lab 1 in the gradebook."""
    scores = {}
    with gradebook._open(out) as book:
        for submission in book.notebook_submissions(LAB, LAB):
            for grade in submission.grades:
                scores[(submission.student.id, grade.name)] = (grade.auto_score, grade.manual_score,
                                                               grade.extra_credit)
    return scores


def _submission_ids(out: Path, students) -> dict[str, str]:
    with gradebook._open(out) as book:
        return {student: book.find_submission_notebook(LAB, LAB, student).id for student in students}


def _free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def formgrader(graded, tmp_path_factory):
    """A Jupyter server with nbgrader's formgrader on a copy of the session's graded class."""
    out = tmp_path_factory.mktemp("formgrader") / "course"
    shutil.copytree(graded["out"], out)
    port = _free_port()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyter")), "server", "--allow-root", "--no-browser",
         f"--port={port}", "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.root_dir=."],
        cwd=out, env=env, stdout=subprocess.DEVNULL, stderr=open(out.parent / "server.log", "wb"))
    site = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(site + "/api", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"the Jupyter server did not start: {(out.parent / 'server.log').read_text()[-2000:]}")
        yield out, site
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_the_autograded_notebooks_are_sanitised(graded):
    import nbformat
    for student in HOSTILE + ("solution",):
        path = graded["out"] / "autograded" / student / LAB / f"{LAB}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        markdown = [cell for cell in notebook.cells if cell.cell_type in ("markdown", "raw")]
        assert markdown and all(cell.metadata.get(SANITISED_KEY) for cell in markdown), path
        for cell in markdown:       # what the formgrader will pass through as raw HTML
            assert static_problems(cell.source) == [], (path, cell.source[:300])


def test_no_hostile_submission_runs_a_script_or_changes_a_score_in_the_formgrader(graded, formgrader):
    from test_book import CHROMIUM
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    out, site = formgrader
    before = _scores(out)
    assert before, "the gradebook holds no grades of Lab 1"
    students = [student for student in HOSTILE + ("solution",) if (student, MANUAL_CELL) in before]
    assert set(students) >= {"attack-formgrader_score_typing", "attack-formgrader_click_full_credit", "solution"}
    ids = _submission_ids(out, students)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for student in students:
            page = browser.new_page()
            page.set_default_timeout(180_000)     # nbconvert renders each page on request: slow on a busy machine

            def route(route, student=student):
                url = route.request.url
                if url.startswith(site):
                    route.continue_()
                else:                     # the formgrader's own CDN MathJax: not ours, not reachable
                    if PAYLOAD_HOST in url:
                        problems.append(f"{student}: a request to {url}")
                    route.abort()

            page.route("**/*", route)
            page.on("dialog", lambda dialog, student=student: (
                problems.append(f"{student}: dialog {dialog.message}"), dialog.dismiss()))
            page.goto(f"{site}/formgrader/submissions/{ids[student]}/", wait_until="load")
            page.wait_for_selector(f"input.score[id='{MANUAL_CELL}']")
            page.wait_for_timeout(8_000)      # time for anything that fires on load, focus, toggle or later
            ran = page.evaluate("() => window.__pwned === undefined ? null : String(window.__pwned)")
            if ran is not None or "pwned" in page.title():
                problems.append(f"{student}: a payload ran (window.__pwned={ran}, title {page.title()!r})")
            if student.startswith("attack-formgrader"):
                # and the answer is there to be marked, as text
                shown = page.inner_text("#notebook")
                if not ("onerror" in shown or "ontoggle" in shown):
                    problems.append(f"{student}: the written answer is not shown as text")
            page.close()
        browser.close()
    time.sleep(1)
    after = _scores(out)
    changed = {key: (before.get(key), after.get(key)) for key in set(before) | set(after)
               if before.get(key) != after.get(key)}
    assert problems == [] and changed == {}, (problems, changed)
