"""One submission in, one result record out: the unit of work of every way to grade.

:func:`grade_task` is what the local pool's processes and the Dask workers run. Its
input is plain data (the student's internal id, the lab, the repaired notebook as
JSON, the limits) and so is its output (scores, notes, the autograded notebook as
JSON, the feedback page as HTML). It touches no shared state: each task grades in
its own scratch nbgrader course, copied from a template made once per process, and
the caller merges the record into the class's one gradebook.

Each running task holds one uid of :data:`SANDBOX_UIDS` (a lock file per uid under
``/tmp/autograder-uids``, :mod:`autograder.uids`), so two sandboxes running at once never share a user, its
process cap or its files, whether they run in one pool or in several workers.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import tempfile
import time
import warnings
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning

from .course import nbgrader_config
from .feedback import write_feedback
from .plan import plan_lab
from .sandbox import Limits
from .uids import SANDBOX_UIDS, UID_LOCKS, sandbox_uid  # noqa: F401 (the uid a task holds; re-exported)

warnings.filterwarnings("ignore", category=SAWarning)

FEEDBACK_MIN_SECONDS = 10        # the feedback step always gets this long, even at the budget's end

_templates: dict[str, tuple[str, Path]] = {}   # lab -> (grader fingerprint, template), per process


def template_for(lab: str, fingerprint: str, given: str | None) -> Path:
    """A course folder that knows ``lab`` (source, release, gradebook): the caller's, or one made here."""
    if given and Path(given, "gradebook.db").is_file():
        return Path(given)
    known = _templates.get(lab)
    if known and known[0] == fingerprint:
        return known[1]
    # a worker on another machine makes its own, once per lab
    plan = plan_lab(lab, Path(tempfile.mkdtemp(prefix="autograder-template-")))
    if plan.grader_fingerprint != fingerprint:
        raise RuntimeError("this worker's course checkout differs from the client's "
                           "(its lab, hidden tests or grader are another version)")
    _templates[lab] = (fingerprint, plan.template)
    return plan.template


def _error(task: dict, message: str, seconds: float = 0.0) -> dict:
    return {"student": task["student"], "lab": task["lab"], "status": "grader error", "notes": [message],
            "tests": [], "score": 0.0, "autograded": None, "feedback": None, "saved": False,
            "seconds": seconds}


def grade_task(task: dict) -> dict:
    """Grade one submission; never raises (a problem becomes a ``grader error`` record)."""
    started = time.monotonic()
    try:
        return _grade(task, started)
    except Exception as error:   # a grader bug in one task must not stop the class
        return _error(task, f"internal grader error, not saved so a rerun tries again: "
                            f"{type(error).__name__}: {error}", time.monotonic() - started)


def _grade(task: dict, started: float) -> dict:
    student, lab = task["student"], task["lab"]
    limits = Limits(**task["limits"])
    template = template_for(lab, task["grader"], task.get("template"))
    record = {"student": student, "lab": lab, "status": "not graded", "notes": list(task["notes"]),
              "tests": [], "score": 0.0, "autograded": None, "feedback": None, "saved": True}
    with sandbox_uid() as uid, tempfile.TemporaryDirectory(prefix="course-") as scratch:
        course = Path(scratch) / "course"
        shutil.copytree(template, course)
        submitted = course / "submitted" / student / lab / f"{lab}.ipynb"
        submitted.parent.mkdir(parents=True)
        submitted.write_text(task["notebook"])
        config = nbgrader_config(course, source_directory="source", release_directory="release")
        config.TrustedExecute.cell_timeout = limits.cell_timeout
        config.TrustedExecute.call_timeout = limits.call_timeout
        config.TrustedExecute.notebook_budget = limits.notebook_budget
        config.TrustedExecute.sandbox_uid = uid
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        outcome = api.autograde(lab, student, force=True, create=True)
        if not outcome["success"]:
            detail = (outcome.get("error") or outcome.get("log") or "").strip().splitlines()
            record["status"] = "grader error"
            record["notes"].insert(0, "nbgrader could not grade this notebook: " + (detail[-1] if detail else "?"))
            return record
        autograded = course / "autograded" / student / lab / f"{lab}.ipynb"
        notebook = nbformat.read(autograded, as_version=4)
        record["notes"] = list(notebook.metadata.get("autograder", {}).get("notes", []))
        messages = _test_messages(notebook)
        with Gradebook(config.CourseDirectory.db_url, config.CourseDirectory.course_id) as gradebook:
            graded = gradebook.find_submission_notebook(lab, lab, student)
            for grade in sorted(graded.grades, key=lambda g: g.name):
                if grade.cell_type == "code" and not grade.needs_manual_grade:
                    record["tests"].append({"grade_id": grade.name, "score": float(grade.score or 0),
                                            "max_score": float(grade.max_score),
                                            "message": messages.get(grade.name, "")})
            record["status"] = "needs manual grading" if graded.needs_manual_grade else "graded"
        record["score"] = sum(test["score"] for test in record["tests"])
        record["autograded"] = autograded.read_text()
        remaining = limits.notebook_budget - (time.monotonic() - started)
        page = course / "feedback" / student / lab / f"{lab}.html"
        tests = list(record["tests"])
        if bounded(lambda: write_feedback(autograded, page, lab, tests),   # sanitised, offline math
                   max(remaining, FEEDBACK_MIN_SECONDS)) and page.is_file():
            record["feedback"] = page.read_text()
        else:
            record["notes"].append("The feedback page could not be made within the notebook's time budget.")
    record["seconds"] = round(time.monotonic() - started, 2)
    return record


def _test_messages(notebook) -> dict[str, str]:
    messages = {}
    for cell in notebook.cells:
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            texts = [output.get("evalue") or output.get("text", "") for output in cell.outputs]
            messages[cell.metadata.nbgrader["grade_id"]] = " ".join(t.strip() for t in texts)
    return messages


def bounded(step, seconds: float) -> bool:
    """Run ``step()`` in a forked child killed after ``seconds``; True if it returned truthy in time.

    The feedback step converts student markdown, which can be made arbitrarily slow; the
    fork keeps it inside the notebook's budget without paying a fresh interpreter's start-up.
    """
    pid = os.fork()
    if pid == 0:   # the child: never returns into the caller's code
        code = 1
        try:
            code = 0 if step() else 1
        except BaseException:
            pass
        finally:
            os._exit(code)
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.05)


def limits_as_data(limits: Limits) -> dict:
    return dataclasses.asdict(limits)


def notebook_json(notebook) -> str:
    return json.dumps(notebook, ensure_ascii=False)
