"""Seconds to execute each instructor notebook end to end, as a student's kernel would.

    .venv/bin/python benchmarks/lab_execution.py [lab ...]
"""
from __future__ import annotations

import argparse
import time

import nbformat
from nbclient import NotebookClient

from autograder.course import lab_names, source_notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", metavar="lab", help=f"one of {', '.join(lab_names())} (default: all)")
    labs = parser.parse_args().labs
    unknown = sorted(set(labs) - set(lab_names()))
    if unknown:
        parser.error(f"unknown lab {', '.join(unknown)}; the labs are {', '.join(lab_names())}")
    for lab in labs or lab_names():
        path = source_notebook(lab)
        notebook = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        print(f"{lab}: {time.perf_counter() - started:.1f} s to execute {path.name}")


if __name__ == "__main__":
    main()
