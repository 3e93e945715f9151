"""``make export``: final grades, one row per student, with the formgrader's manual marks.

Scores come from the class's gradebook (``OUT/gradebook.db``), so a written answer marked
in the formgrader counts; what was submitted comes from the saved results. Each lab gets
a score column (autograded + manual) and a status column that tells a notebook submitted
untouched from one not submitted at all. ``--format canvas`` writes the columns a Canvas
gradebook import reads (Moodle's CSV import reads the same file, matching on the login id).
"""
from __future__ import annotations

import json
from pathlib import Path

from .gradebook import gradebook_scores
from .grade import GradingError, Result, _load_result, _points, _write_rows

FINAL = {"wide": "final_grades.csv", "canvas": "final_grades_canvas.csv"}
CANVAS_FIRST = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def _status(result: Result | None) -> str:
    if result is None or result.submitted == "not submitted":
        return "not submitted"
    if result.submitted == "untouched":
        return "submitted untouched"
    return result.status


def _results(out: Path) -> dict[tuple[str, str], Result]:
    found = {}
    for path in sorted((out / "results").glob("*/*.json")):
        result = _load_result(path)
        if result is not None:
            found[(result.gradebook_id or path.parent.name, result.lab)] = result
    return found


def export_final(out: Path, fmt: str = "wide") -> Path:
    """Write ``OUT/final_grades.csv`` (or the Canvas file) and return its path."""
    out = Path(out)
    if fmt not in FINAL:
        raise GradingError(f"unknown format {fmt!r}; the formats are {', '.join(FINAL)}")
    if not (out / "gradebook.db").is_file():
        raise GradingError(f"{out} holds no gradebook.db: grade a class into it first (make grade OUT={out})")
    names = json.loads((out / "students.json").read_text()) if (out / "students.json").is_file() else {}
    results = _results(out)
    scores = gradebook_scores(out)
    labs = sorted({lab for _, lab in results})
    students = sorted(set(names) | {student for student, _ in results}, key=lambda s: names.get(s, s))
    maxima = {lab: next(r.max_score + r.manual_max_score for (_, l), r in results.items() if l == lab)
              for lab in labs}
    rows = []
    for student in students:
        row = {"student_id": names.get(student, student)}
        total = 0.0
        for lab in labs:
            result = results.get((student, lab))
            score = scores.get((student, lab), result.score if result else 0.0)
            total += score
            row[lab], row[f"{lab} status"] = _points(score), _status(result)
        row["total"] = _points(total)
        rows.append(row)
    path = out / FINAL[fmt]
    if fmt == "wide":
        columns = ["student_id", *(name for lab in labs for name in (lab, f"{lab} status")), "total"]
        extra = [dict({"student_id": "(points possible)", "total": _points(sum(maxima.values()))},
                      **{lab: _points(maxima[lab]) for lab in labs}, **{f"{lab} status": "" for lab in labs})]
        _write_rows(path, columns, rows, extra)
    else:
        columns = CANVAS_FIRST + labs
        canvas = [dict({"Student": row["student_id"], "ID": "", "SIS User ID": "", "SIS Login ID": row["student_id"],
                        "Section": ""}, **{lab: row[lab] for lab in labs}) for row in rows]
        extra = [dict({"Student": "Points Possible", "ID": "", "SIS User ID": "", "SIS Login ID": "",
                       "Section": ""}, **{lab: _points(maxima[lab]) for lab in labs})]
        _write_rows(path, columns, canvas, extra)
    return path
