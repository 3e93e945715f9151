"""Grading a class: one nbgrader course under OUT, the same CSV for any number of jobs or on
Dask, resuming, manual marks through to the exports, unsafe ids and links, CSV formulas,
the skip-when-grading tag, and the formgrader's manual-grading page in Chromium.

The session's class run (``graded``, two jobs) is the reference. A small class graded here
with one job, and again on a two-worker ``distributed.LocalCluster``, must give the same
rows and the same gradebook.
"""
from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from autograder import gradebook
from autograder.course import source_notebook, student_notebook
from autograder.export import export_final
from autograder.grade import csv_safe, grade_folder, write_csv
from autograder.ids import display_id, internal_id
from autograder.skipping import SKIP_TAG, defined_names_used_later, should_skip, skipped_sources
from conftest import LAB, TEST_LIMITS, graded_labs, lab_submission, write_submission

SMALL = ("solution", "untouched", "mistake-tanh_missing", "malformed-invalid_json")
GLOB_ID = "glob[1]student"
FORMULA_ID = "=SUM(1,2)"   # a folder name a spreadsheet would run as a formula
NOT_UTF8 = os.fsdecode(b"caf\xe9")
MANUAL_CELL = "explain_short_term_memory"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _links_and_oddities(root: Path) -> None:
    """Submissions a root grader must not follow or choke on."""
    (root / "linked-student").symlink_to(root / "solution")
    (root / "linked-lab").mkdir()
    (root / "linked-lab" / LAB).symlink_to(source_notebook(LAB).parent)
    notebook = root / "linked-notebook" / LAB
    notebook.mkdir(parents=True)
    (notebook / f"{LAB}.ipynb").symlink_to(source_notebook(LAB))
    odd = root / "odd-files" / LAB
    odd.mkdir(parents=True)
    os.mkfifo(odd / "fifo.ipynb")
    (odd / "zero.ipynb").symlink_to("/dev/zero")
    (odd / "dangling.ipynb").symlink_to(root / "nowhere")
    (odd / "folder.ipynb").mkdir()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A few of the class's submissions (made the same way), unsafe ids and links, graded with one job."""
    from conftest import FIXTURES
    from test_grading_intake import MALFORMED
    root = tmp_path_factory.mktemp("small")
    write_submission(root, "solution", LAB, lab_submission(LAB))
    write_submission(root, "untouched", LAB, nbformat.read(student_notebook(LAB), as_version=4))
    write_submission(root, "mistake-tanh_missing", LAB, lab_submission(LAB, FIXTURES / LAB / "tanh_missing.py"))
    MALFORMED["malformed-invalid_json"](root, "malformed-invalid_json")
    write_submission(root, GLOB_ID, LAB, lab_submission(LAB))
    (root / FORMULA_ID / LAB).mkdir(parents=True)
    (root / NOT_UTF8 / LAB).mkdir(parents=True)
    _links_and_oddities(root)
    out = tmp_path_factory.mktemp("small-out")
    started = time.perf_counter()
    results = grade_folder(root, out, [LAB], progress=False, limits=TEST_LIMITS, jobs=1)
    return {"root": root, "out": out, "results": {r.student_id: r for r in results},
            "seconds": time.perf_counter() - started}


def test_out_is_an_nbgrader_course_with_every_submission(graded):
    out = graded["out"]
    for name in ("nbgrader_config.py", "gradebook.db", "source", "release", "submitted", "autograded", "feedback"):
        assert (out / name).exists(), name
    snapshot = gradebook.gradebook_snapshot(out)
    for lab in graded_labs():
        solution = graded["labs"][lab]["solution"]
        assert (out / "autograded" / solution.gradebook_id / lab / f"{lab}.ipynb").is_file()
        assert any(key.startswith(f"{solution.gradebook_id}/{lab}/") for key in snapshot["grades"]), lab
    assert {result.gradebook_id for result in graded["all"]} <= set(snapshot["students"])


def test_csv_is_the_same_for_one_job_as_for_two(graded, small):
    """The class ran with two jobs; the same submissions graded alone with one job give the same rows."""
    two = {(r["student_id"], r["lab"]): r for r in _rows(graded["out"] / "grades.csv")}
    one = {(r["student_id"], r["lab"]): r for r in _rows(small["out"] / "grades.csv")}
    for student in SMALL:
        assert one[(student, LAB)] == two[(student, LAB)], student
    graded_snapshot = gradebook.gradebook_snapshot(graded["out"])["grades"]
    small_snapshot = gradebook.gradebook_snapshot(small["out"])["grades"]
    for key, grade in small_snapshot.items():
        if key.split("/")[0] in SMALL:
            assert graded_snapshot[key] == grade, key


def test_resuming_with_two_jobs_regrades_only_what_is_missing(small, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(small["out"], out)
    lost = out / "results" / "untouched" / f"{LAB}.json"
    kept = out / "results" / "solution" / f"{LAB}.json"
    before = kept.stat().st_mtime_ns
    lost.unlink()
    (out / "grades.csv").unlink()
    grade_folder(small["root"], out, [LAB], progress=False, limits=TEST_LIMITS, jobs=2)
    assert lost.is_file() and kept.stat().st_mtime_ns == before
    assert (out / "grades.csv").read_text() == (small["out"] / "grades.csv").read_text()
    assert gradebook.gradebook_snapshot(out) == gradebook.gradebook_snapshot(small["out"])


def test_dask_local_cluster_gives_the_same_csv_and_gradebook(small, tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is in requirements.txt")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        out = tmp_path / "dask-out"
        grade_folder(small["root"], out, [LAB], progress=False, limits=TEST_LIMITS, scheduler=cluster.scheduler_address)
    assert (out / "grades.csv").read_text() == (small["out"] / "grades.csv").read_text()
    assert gradebook.gradebook_snapshot(out) == gradebook.gradebook_snapshot(small["out"])


def test_unsafe_ids_are_graded_under_safe_ones(small):
    honest = small["results"][GLOB_ID]
    assert honest.score == honest.max_score == 20, honest.notes
    assert honest.gradebook_id != GLOB_ID and "[" not in honest.gradebook_id
    odd = small["results"][display_id(NOT_UTF8)]
    assert display_id(NOT_UTF8) == "caf\\xe9" and "not valid UTF-8" in " ".join(odd.notes)
    names = (small["out"] / "students.json").read_text(encoding="utf-8")
    assert internal_id(GLOB_ID) in names and "caf\\\\xe9" in names


def test_links_are_never_followed(small):
    for student in ("linked-student", "linked-lab", "linked-notebook"):
        result = small["results"][student]
        assert result.score == 0 and "symbolic link" in " ".join(result.notes), (student, result.notes)
        page = (small["out"] / "feedback" / student / LAB / f"{LAB}.html").read_text()
        assert "BEGIN SOLUTION" not in page and "def rnn_step" not in page
    odd = small["results"]["odd-files"]   # a FIFO, links to /dev/zero and nowhere, a folder: none is read
    assert odd.status == "not graded" and odd.score == 0, odd.notes


def test_csv_cells_never_start_a_formula(small, tmp_path):
    rows = {row["lab"] + row["student_id"]: row for row in _rows(small["out"] / "grades.csv")}
    assert rows[LAB + "'" + FORMULA_ID]["score"] == "0"
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_safe(value) == "'" + value
    assert csv_safe("alice") == "alice" and csv_safe("1.5") == "1.5"
    from autograder.grade import Result
    write_csv(tmp_path / "g.csv", [Result("=cmd|' /C calc'!A0", LAB, 0, 20, 2, "graded", ["-2+3"])])
    row = _rows(tmp_path / "g.csv")[0]
    assert row["student_id"].startswith("'=") and row["notes"].startswith("'-")


def test_manual_marks_reach_nbgrader_export_and_the_final_grades(small, tmp_path):
    out = tmp_path / "course"
    shutil.copytree(small["out"], out)
    gradebook.set_manual_score(out, "solution", LAB, MANUAL_CELL, 2)   # what the formgrader does
    before = (out / "grades.csv").read_text()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["nbgrader", "export"], cwd=out, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "grades.csv").read_text() == before, "nbgrader export must not overwrite grades.csv"
    exported = {row["student_id"]: row for row in _rows(out / gradebook.NBGRADER_EXPORT)}
    assert float(exported["solution"]["score"]) == 22.0   # 20 autograded + 2 marked by hand
    final = {row["student_id"]: row for row in _rows(export_final(out))}
    assert final["solution"][LAB] == "22" and final["solution"]["total"] == "22"
    assert final["untouched"][f"{LAB} status"] == "submitted untouched"
    assert final["'" + FORMULA_ID][f"{LAB} status"] == "not submitted"
    assert final["(points possible)"][LAB] == "22"
    canvas = _rows(export_final(out, "canvas"))
    assert list(canvas[0])[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert {row["SIS Login ID"]: row[LAB] for row in canvas}["solution"] == "22"


def test_tagged_cells_define_nothing_a_graded_cell_uses():
    for lab in graded_labs():
        notebook = nbformat.read(source_notebook(lab), as_version=4)
        assert defined_names_used_later(notebook) == [], lab


def test_the_name_check_catches_a_tagged_cell_that_a_test_needs():
    from nbformat.v4 import new_code_cell, new_notebook
    train = new_code_cell("model = fit(data)\nplot(model)", metadata={"tags": [SKIP_TAG]})
    answer = new_code_cell("def predict(x):\n    return model(x)",
                           metadata={"nbgrader": {"grade": False, "solution": True, "grade_id": "predict"}})
    problems = defined_names_used_later(new_notebook(cells=[train, answer]))
    assert len(problems) == 1 and "'model'" in problems[0] and "predict" in problems[0]


def test_only_the_instructors_tag_skips_a_cell():
    from nbformat.v4 import new_code_cell, new_notebook
    given = new_code_cell("train_steps(400)", metadata={"tags": [SKIP_TAG]})
    sources = skipped_sources(new_notebook(cells=[given]))
    assert should_skip(new_code_cell("train_steps(400)"), sources)              # tag removed: still skipped
    assert not should_skip(new_code_cell("train_steps(400) or cheat()"), sources)  # edited: runs
    assert not should_skip(new_code_cell("x = 1", metadata={"tags": [SKIP_TAG]}), sources)  # student's tag


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_formgrader_lists_the_written_answer_for_manual_grading(small, tmp_path):
    from test_book import CHROMIUM
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright
    out = tmp_path / "course"
    shutil.copytree(small["out"], out)
    with gradebook._open(out) as book:
        submission = book.find_submission_notebook(LAB, LAB, "solution").id
    port = _free_port()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyter")), "server", "--allow-root", "--no-browser",
         f"--port={port}", "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.root_dir=."],
        cwd=out, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    site = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(site + "/api", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"{site}/formgrader/manage_submissions/{LAB}", wait_until="networkidle")
            page.wait_for_selector("text=solution", timeout=30_000)
            assert "No data available" not in page.content()
            page.goto(f"{site}/formgrader/submissions/{submission}/", wait_until="networkidle")
            score = page.locator(f"input.score[id='{MANUAL_CELL}']")
            assert score.count() == 1, "the written answer has a score box for manual grading"
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_lab_edited_after_release_does_not_blame_the_student():
    from autograder.intake import restore_graded_cells
    from autograder.release import RELEASE_KEY, released_cells
    received = nbformat.read(student_notebook(LAB), as_version=4)        # what the student got
    assert received.metadata.get(RELEASE_KEY), "make labs stamps each release"
    today = nbformat.read(student_notebook(LAB), as_version=4)           # the instructor edits a cell
    cell = next(c for c in today.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "md_rnn_step")
    cell.source += "\n\nA sentence added after the release."

    def notes(submission):
        return " ".join(restore_graded_cells(submission, today, released_cells(submission, LAB)))

    untouched = nbformat.read(student_notebook(LAB), as_version=4)
    assert "changed by your instructor" in notes(untouched) and "was edited" not in notes(untouched)
    unknown = nbformat.read(student_notebook(LAB), as_version=4)
    del unknown.metadata[RELEASE_KEY]
    assert "differs from the current release" in notes(unknown) and "was edited" not in notes(unknown)
    edited = nbformat.read(student_notebook(LAB), as_version=4)
    mine = next(c for c in edited.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "md_rnn_step")
    mine.source = "I rewrote the question."
    assert "was edited" in notes(edited)


def test_each_running_job_holds_its_own_sandbox_uid():
    from autograder.job import SANDBOX_UIDS, sandbox_uid
    with sandbox_uid() as first, sandbox_uid() as second:
        assert first != second and {first, second} <= set(SANDBOX_UIDS)
    with sandbox_uid() as again:   # released when the job ends (other runs may hold the lowest uids)
        assert again in SANDBOX_UIDS


def test_the_feedback_step_is_bounded_in_time():
    from autograder.job import bounded
    started = time.monotonic()
    assert bounded(lambda: time.sleep(30) or True, 1.0) is False
    assert time.monotonic() - started < 10
    assert bounded(lambda: True, 10.0) is True


@pytest.mark.parametrize("lab", graded_labs())
def test_the_committed_release_is_on_record(lab):
    """make labs stamps the student notebook and records its given cells: commit releases.json with labs/."""
    from autograder.release import RELEASE_KEY, released_cells
    notebook = nbformat.read(student_notebook(lab), as_version=4)
    assert notebook.metadata.get(RELEASE_KEY), f"labs/{lab} has no release stamp: run make labs"
    assert released_cells(notebook, lab) is not None, \
        f"solutions/{lab}/releases.json lacks the release in labs/{lab}: run make labs and commit both"
