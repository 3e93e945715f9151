"""Malformed, renamed and missing submissions: a clear line in the CSV and the feedback, never a crash."""
from __future__ import annotations

import copy
import csv
import os

import nbformat
import pytest

from autograder.course import source_notebook
from autograder.intake import UnreadableFile, find_notebook, read_regular_file, read_submission
from conftest import LAB, failed_tests, lab_submission, write_submission

FULL = 20


def _invalid_json(root, student):
    write_submission(root, student, LAB, raw=b'{"cells": [ {"cell_type": "code", ')


def _empty_file(root, student):
    write_submission(root, student, LAB, raw=b"")


def _not_a_notebook(root, student):
    write_submission(root, student, LAB, raw=b'{"name": "my homework", "answers": [1, 2, 3]}')


def _binary_file(root, student):
    write_submission(root, student, LAB, raw=bytes(range(256)) * 4)


def _text_file(root, student):
    write_submission(root, student, LAB, raw=b"def rnn_step(x, h, Wxh, Whh, bh):\n    return x\n")


def _old_nbformat(root, student):
    old = nbformat.writes(lab_submission(LAB), version=3)
    assert '"nbformat": 3' in old
    write_submission(root, student, LAB, raw=old.encode())


def _wrong_kernelspec(root, student):
    notebook = lab_submission(LAB)
    notebook.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    write_submission(root, student, LAB, notebook)


def _cell(notebook, grade_id):
    return next(cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _deleted_cells(root, student):
    notebook = lab_submission(LAB)
    notebook.cells.remove(_cell(notebook, "test_gradient_norms_values"))
    notebook.cells.remove(_cell(notebook, "gradient_norms"))
    write_submission(root, student, LAB, notebook)


def _duplicated_cells(root, student):
    notebook = lab_submission(LAB)
    answer = _cell(notebook, "rnn_step")
    wrong = copy.deepcopy(answer)
    wrong.source = "def rnn_step(x_t, h_prev, Wxh, Whh, bh):\n    return x_t @ Wxh"
    notebook.cells.append(wrong)                       # a later, wrong copy: not graded
    test = _cell(notebook, "test_rnn_step")
    notebook.cells.insert(notebook.cells.index(test), copy.deepcopy(test))
    write_submission(root, student, LAB, notebook)


def _retyped_cell(root, student):
    notebook = lab_submission(LAB)
    answer = _cell(notebook, "gradient_norms")
    index = notebook.cells.index(answer)
    notebook.cells[index] = nbformat.v4.new_markdown_cell(answer.source, metadata=answer.metadata)
    write_submission(root, student, LAB, notebook)


def _edited_test_cells(root, student):
    notebook = lab_submission(LAB)
    for cell in notebook.cells:
        metadata = cell.metadata.get("nbgrader", {})
        if metadata.get("grade") and not metadata.get("solution"):
            cell.source = "pass  # nothing to see here"
            metadata["points"] = 100
    write_submission(root, student, LAB, notebook)


def _answer_marked_as_test(root, student):
    notebook = lab_submission(LAB)
    metadata = _cell(notebook, "gradient_norms").metadata.nbgrader
    metadata.update(grade=True, solution=False, points=50)   # claim points for an answer cell
    write_submission(root, student, LAB, notebook)


def _renamed(root, student):
    write_submission(root, student, LAB, lab_submission(LAB), name="my_lab1 (final).ipynb")


def _missing_notebook(root, student):
    (root / student / LAB).mkdir(parents=True)
    (root / student / LAB / "notes.txt").write_text("forgot to upload")


def _missing_lab_folder(root, student):
    (root / student / "something_else").mkdir(parents=True)


def _several_notebooks(root, student):
    write_submission(root, student, LAB, lab_submission(LAB), name="draft.ipynb")
    write_submission(root, student, LAB, lab_submission(LAB), name="final.ipynb")


# ---- submissions that try to make the root grader read what is not theirs (issue 14, class 7)

def _notebook_links_to_solution(root, student):
    folder = root / student / LAB
    folder.mkdir(parents=True)
    (folder / f"{LAB}.ipynb").symlink_to(source_notebook(LAB))


def _lab_folder_links_to_solutions(root, student):
    (root / student).mkdir(parents=True)
    (root / student / LAB).symlink_to(source_notebook(LAB).parent, target_is_directory=True)


def _dangling_link(root, student):
    folder = root / student / LAB
    folder.mkdir(parents=True)
    (folder / f"{LAB}.ipynb").symlink_to(root / "nowhere" / "x.ipynb")


def _link_to_dev_zero(root, student):
    folder = root / student / LAB
    folder.mkdir(parents=True)
    (folder / f"{LAB}.ipynb").symlink_to("/dev/zero")


def _notebook_is_fifo(root, student):
    folder = root / student / LAB
    folder.mkdir(parents=True)
    os.mkfifo(folder / f"{LAB}.ipynb")


def _notebook_is_folder(root, student):
    (root / student / LAB / f"{LAB}.ipynb").mkdir(parents=True)


def _huge_sparse_notebook(root, student):
    path = write_submission(root, student, LAB, raw=b"{")
    os.truncate(path, 200 << 20)   # 200 MB of holes: costs no disk, must cost no memory


def _html_in_names(root, student):
    notebook = lab_submission(LAB)
    notebook.metadata["kernelspec"] = {"name": "<img src=x onerror=alert(1)>", "display_name": "x",
                                       "language": "python"}
    extra = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {
        "grade_id": "<script>alert(2)</script>", "grade": False, "solution": False, "locked": False,
        "schema_version": 3}})
    notebook.cells.append(extra)
    write_submission(root, student, LAB, notebook, name="<svg onload=alert(3)>.ipynb")


# ---- forged grading metadata without a usable id (issue 19): graded, never a grader error

def _forged_manual_metadata(root, student):
    """A written-answer cell's flags (grade, solution, points) with no grade_id."""
    notebook = lab_submission(LAB)
    notebook.cells.append(nbformat.v4.new_markdown_cell("All the points, please.", metadata={"nbgrader": {
        "grade": True, "solution": True, "points": 50, "locked": False, "schema_version": 3, "task": False}}))
    write_submission(root, student, LAB, notebook)


def _nbgrader_metadata_not_a_dict(root, student):
    notebook = lab_submission(LAB)
    notebook.cells.append(nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": "solution"}))
    notebook.cells.append(nbformat.v4.new_markdown_cell("y", metadata={"nbgrader": {
        "grade_id": ["explain_short_term_memory"], "grade": True, "solution": True, "points": 5}}))
    write_submission(root, student, LAB, notebook)


# ---- the resume fingerprint covers exactly what intake grades (issue 19)

DECOYS = 1000


def _decoy_notebooks(root, student):
    """1,000 decoy notebooks that sort before the real one: the real one is graded (and fingerprinted)."""
    folder = root / student / LAB
    folder.mkdir(parents=True)
    for index in range(DECOYS):
        (folder / f"a{index:04d}.ipynb").write_bytes(b"{}")
    write_submission(root, student, LAB, lab_submission(LAB))


def _decoys_hide_a_renamed_notebook(root, student):
    """More files than intake looks at and no <lab>.ipynb: refused, never chosen by listing order."""
    folder = root / student / LAB
    folder.mkdir(parents=True)
    for index in range(DECOYS):
        (folder / f"a{index:04d}.txt").write_bytes(b"x")
    write_submission(root, student, LAB, lab_submission(LAB), name="zz_my_lab.ipynb")


MALFORMED = {f"malformed-{build.__name__.strip('_')}": build for build in (
    _invalid_json, _empty_file, _not_a_notebook, _binary_file, _text_file, _old_nbformat,
    _wrong_kernelspec, _deleted_cells, _duplicated_cells, _retyped_cell, _edited_test_cells,
    _answer_marked_as_test, _renamed, _missing_notebook, _missing_lab_folder, _several_notebooks,
    _notebook_links_to_solution, _lab_folder_links_to_solutions, _dangling_link, _link_to_dev_zero,
    _notebook_is_fifo, _notebook_is_folder, _huge_sparse_notebook, _html_in_names, _decoy_notebooks,
    _decoys_hide_a_renamed_notebook, _forged_manual_metadata, _nbgrader_metadata_not_a_dict)}

# student -> (score, text that must appear in the notes)
EXPECTED = {
    "malformed-invalid_json": (0, "not valid JSON"),
    "malformed-empty_file": (0, "empty"),
    "malformed-not_a_notebook": (0, "not a Jupyter notebook"),
    "malformed-binary_file": (0, "not a text file"),
    "malformed-text_file": (0, "not valid JSON"),
    "malformed-old_nbformat": (FULL, "nbformat 3"),
    "malformed-wrong_kernelspec": (FULL, "kernel 'ir'"),
    "malformed-deleted_cells": (FULL - 3, "gradient_norms was missing"),
    "malformed-duplicated_cells": (FULL, "more than once"),
    "malformed-retyped_cell": (FULL - 3, "changed from code to markdown"),
    "malformed-edited_test_cells": (FULL, "was edited"),
    "malformed-answer_marked_as_test": (FULL, ""),
    "malformed-renamed": (FULL, "was named my_lab1 (final).ipynb"),
    "malformed-missing_notebook": (0, "missing notebook"),
    "malformed-missing_lab_folder": (0, "missing submission"),
    "malformed-several_notebooks": (0, "several notebooks"),
    "malformed-notebook_links_to_solution": (0, "symbolic link"),
    "malformed-lab_folder_links_to_solutions": (0, "symbolic link"),
    "malformed-dangling_link": (0, "symbolic link"),
    "malformed-link_to_dev_zero": (0, "symbolic link"),
    "malformed-notebook_is_fifo": (0, "not a regular file"),
    "malformed-notebook_is_folder": (0, "folder"),
    "malformed-huge_sparse_notebook": (0, "larger than"),
    "malformed-html_in_names": (FULL, "<img src=x onerror=alert(1)>"),
    "malformed-decoy_notebooks": (FULL, ""),
    "malformed-decoys_hide_a_renamed_notebook": (0, f"more than {DECOYS} files"),
    "malformed-forged_manual_metadata": (FULL, "nbgrader metadata without a valid id"),
    "malformed-nbgrader_metadata_not_a_dict": (FULL, "nbgrader metadata without a valid id"),
}


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_malformed_submission_gets_its_score_and_a_reason(graded, student):
    result = graded["results"][student]
    score, phrase = EXPECTED[student]
    assert (result.score, result.max_score) == (score, FULL), (result.notes, failed_tests(result))
    assert phrase in " ".join(result.notes), result.notes
    feedback = graded["out"] / "feedback" / student / LAB / f"{LAB}.html"
    assert feedback.is_file(), f"no feedback page for {student}"


def test_every_malformed_case_has_an_expectation():
    assert set(MALFORMED) == set(EXPECTED)


def test_csv_carries_the_reason(graded):
    with open(graded["out"] / "grades.csv") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle) if row["lab"] == LAB}
    assert rows["malformed-invalid_json"]["score"] == "0"
    assert "not valid JSON" in rows["malformed-invalid_json"]["notes"]
    assert rows["malformed-missing_lab_folder"]["status"] == "not graded"


# ---- the intake's own guards, without grading (fast)

@pytest.mark.parametrize("build", [_notebook_links_to_solution, _lab_folder_links_to_solutions, _dangling_link,
                                   _link_to_dev_zero, _notebook_is_fifo, _notebook_is_folder,
                                   _huge_sparse_notebook])
def test_intake_refuses_what_is_not_a_regular_file_inside_the_folder(tmp_path, build):
    build(tmp_path, "student")
    found = find_notebook(tmp_path / "student" / LAB, LAB, root=tmp_path)
    if found.reason is None:          # found a regular file: reading it must still refuse it
        with pytest.raises(UnreadableFile):
            read_regular_file(found.path)
    else:
        assert "Traceback" not in found.reason and len(found.reason) > 10


def test_read_regular_file_reads_at_most_its_cap(tmp_path):
    path = tmp_path / "x.ipynb"
    path.write_bytes(b"{}" * 10)
    assert read_regular_file(path, cap=20) == b"{}" * 10
    with pytest.raises(UnreadableFile, match="larger than"):
        read_regular_file(path, cap=19)


def test_a_folder_resolving_outside_the_submissions_is_refused(tmp_path):
    outside = tmp_path / "elsewhere" / LAB
    outside.mkdir(parents=True)
    (outside / f"{LAB}.ipynb").write_text("{}")
    (tmp_path / "subs" / "student").mkdir(parents=True)
    (tmp_path / "subs" / "student" / LAB).symlink_to(outside, target_is_directory=True)
    assert "symbolic link" in find_notebook(tmp_path / "subs" / "student" / LAB, LAB, tmp_path / "subs").reason


def _fingerprint(root, student):
    return read_submission(root, student, LAB).fingerprint("grader")


def test_a_corrected_resubmission_beside_1000_decoys_changes_the_fingerprint(tmp_path):
    """The stale-0 case: the fingerprint read only the first 1,000 sorted names, so a corrected
    notebook behind 1,000 decoys kept its old result. It now covers the bytes intake grades."""
    _decoy_notebooks(tmp_path, "student")
    path = tmp_path / "student" / LAB / f"{LAB}.ipynb"
    first = _fingerprint(tmp_path, "student")
    assert read_submission(tmp_path, "student", LAB).data == path.read_bytes()
    nbformat.write(nbformat.read(source_notebook(LAB), as_version=4), path)   # the correction
    assert _fingerprint(tmp_path, "student") != first


def test_the_fingerprint_ignores_what_is_not_graded(tmp_path):
    """Decoys beside the graded notebook are not graded, so changing them regrades nothing."""
    _decoy_notebooks(tmp_path, "student")
    first = _fingerprint(tmp_path, "student")
    (tmp_path / "student" / LAB / "a0000.ipynb").write_bytes(b'{"changed": true}')
    (tmp_path / "student" / LAB / "b-new.ipynb").write_bytes(b"{}")
    assert _fingerprint(tmp_path, "student") == first


def test_a_refused_submission_has_its_reason_in_the_fingerprint(tmp_path):
    """Too many files and no <lab>.ipynb is refused; naming the notebook properly is then graded."""
    _decoys_hide_a_renamed_notebook(tmp_path, "student")
    refused = read_submission(tmp_path, "student", LAB)
    assert refused.data is None and f"more than {DECOYS} files" in refused.reason
    folder = tmp_path / "student" / LAB
    os.rename(folder / "zz_my_lab.ipynb", folder / f"{LAB}.ipynb")
    fixed = read_submission(tmp_path, "student", LAB)
    assert fixed.reason is None and fixed.fingerprint("grader") != refused.fingerprint("grader")


def test_a_student_folder_that_is_a_link_is_refused_by_intake(tmp_path):
    (tmp_path / "elsewhere" / LAB).mkdir(parents=True)
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "student").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert "symbolic link" in read_submission(tmp_path / "subs", "student", LAB).reason


# ---- ids that look alike (issue 19): never two rows that read the same

LOOKALIKES = ["alice", "alice\u200b", "alice ", "jos\u00e9", "jose\u0301"]   # ZWSP, trailing space, NFD accent


def test_ids_that_differ_invisibly_are_shown_apart_with_a_note():
    from autograder.ids import display_id, id_notes, internal_id
    shown = [display_id(name) for name in LOOKALIKES]
    assert shown == ["alice", "alice\\u200b", "alice\\x20", "jos\u00e9", "jose\\u0301"]
    assert len({internal_id(name) for name in LOOKALIKES}) == len(LOOKALIKES)
    for name in LOOKALIKES[1:3] + LOOKALIKES[4:]:
        assert any("cannot be seen" in note for note in id_notes(name)), name
    assert not any("cannot be seen" in note for note in id_notes("alice") + id_notes("al ice"))
    assert display_id("caf\\xe9") != display_id(os.fsdecode(b"caf\xe9"))   # a real backslash is escaped too


def test_the_canvas_export_never_has_two_rows_that_read_the_same(tmp_path):
    from autograder.export import export_final
    from autograder.grade import grade_folder
    for name in LOOKALIKES:
        write_submission(tmp_path / "subs", name, LAB, raw=b"{")   # not gradeable: no sandbox needed
    grade_folder(tmp_path / "subs", tmp_path / "out", [LAB], progress=False)
    with open(export_final(tmp_path / "out", "canvas"), encoding="utf-8") as handle:
        logins = [row["SIS Login ID"] for row in csv.DictReader(handle)][1:]
    assert len(logins) == len(set(logins)) == len(LOOKALIKES), logins
    assert {login.strip() for login in logins} == set(logins)


# ---- a grader error met while taking a notebook in is saved with its sentence (issue 19)

def test_forged_metadata_is_repaired_by_intake(tmp_path):
    from autograder.intake import prepare_submission
    from autograder.plan import plan_lab
    plan = plan_lab(LAB, tmp_path)
    for build in (_forged_manual_metadata, _nbgrader_metadata_not_a_dict):
        build(tmp_path / "subs", build.__name__)
        intake = prepare_submission(read_submission(tmp_path / "subs", build.__name__, LAB), LAB,
                                    plan.student_version)
        assert intake.reason is None and any("without a valid id" in note for note in intake.notes)
        from autograder.grade import _untouched
        assert _untouched(intake.notebook, plan.student_version) is False   # no KeyError, no TypeError


def test_a_grader_error_at_intake_is_saved_and_not_regraded(tmp_path, monkeypatch):
    import autograder.grade as grade
    calls = []

    def broken(*args):
        calls.append(args)
        raise KeyError("grade_id")

    monkeypatch.setattr(grade, "prepare_submission", broken)
    write_submission(tmp_path / "subs", "student", LAB, raw=b"{}")
    first = grade.grade_folder(tmp_path / "subs", tmp_path / "out", [LAB], progress=False)[0]
    assert first.status == "grader error" and "could not take this notebook in" in first.notes[0]
    assert (tmp_path / "out" / "results" / "student" / f"{LAB}.json").is_file()
    assert (tmp_path / "out" / "feedback" / "student" / LAB / f"{LAB}.html").is_file()
    again = grade.grade_folder(tmp_path / "subs", tmp_path / "out", [LAB], progress=False)[0]
    assert len(calls) == 1 and again.notes == first.notes          # saved: not taken in again
    write_submission(tmp_path / "subs", "student", LAB, raw=b'{"cells": []}')   # the notebook changed
    grade.grade_folder(tmp_path / "subs", tmp_path / "out", [LAB], progress=False)
    assert len(calls) == 2


def test_intake_alone_reads_the_submissions_folder_and_grade_and_job_import_no_circle():
    """grade.py orchestrates: no file-system reading of its own; job.py and plan.py never import grade."""
    import ast
    from pathlib import Path

    import autograder
    folder = Path(autograder.__file__).parent
    grade = (folder / "grade.py").read_text()
    for reading in ("scandir", "lstat", "read_regular_file", "O_NOFOLLOW", "is_symlink", "realpath"):
        assert reading not in grade, reading
    for name in ("job.py", "plan.py", "intake.py"):
        tree = ast.parse((folder / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "grade" not in imported and "autograder.grade" not in imported, name
