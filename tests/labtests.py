"""What every lab's in-process tests share: its notebook, reference answers, fixtures and runs.

A chapter's test module makes one ``LabUnderTest`` and runs the reference, the untouched
stubs and each fixture through the hidden tests (via ``autograder.hidden.LocalStudent``,
which keeps the grader's data-only semantics) and through the visible self-checks.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from autograder.course import SOLUTIONS, source_notebook
from autograder.fill import answers_from_source, read_answers
from autograder.hidden import LocalStudent, load_hidden_tests, load_sibling, run_test

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def read_fixture(path: Path) -> dict[str, str]:
    """grade_id -> source, parsed exactly as the grader's ``fill`` parses it."""
    first = next(line for line in path.read_text().splitlines() if line.strip())
    assert first.startswith("# %% "), f"{path.name}: must start with a '# %% <grade_id>' line"
    return read_answers(path)


def stub(source: str) -> str:
    """What nbgrader leaves of a solution cell: the region becomes raise NotImplementedError()."""
    return re.sub(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION",
                  r"\1raise NotImplementedError()", source, flags=re.S)


class LabUnderTest:
    """One lab: ``solution_ids`` are its graded code cells, ``setup`` what its setup cell gives them,
    ``visible`` maps each test cell to (self-check name, names of the student objects it takes)."""

    def __init__(self, slug: str, solution_ids: tuple[str, ...], setup: str,
                 selfcheck, visible: dict[str, tuple[str, tuple[str, ...]]]):
        self.slug, self.solution_ids, self.setup = slug, solution_ids, setup
        self.selfcheck, self.visible = selfcheck, visible
        self.folder = SOLUTIONS / slug
        self.notebook = source_notebook(slug)
        self.fixtures = FIXTURES / slug
        self.hidden = load_hidden_tests(self.folder)
        self.reference = load_sibling(str(self.folder / "reference.py"), "reference")

    def notebook_cells(self) -> dict[str, nbformat.NotebookNode]:
        notebook = nbformat.read(self.notebook, as_version=4)
        return {c.metadata["nbgrader"]["grade_id"]: c for c in notebook.cells if "nbgrader" in c.metadata}

    def reference_answers(self) -> dict[str, str]:
        """The solution cells' code, markers removed, as the grader fills a submission."""
        answers = answers_from_source(nbformat.read(self.notebook, as_version=4))
        return {grade_id: answers[grade_id] for grade_id in self.solution_ids}

    def reference_cells(self) -> dict[str, str]:
        """The solution cells as written in the instructor notebook, with their markers."""
        cells = self.notebook_cells()
        return {grade_id: cells[grade_id].source for grade_id in self.solution_ids}

    def namespace(self, answers: dict[str, str]) -> dict:
        ns = {"__name__": "__student__"}
        exec(self.setup, ns)
        for grade_id in self.solution_ids:
            exec(compile(answers[grade_id], f"<{grade_id}>", "exec"), ns)
        return ns

    def submission(self, fixture: str) -> dict:
        return self.namespace({**self.reference_answers(), **read_fixture(self.fixtures / f"{fixture}.py")})

    def hidden_results(self, ns: dict) -> dict[str, tuple[bool, str]]:
        student = LocalStudent(ns)
        return {grade_id: run_test(test, student) for grade_id, test in self.hidden.items()}

    def visible_results(self, ns: dict) -> dict[str, BaseException | None]:
        results = {}
        for grade_id, (check, names) in self.visible.items():
            try:
                getattr(self.selfcheck, check)(*(ns[name] for name in names))
                results[grade_id] = None
            except Exception as error:  # noqa: BLE001 - recorded and judged by the caller
                results[grade_id] = error
        return results


class LabContract:
    """The tests every lab must pass, written once.

    A chapter's test module subclasses it as ``class TestLabContract(LabContract)`` and sets
    ``lab``, ``test_points``, ``manual_points`` and ``expected_failures`` (fixture -> the
    test cells it must fail; a fixture named ``ok_*`` is a correct alternative and fails
    none). Pytest collects the subclass; ``conftest.py`` parametrises ``fixture_name``.
    """

    lab: LabUnderTest
    test_points: dict[str, float]
    manual_points: dict[str, float]
    expected_failures: dict[str, set[str]]
    min_mistakes = 6
    min_alternatives = 2

    def test_notebook_cells_and_points(self):
        cells = self.lab.notebook_cells()
        tests = {g: c.metadata["nbgrader"]["points"] for g, c in cells.items()
                 if c.metadata["nbgrader"]["grade"] and c.cell_type == "code"}
        assert tests == self.test_points
        assert list(self.lab.hidden) == list(self.test_points), "one hidden test per test cell, in notebook order"
        manual = {g: c.metadata["nbgrader"]["points"] for g, c in cells.items()
                  if c.cell_type == "markdown" and c.metadata["nbgrader"]["grade"]}
        assert manual == self.manual_points
        for grade_id in self.lab.solution_ids:
            meta = cells[grade_id].metadata["nbgrader"]
            assert meta["solution"] and not meta["grade"] and not meta["locked"]
        for grade_id in self.test_points:
            meta, source = cells[grade_id].metadata["nbgrader"], cells[grade_id].source
            assert meta["locked"] and not meta["solution"]
            assert f'run_here("{grade_id}", globals())' in source
            assert source.index("### BEGIN HIDDEN TESTS") < source.index("run_here")
        notebook = nbformat.read(self.lab.notebook, as_version=4)
        assert notebook.metadata["kernelspec"]["name"] == "python3"
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in notebook.cells if c.cell_type == "code"), "commit the notebook with outputs cleared"

    def test_solution_cells_are_the_reference(self):
        """The notebook's solution cells and reference.py hold the same code."""
        reference = (self.lab.folder / "reference.py").read_text()
        for grade_id, code in self.lab.reference_answers().items():
            assert code.strip() in reference, f"solution cell {grade_id} drifted from reference.py"

    def test_fixture_files_name_solution_cells(self):
        files = {path.stem for path in self.lab.fixtures.glob("*.py")}
        assert files == set(self.expected_failures)
        for name in files:
            cells = read_fixture(self.lab.fixtures / f"{name}.py")
            assert cells and set(cells) <= set(self.lab.solution_ids), name
        for failing in self.expected_failures.values():
            assert failing <= set(self.test_points)
        assert sum(1 for failing in self.expected_failures.values() if failing) >= self.min_mistakes
        assert sum(1 for name, failing in self.expected_failures.items()
                   if name.startswith("ok_") and not failing) >= self.min_alternatives
        assert all(name.startswith("ok_") <= (not failing) for name, failing in self.expected_failures.items())

    def test_reference_passes_every_hidden_test(self):
        results = self.lab.hidden_results(self.lab.namespace(self.lab.reference_answers()))
        assert {g: message for g, (ok, message) in results.items() if not ok} == {}

    def test_reference_module_passes_every_hidden_test(self):
        ns = {name: getattr(self.lab.reference, name) for name in self.lab.solution_ids}
        assert all(ok for ok, _ in self.lab.hidden_results(ns).values())

    def test_untouched_stubs_fail_every_hidden_test(self):
        ns = self.lab.namespace({g: stub(source) for g, source in self.lab.reference_cells().items()})
        results = self.lab.hidden_results(ns)
        assert not any(ok for ok, _ in results.values())
        assert all("NotImplementedError" in message for _, message in results.values()), results

    def test_empty_namespace_fails_every_hidden_test(self):
        results = self.lab.hidden_results({})
        assert not any(ok for ok, _ in results.values())
        assert all("is not defined" in message for _, message in results.values()), results

    def test_fixture_fails_exactly_the_expected_cells(self, fixture_name):
        results = self.lab.hidden_results(self.lab.submission(fixture_name))
        failed = {g for g, (ok, _) in results.items() if not ok}
        assert failed == self.expected_failures[fixture_name], {g: results[g][1] for g in failed}
        for grade_id in failed:
            message = results[grade_id][1]
            assert len(message) > 25 and message[0] != "<", f"{grade_id}: unhelpful message {message!r}"


class LabGrading:
    """A lab through the real grader, written once: the solution scores full, the untouched lab
    zero, and each realistic mistake in tests/fixtures/<lab> loses exactly its points.

    The results come from the session's one class run (``graded`` in conftest.py). A lab's
    module subclasses it as ``class TestLabGraded(LabGrading)`` and sets ``lab_name``,
    ``test_points``, ``manual_points``, ``expected_failures`` (as for ``LabContract``) and
    ``skipped_cells``: how many cells of the instructor notebook are tagged
    ``skip-when-grading`` (training, measuring or plotting that no hidden test depends on),
    which the grader does not run and every feedback page names. While working on one lab:
    ``GRADED_LABS=<lab> pytest tests/test_grading_<lab>.py``.
    """

    lab_name: str
    test_points: dict[str, float]
    manual_points: dict[str, float]
    expected_failures: dict[str, set[str]]
    skipped_cells: int

    @pytest.fixture
    def results(self, graded):
        """This lab's results, keyed by student (solution, untouched, mistake-<fixture>, ...)."""
        from conftest import lab_results
        return lab_results(graded, self.lab_name)

    @property
    def total(self) -> float:
        return sum(self.test_points.values())

    def test_solution_scores_full(self, results):
        result = results["solution"]
        assert result.score == result.max_score == self.total, {t.grade_id: t.message for t in result.tests}
        assert result.status == "needs manual grading"
        assert result.manual_max_score == sum(self.manual_points.values())
        assert not any("failed" in note for note in result.notes), result.notes

    def test_untouched_lab_scores_zero(self, results):
        result = results["untouched"]
        assert result.score == 0 and result.max_score == self.total
        assert result.submitted == "untouched"
        assert all("NotImplementedError" in test.message for test in result.tests), \
            {t.grade_id: t.message for t in result.tests}

    def test_fixture_loses_exactly_its_points(self, results, fixture_name):
        from conftest import failed_tests
        result = results[f"mistake-{fixture_name}"]
        assert failed_tests(result) == set(self.expected_failures[fixture_name]), \
            {t.grade_id: t.message for t in result.tests if t.score < t.max_score}
        lost = sum(self.test_points[grade_id] for grade_id in self.expected_failures[fixture_name])
        assert result.score == self.total - lost

    def test_every_fixture_is_graded(self, results):
        on_disk = {path.stem for path in (FIXTURES / self.lab_name).glob("*.py")}
        assert on_disk == set(self.expected_failures)
        assert {f"mistake-{name}" for name in on_disk} <= set(results)

    def test_skipped_cells_are_not_run_and_the_feedback_says_so(self, graded, results):
        from autograder.skipping import is_tagged
        tagged = sum(is_tagged(cell) for cell in nbformat.read(source_notebook(self.lab_name), as_version=4).cells)
        assert tagged == self.skipped_cells, "the instructor notebook's skip-when-grading cells changed"
        student = results["solution"].gradebook_id
        page = (graded["out"] / "feedback" / student / self.lab_name / f"{self.lab_name}.html").read_text()
        assert page.count("Not run when graded") == tagged
