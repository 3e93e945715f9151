"""``python -m autograder``: release labs, grade submissions, fill a notebook with answers."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    release = commands.add_parser("release", help="generate labs/<lab>/<lab>.ipynb (and labs/ko/<lab>/<lab>.ipynb where solutions/<lab>/ko.yml exists) from solutions/ with nbgrader")
    release.add_argument("labs", nargs="*", help="lab slugs (default: every lab)")

    grade = commands.add_parser("grade", help="grade SUBMISSIONS (<student>/<lab>/<lab>.ipynb) into OUT")
    grade.add_argument("submissions", type=Path)
    grade.add_argument("out", type=Path)
    grade.add_argument("--lab", action="append", dest="labs", help="grade only this lab (repeatable)")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade.add_argument("--cell-timeout", type=int, default=120, help="seconds per cell (default 120)")
    grade.add_argument("--call-timeout", type=int, default=30, help="seconds per call to a student function")
    grade.add_argument("--notebook-budget", type=int, default=600, help="seconds per notebook (default 600)")
    grade.add_argument("--jobs", "-j", type=int, default=0,
                       help="submissions graded at once on this machine (default: the number of cores)")
    grade.add_argument("--scheduler", metavar="tcp://HOST:8786",
                       help="grade on this Dask cluster instead (each submission is one task)")

    export = commands.add_parser("export", help="final grades, one row per student, from OUT's gradebook")
    export.add_argument("out", type=Path, help="the folder `grade` wrote")
    export.add_argument("--format", choices=["wide", "canvas"], default="wide",
                        help="wide: final_grades.csv; canvas: final_grades_canvas.csv (Canvas/Moodle import)")

    fill = commands.add_parser("fill", help="fill a student notebook's answer cells from answers files")
    fill.add_argument("notebook", type=Path, help="the student notebook, e.g. labs/<lab>/<lab>.ipynb")
    fill.add_argument("answers", type=Path, nargs="*", help="files of '# %%%% <grade_id>' cells, applied in order")
    fill.add_argument("-o", "--output", type=Path, required=True)
    fill.add_argument("--source", type=Path, help="take the instructor notebook's answers first")

    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            from .course import lab_names
            from .release import release_all
            for lab in args.labs or lab_names():
                for path in release_all(lab):
                    print(f"wrote {path}")
        elif args.command == "grade":
            from .grade import grade_folder
            from .sandbox import Limits, sandbox_available
            if not sandbox_available():
                raise RuntimeError("bubblewrap is not installed: apt-get install bubblewrap")
            limits = Limits(cell_timeout=args.cell_timeout, call_timeout=args.call_timeout,
                            notebook_budget=args.notebook_budget)
            started = time.perf_counter()
            if args.jobs < 0:
                raise ValueError("--jobs must be a positive number of processes")
            results = grade_folder(args.submissions, args.out, args.labs, not args.no_progress, limits,
                                   jobs=args.jobs or None, scheduler=args.scheduler)
            seconds = time.perf_counter() - started
            failed = sum(result.status == "grader error" for result in results)
            print(f"graded {len(results)} notebooks in {seconds:.1f} s ({seconds / len(results):.1f} s each), "
                  f"{failed} grader errors: {args.out / 'grades.csv'}; the nbgrader course for the "
                  f"formgrader is {args.out} (make formgrader OUT={args.out})")
        elif args.command == "export":
            from .export import export_final
            print(f"wrote {export_final(args.out, args.format)}")
        elif args.command == "fill":
            from .fill import fill_files
            fill_files(args.notebook, args.answers, args.output, args.source)
            print(f"wrote {args.output}")
    except KeyboardInterrupt:
        print("interrupted: results graded so far are kept; run the same command again to go on",
              file=sys.stderr)
        return 130
    except Exception as error:   # the CLI's contract: a sentence, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
