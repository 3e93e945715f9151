"""``make grade``: grade a folder of submissions into one nbgrader course, a CSV and feedback pages.

The folder is laid out ``<student_id>/<lab>/<lab>.ipynb``. For each student and lab the
run reads and repairs the submission here (:mod:`autograder.intake`, the one owner of what
a submission folder holds, its safety checks and its fingerprint), hands it as data
to :func:`autograder.job.grade_task` (real ``nbgrader autograde`` with the course's trusted
step, then the feedback page), and merges the record it returns into the class's course
under ``OUT`` (:mod:`autograder.gradebook`). Tasks run one at a time, in ``--jobs N``
local processes, or on a Dask cluster (``--scheduler``); merging is always done here,
by this one process.

Each result is saved as soon as it is merged (``OUT/results/<student>/<lab>.json``), keyed
by a fingerprint of exactly what intake read for it and of the grader's inputs, so an interrupted run
picks up where it stopped, and a second run over the same folder changes nothing. The
CSV is sorted, so it is the same for any number of jobs.

Nothing about one submission may end the run: every step for one submission is inside
its own guard.
"""
from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nbgrader import utils
from tqdm import tqdm

from . import gradebook as course_gradebook
from .course import lab_names
from .ids import display_id, id_notes, internal_id
from .intake import Submission, lab_folder_present, prepare_submission, read_submission, student_folders
from .job import grade_task, limits_as_data, notebook_json
from .plan import GRADER_FILES, LabPlan, grader_fingerprint, plan_lab  # noqa: F401 (re-exported)
from .sandbox import Limits

CSV_COLUMNS = ["student_id", "lab", "score", "max_score", "manual_max_score", "status", "notes"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")   # what a spreadsheet reads as a formula
tqdm.monitor_interval = 0   # no monitor thread: a one-job run forks for the bounded feedback step


class GradingError(Exception):
    """A problem with the grading run itself (not with one submission)."""


@dataclass
class TestResult:
    grade_id: str
    score: float
    max_score: float
    message: str


@dataclass
class Result:
    student_id: str             # the student's folder name, as text
    lab: str
    score: float
    max_score: float
    manual_max_score: float
    status: str                 # graded | needs manual grading | not graded | grader error
    notes: list[str] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    fingerprint: str = ""
    gradebook_id: str = ""      # the id nbgrader files it under (ids.internal_id)
    submitted: str = ""         # submitted | untouched | not submitted

    def row(self) -> dict:
        return {"student_id": self.student_id, "lab": self.lab, "score": _points(self.score),
                "max_score": _points(self.max_score), "manual_max_score": _points(self.manual_max_score),
                "status": self.status, "notes": " | ".join(self.notes)}


def _points(value: float) -> str:
    return f"{value:g}"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _feedback_page(result: Result, reason: str) -> str:
    """A plain page for when nbgrader's own feedback cannot be made."""
    from .feedback import plain_page   # the same shell as every feedback page: escaped, CSP, no host paths
    return plain_page(result.lab, result.status, reason, result.score, result.max_score, result.notes)


def _untouched(notebook, student_version) -> bool:
    released = {cell.metadata.nbgrader["grade_id"]: cell.source for cell in student_version.cells
                if utils.is_solution(cell)}
    answers = {cell.metadata.nbgrader["grade_id"]: cell.source for cell in notebook.cells if utils.is_solution(cell)}
    return all(answers.get(grade_id) == source for grade_id, source in released.items())


def _load_result(path: Path) -> Result | None:
    try:
        data = json.loads(path.read_text())
        data["tests"] = [TestResult(**test) for test in data["tests"]]
        return Result(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None   # unreadable or from another version: grade again


def students_and_labs(submissions: Path, labs: list[str] | None) -> tuple[list[str], list[str]]:
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder of submissions")
    students = student_folders(submissions)
    if not students:
        raise GradingError(f"{submissions} holds no student folders (expected <student_id>/<lab>/<lab>.ipynb)")
    known = lab_names()
    if labs:
        unknown = sorted(set(labs) - set(known))
        if unknown:
            raise GradingError(f"unknown lab {', '.join(unknown)}; the labs are {', '.join(known)}")
        return students, sorted(labs)
    present = sorted({lab for lab in known for student in students if lab_folder_present(submissions, student, lab)})
    if not present:
        raise GradingError(f"no student folder in {submissions} holds a lab folder ({', '.join(known)})")
    return students, present


# --- one submission, on this side -----------------------------------------------------------

def _intake(submission: Submission, student: str, plan: LabPlan, fingerprint: str, limits: Limits,
            template: Path) -> tuple[Result, dict | None]:
    """The submission's result so far, and the task that grades it (None when it cannot be graded)."""
    gradebook_id = internal_id(student)
    result = Result(display_id(student), plan.lab, 0.0, plan.auto_max, plan.manual_max, "not graded",
                    id_notes(student), fingerprint=fingerprint, gradebook_id=gradebook_id,
                    submitted="submitted")
    intake = prepare_submission(submission, plan.lab, plan.student_version)
    result.notes += list(intake.notes)
    reason = intake.reason
    if reason:
        result.notes.insert(0, reason)
        result.submitted = "not submitted" if reason.startswith("missing") else "submitted"
        return result, None
    if _untouched(intake.notebook, plan.student_version):
        result.submitted = "untouched"
    intake.notebook.metadata.setdefault("autograder", {})["notes"] = list(result.notes)
    task = {"student": gradebook_id, "lab": plan.lab, "notebook": notebook_json(intake.notebook),
            "notes": list(result.notes), "limits": limits_as_data(limits), "grader": plan.grader_fingerprint,
            "template": str(template)}
    return result, task


def _finish(result: Result, record: dict) -> Result:
    result.status, result.score = record["status"], float(record["score"])
    result.notes = list(record["notes"])   # the intake's notes travelled with the notebook
    result.tests = [TestResult(**test) for test in record["tests"]]
    return result


def _run_tasks(tasks: list[dict], jobs: int, scheduler):
    """Yield (task, record) as each task finishes: here, in a process pool, or on Dask."""
    if scheduler is not None:
        yield from _run_on_dask(tasks, scheduler)
    elif jobs <= 1:
        for task in tasks:
            yield task, grade_task(task)
    else:
        context = multiprocessing.get_context("spawn")   # no threads or locks inherited from this process
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_die_with_parent) as pool:
            futures = {pool.submit(grade_task, task): task for task in tasks}
            try:
                for future in as_completed(futures):
                    yield futures[future], _record_of(future, futures[future])
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise


def _die_with_parent() -> None:
    """In each pool worker: the kernel sends it SIGTERM when the grading process dies, however it dies
    (a kill, a crash), so no worker outlives it, holding a sandbox uid. Linux only; elsewhere a no-op."""
    import ctypes
    import signal
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)                       # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _record_of(future, task: dict) -> dict:
    try:
        return future.result()
    except Exception as error:   # the worker process died (memory, a signal) or the cluster lost it
        from .job import _error
        return _error(task, f"the grading worker was lost ({type(error).__name__}: {error}); "
                            "not saved, so a rerun grades it again")


def _run_on_dask(tasks: list[dict], scheduler):
    """Each submission is one Dask task running :func:`grade_task`; records come back as data."""
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise GradingError("--scheduler needs dask[distributed]: pip install -r requirements.txt") from None
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout=30) if own else scheduler
    except OSError as error:
        raise GradingError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    try:
        futures = {client.submit(grade_task, task, pure=False, key=f"grade-{index}-{task['lab']}-"
                                 f"{hashlib.sha256(task['student'].encode()).hexdigest()[:8]}"): task
                   for index, task in enumerate(tasks)}
        for future in dask_completed(futures):
            yield futures[future], _record_of(future, futures[future])
    finally:
        if own:
            client.close()


# --- the class ------------------------------------------------------------------------------

def grade_folder(submissions: Path, out: Path, labs: list[str] | None = None, progress: bool = True,
                 limits: Limits = Limits(), jobs: int | None = None, scheduler=None) -> list[Result]:
    """Grade every student's every lab into the course under ``out``; write ``grades.csv``.

    ``jobs`` processes grade at once (default: the number of cores); with ``scheduler`` (a Dask
    address such as ``tcp://host:8786``, or a ``distributed.Client``) the cluster does.
    """
    submissions, out = Path(submissions).absolute(), Path(out).absolute()   # nbgrader changes directory
    jobs = jobs or os.cpu_count() or 1
    students, labs = students_and_labs(submissions, labs)
    if out.resolve().is_relative_to(submissions.resolve()):
        raise GradingError(f"{out} is inside {submissions}; write the results somewhere else")
    course_gradebook.prepare_course(out, labs)
    course_gradebook.add_students(out, [internal_id(student) for student in students])
    course_gradebook.save_students(out, {internal_id(student): display_id(student) for student in students})
    results: dict[tuple[str, str], Result] = {}
    with tempfile.TemporaryDirectory(prefix="grading-") as scratch:
        plans = {lab: plan_lab(lab, Path(scratch)) for lab in labs}
        pending, submitted = [], {}
        bar = tqdm(total=len(students) * len(labs), desc="grading", unit="notebook", disable=not progress)
        failures = 0
        for student in students:
            for lab in labs:
                plan = plans[lab]
                key = (student, lab)
                fingerprint = None
                try:
                    submission = read_submission(submissions, student, lab)   # read once, here
                    fingerprint = submission.fingerprint(plan.grader_fingerprint)
                    saved = _load_result(_saved_path(out, student, lab))
                    if saved is not None and saved.fingerprint == fingerprint:
                        results[key] = saved
                        bar.update(1)
                        continue
                    result, task = _intake(submission, student, plan, fingerprint, limits, plan.template)
                    if task is None:
                        _settle(out, None, result, None, None)
                except Exception as error:   # nothing about one submission may end the run
                    result, task = _grader_error(student, plan, error, fingerprint), None
                    if fingerprint is not None:   # this notebook does the same to this grader every time
                        try:
                            _settle(out, None, result, None, None)
                        except Exception:
                            pass
                results[key] = result
                if task is None:
                    failures += result.status == "grader error"
                    bar.update(1)
                else:
                    pending.append(task)
                    submitted[(task["student"], lab)] = (key, task["notebook"])
        bar.set_postfix(failed=failures)
        with course_gradebook.CourseWriter(out) as writer:   # the one writer of OUT's gradebook
            for task, record in _run_tasks(pending, jobs, scheduler):
                key, notebook = submitted[(task["student"], task["lab"])]
                try:
                    result = _finish(results[key], record)
                    _settle(out, writer, result, record, notebook)
                except Exception as error:
                    result = _grader_error(key[0], plans[key[1]], error)
                results[key] = result
                failures += result.status == "grader error"
                bar.update(1)
                bar.set_postfix(failed=failures)
        bar.close()
    ordered = [results[key] for key in sorted(results, key=lambda key: (display_id(key[0]), key[1]))]
    write_csv(out / "grades.csv", ordered)
    return ordered


def _saved_path(out: Path, student: str, lab: str) -> Path:
    return out / "results" / internal_id(student) / f"{lab}.json"


def _grader_error(student: str, plan: LabPlan, error: Exception, fingerprint: str | None = None) -> Result:
    """A grader error for one submission. One met while taking the notebook in (``fingerprint``
    known) depends only on the notebook and the grader, so it is saved like any result and a
    rerun grades it again only once either changes; any other is not saved, and a rerun retries."""
    if fingerprint is None:
        note = f"internal grader error, not saved so a rerun tries again: {type(error).__name__}: {error}"
    else:
        note = (f"the grader could not take this notebook in ({type(error).__name__}: {str(error)[:200]}); "
                "it was not graded, and it is graded again once the notebook or the grader changes")
    return Result(display_id(student), plan.lab, 0.0, plan.auto_max, plan.manual_max, "grader error",
                  [note] + (id_notes(student) if fingerprint else []), fingerprint=fingerprint or "",
                  gradebook_id=internal_id(student), submitted="submitted")


def _settle(out: Path, writer, result: Result, record: dict | None, notebook: str | None) -> None:
    """Merge one finished submission into the course, then save its result (the commit point)."""
    feedback = out / "feedback" / result.gradebook_id / result.lab / f"{result.lab}.html"
    if record is not None:
        writer.merge(record, notebook)
    if record is None or record.get("feedback") is None:
        reason = result.notes[0] if result.notes else "the grader could not make a feedback page"
        if record is not None and record.get("autograded") is not None:
            reason = "nbgrader could not write the feedback page; ask your instructor for your results"
        _write_atomically(feedback, _feedback_page(result, reason))
    if record is None or record.get("saved", True):
        _write_atomically(_saved_path(out, result.gradebook_id, result.lab),
                          json.dumps(asdict(result), indent=1, sort_keys=True, ensure_ascii=False))


# --- CSV files ------------------------------------------------------------------------------

def csv_safe(value) -> str:
    """A cell a spreadsheet shows as text: a leading = + - @ tab or CR gets a leading '."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _write_rows(path: Path, columns: list[str], rows: list[dict], extra: list[dict] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in [*extra, *rows]:
            writer.writerow({key: csv_safe(value) for key, value in row.items()})
    os.replace(partial, path)


def write_csv(path: Path, results: list[Result]) -> None:
    rows = sorted((result.row() for result in results), key=lambda row: (row["student_id"], row["lab"]))
    _write_rows(path, CSV_COLUMNS, rows)
