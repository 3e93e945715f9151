"""What students receive: the student edition, each lab's zip, and the student package itself.

- The release and the zips hold only what students get, and no line of a solution, a
  reference, a hidden test or a fixture that the public labs do not already show.
- The student package (`speechcourse/`) answers no lab: it defines no graded name, imports
  nothing of the instructor's, and its numerical gradients cannot stand in for `rnn_backward`.
- Every lab of the release, filled with the reference answers, runs end to end in a fresh
  venv made from the release's slim requirements only (one venv per session).
- Nothing a student reads points to a placeholder.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder.course import SOLUTIONS, lab_names, source_notebook, student_notebook
from autograder.fill import answers_from_source, fill
from autograder.hidden import LocalStudent, load_hidden_tests, load_sibling, run_test
from leaks import HIDDEN_REGION, SOLUTION_REGION
from speechcourse.corpus import SPLITS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import student_release  # noqa: E402
from course_labs import jupyterhub_link  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
PACKAGE = REPO / "speechcourse"
TEXT_SUFFIXES = (".py", ".ipynb", ".md", ".txt", ".toml", ".cfg", ".json", ".yml", ".yaml", ".tsv")
RELEASE_TOP = {"README.md", "requirements.txt", "pyproject.toml", "labs", "speechcourse", "data"}
INSTRUCTOR_ONLY = ("solutions", "tests", "autograder", "speechmodels", "experiments", "benchmarks",
                   "tools", "book", "reference.py", "hidden_tests.py", "nbgrader_config.py", "gradebook.db")


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def release(tmp_path_factory) -> Path:
    return student_release.write_release(tmp_path_factory.mktemp("student") / "release")


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bundles")
    return {path.stem: path for path in student_release.write_bundles(out)}


def _lines(text: str) -> set[str]:
    """Distinctive lines: 30 characters or more, not comments, not imports."""
    return {line.strip() for line in text.splitlines()
            if len(line.strip()) >= 30 and not line.strip().startswith(("#", '"""', "'''", "import ", "from "))}


@pytest.fixture(scope="session")
def secret_lines() -> dict[str, set[str]]:
    """lab -> lines of its solution cells, reference and fixtures that no student notebook or
    book page shows, and lines of its hidden tests that the student package does not share
    on purpose (the self-checks and hidden tests use the same helpers of speechcourse)."""
    notebooks_and_book = "\n".join([cell.source for lab in student_release.lab_names()
                                    for cell in nbformat.read(student_notebook(lab), as_version=4).cells]
                                   + [path.read_text() for path in (REPO / "book").glob("*.md")])
    package = "\n".join(path.read_text() for path in PACKAGE.rglob("*.py"))
    secrets = {}
    for lab in lab_names():
        answers, tests = set(), set()
        for cell in nbformat.read(source_notebook(lab), as_version=4).cells:
            for region in SOLUTION_REGION.findall(cell.source):
                answers |= _lines(region)
            for region in HIDDEN_REGION.findall(cell.source):
                tests |= _lines(region)
        for path in [SOLUTIONS / lab / "reference.py", *(FIXTURES / lab).glob("*.py")]:
            if path.exists():
                answers |= _lines(path.read_text())
        for path in (SOLUTIONS / lab).glob("*.py"):
            if path.name != "reference.py":
                tests |= _lines(path.read_text())
        secrets[lab] = ({line for line in answers if line not in notebooks_and_book}
                        | {line for line in tests if line not in notebooks_and_book and line not in package})
        assert secrets[lab], f"{lab}: nothing secret found; the scan would prove nothing"
    return secrets


def _texts_of_folder(root: Path):
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and ".venv" not in path.parts:
            yield str(path.relative_to(root)), path.read_text(errors="replace")


def _texts_of_zip(path: Path):
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(TEXT_SUFFIXES):
                yield name, archive.read(name).decode(errors="replace")


def _assert_no_secret(files, secret_lines: dict[str, set[str]], where: str) -> None:
    for name, text in files:
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "END SOLUTION", "run_here("):
            assert marker not in text, f"{where}: {name} contains {marker!r}"
        for lab, lines in secret_lines.items():
            leaked = sorted(line for line in lines if line in text)
            assert not leaked, f"{where}: {name} holds lines of {lab}'s answers or tests: {leaked[:3]}"


# ------------------------------------------------------------------------------ the release

def test_release_holds_the_labs_the_package_the_corpus_and_nothing_else(release):
    assert {path.name for path in release.iterdir()} == RELEASE_TOP
    for lab in student_release.lab_names():
        assert (release / "labs" / lab / f"{lab}.ipynb").read_bytes() == student_notebook(lab).read_bytes()
    shipped = {path.relative_to(release).as_posix() for path in (release / "speechcourse").rglob("*") if path.is_file()}
    assert shipped == {path.as_posix() for path in student_release.package_files()}
    assert (release / "data" / "digits.npz").stat().st_size == student_release.CORPUS.stat().st_size
    for path in release.rglob("*"):
        assert path.name not in INSTRUCTOR_ONLY, path
        assert "__pycache__" not in path.parts and not path.is_symlink(), path


def test_release_requirements_are_slim_and_pinned(release):
    lines = [line for line in (release / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    pins = dict(line.split("==") for line in lines if "==" in line)
    assert set(pins) == {"numpy", "torch", "matplotlib", "jupyterlab"}
    assert pins["torch"] == "2.13.0"          # the CPU build on this machine; others pull CUDA
    assert lines[-1] == "-e ."                 # and the course's package, from the release itself
    for heavy in ("nbgrader", "jupyter-book", "pytest", "playwright", "sphinx"):
        assert heavy not in (release / "requirements.txt").read_text().replace("(no nbgrader, jupyter-book, pytest)", "")


def test_release_readme_gives_two_commands(release):
    readme = (release / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert len(commands) == 1 and len(commands[0].strip().splitlines()) == 2, commands
    install, open_lab = commands[0].strip().splitlines()
    assert "pip install -r requirements.txt" in install and open_lab.startswith(".venv/bin/jupyter lab labs/")
    assert (release / open_lab.split()[-1]).is_file()


def test_release_leaks_no_solution_hidden_test_or_fixture(release, secret_lines):
    _assert_no_secret(_texts_of_folder(release), secret_lines, "student release")


def test_make_student_release_writes_the_same_release(tmp_path):
    out = tmp_path / "student"
    # -o: never (re)install the instructor venv from inside the test suite
    run = subprocess.run(["make", "-o", ".venv/.installed", "student-release", f"OUT={out}"], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {path.name for path in out.iterdir()} == RELEASE_TOP


# ------------------------------------------------------------------------------ the zips

def test_every_lab_has_a_zip_with_what_it_needs(bundles):
    assert sorted(bundles) == student_release.lab_names() == sorted(
        folder.name for folder in (REPO / "labs").iterdir() if (folder / f"{folder.name}.ipynb").exists())
    for lab, path in bundles.items():
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            assert all(name.startswith(f"{lab}/") for name in names), names
            for needed in (f"{lab}.ipynb", "requirements.txt", "pyproject.toml", "README.md",
                           "speechcourse/__init__.py", "speechcourse/corpus.py"):
                assert f"{lab}/{needed}" in names, f"{lab}.zip lacks {needed}"
            assert archive.read(f"{lab}/{lab}.ipynb") == student_notebook(lab).read_bytes()
            splits = student_release.splits_needed(lab)
            if splits == []:
                assert f"{lab}/data/digits.npz" not in names
            else:
                with archive.open(f"{lab}/data/digits.npz") as corpus, np.load(corpus) as data:
                    stored = sorted({key.split("/")[0] for key in data.files})
                assert stored == (splits or sorted(SPLITS)), (lab, stored)


def test_zips_are_reproducible(tmp_path, bundles):
    lab = min(bundles, key=lambda name: bundles[name].stat().st_size)
    again = student_release.write_bundle(lab, tmp_path)
    assert again.read_bytes() == bundles[lab].read_bytes()


def test_zips_leak_no_solution_hidden_test_or_fixture(bundles, secret_lines):
    for lab, path in bundles.items():
        _assert_no_secret(_texts_of_zip(path), secret_lines, f"{lab}.zip")


# ------------------------------------------------------------------------------ the Korean edition

KOREAN = [lab for lab in student_release.lab_names() if student_release.has_edition(lab, "ko")]
needs_korean = pytest.mark.skipif(not KOREAN, reason="no lab has a Korean release (labs/ko) yet")
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(scope="session")
def release_ko(tmp_path_factory) -> Path:
    return student_release.write_release(tmp_path_factory.mktemp("student-ko") / "release", edition="ko")


@pytest.fixture(scope="session")
def bundles_ko(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bundles-ko")
    return {path.stem: path for path in student_release.write_bundles(out, edition="ko")}


def _files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


@needs_korean
def test_korean_release_holds_the_same_files_with_the_korean_notebooks(release, release_ko):
    assert _files(release_ko) == _files(release)
    for lab in student_release.lab_names():
        shipped = (release_ko / "labs" / lab / f"{lab}.ipynb").read_bytes()
        expected = student_release.edition_notebook(lab, "ko") if lab in KOREAN else student_notebook(lab)
        assert shipped == expected.read_bytes(), lab
    for name in ("requirements.txt", "pyproject.toml", "data/digits.npz"):
        assert (release_ko / name).read_bytes() == (release / name).read_bytes(), name
    for path in release_ko.rglob("*"):
        assert path.name not in INSTRUCTOR_ONLY, path


@needs_korean
def test_korean_release_readme_is_korean_with_the_same_two_commands(release, release_ko):
    readme = (release_ko / "README.md").read_text(encoding="utf-8")
    assert len(HANGUL.findall(readme)) > 200
    commands = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert commands == re.findall(r"```bash\n(.*?)```", (release / "README.md").read_text(), re.S)
    for lab in KOREAN:
        assert student_release.lab_title(lab, "ko") in readme


@needs_korean
def test_korean_release_and_zips_leak_no_solution_hidden_test_or_fixture(release_ko, bundles_ko, secret_lines):
    _assert_no_secret(_texts_of_folder(release_ko), secret_lines, "Korean student release")
    for lab, path in bundles_ko.items():
        _assert_no_secret(_texts_of_zip(path), secret_lines, f"{lab}.zip")


@needs_korean
def test_every_korean_lab_has_a_zip_like_its_english_one(bundles, bundles_ko):
    assert sorted(bundles_ko) == [f"{lab}-ko" for lab in KOREAN]
    for lab in KOREAN:
        with zipfile.ZipFile(bundles[lab]) as english, zipfile.ZipFile(bundles_ko[f"{lab}-ko"]) as korean:
            assert set(korean.namelist()) == set(english.namelist())
            assert korean.read(f"{lab}/{lab}.ipynb") == student_release.edition_notebook(lab, "ko").read_bytes()
            assert HANGUL.search(korean.read(f"{lab}/README.md").decode())
            for name in english.namelist():
                if not name.endswith(("README.md", ".ipynb")):
                    assert korean.read(name) == english.read(name), name


@needs_korean
def test_make_student_release_edition_ko_writes_the_korean_edition(tmp_path):
    out = tmp_path / "student-ko"
    run = subprocess.run(["make", "-o", ".venv/.installed", "student-release", f"OUT={out}", "EDITION=ko"],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "LANG": "en_US.UTF-8"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert {path.name for path in out.iterdir()} == RELEASE_TOP
    lab = KOREAN[0]
    assert (out / "labs" / lab / f"{lab}.ipynb").read_bytes() == student_release.edition_notebook(lab, "ko").read_bytes()


def test_a_lab_that_loads_split_names_it_cannot_see_ships_the_whole_corpus(monkeypatch, tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("name = 'train'\nload_split(name)")])
    (tmp_path / "x" ).mkdir()
    nbformat.write(notebook, tmp_path / "x" / "x.ipynb")
    monkeypatch.setattr(student_release, "lab_notebook", lambda lab: tmp_path / lab / f"{lab}.ipynb")
    assert student_release.splits_needed("x") is None
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("load_split('valid', stack=4)")]),
                   tmp_path / "x" / "x.ipynb")
    assert student_release.splits_needed("x") == ["valid"]


# ------------------------------------------------------------------------------ the package

def _graded_names() -> dict[str, set[str]]:
    """lab -> every name a solution cell defines (functions, classes, their methods)."""
    names = {}
    for lab in lab_names():
        found = set()
        for cell in nbformat.read(source_notebook(lab), as_version=4).cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and cell.cell_type == "code":
                source = re.sub(r"^\s*[%!].*$", "", cell.source, flags=re.M)
                for node in ast.walk(ast.parse(source)):
                    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                        found.add(node.name)
        names[lab] = found - {"__init__", "forward"}
    return names


def _package_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def test_student_package_defines_no_graded_name():
    graded = _graded_names()
    assert graded["ch01_vanilla_rnn"] >= {"rnn_step", "rnn_forward", "rnn_backward"}
    for path, tree in _package_modules():
        defined = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        for lab, names in graded.items():
            clash = sorted(defined & names)
            assert not clash, f"{path.relative_to(REPO)} defines {clash}, graded in {lab}"


def test_student_package_imports_nothing_of_the_instructors():
    for path, tree in _package_modules():
        for node in ast.walk(tree):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for module in modules:
                top = module.split(".")[0]
                assert top not in ("speechmodels", "autograder", "solutions", "tests", "reference", "hidden_tests"), \
                    f"{path.relative_to(REPO)} imports {module}"


def test_student_package_holds_no_line_of_an_answer(secret_lines):
    _assert_no_secret(((path.relative_to(REPO).as_posix(), path.read_text()) for path, _ in _package_modules()),
                      secret_lines, "speechcourse")


def test_student_package_loads_no_teacher_forcing_targets():
    from speechcourse import corpus
    assert not hasattr(corpus, "pad_targets")
    assert not {"y_in", "y_out"} & set(corpus.Batch.__dataclass_fields__)


def test_gradcheck_refuses_to_stand_in_for_a_backward_pass():
    from speechcourse.gradcheck import MAX_ENTRIES, TooLargeForGradcheck, numerical_gradient
    small = np.arange(MAX_ENTRIES, dtype=float).reshape(4, -1)
    np.testing.assert_allclose(numerical_gradient(lambda v: float(np.sum(v ** 2)), small), 2 * small, atol=1e-6)
    with pytest.raises(TooLargeForGradcheck, match=r"checks small examples only: .*\(5, 5\), 25 entries"):
        numerical_gradient(lambda v: float(np.sum(v)), np.zeros((5, 5)))


GRADCHECK_BACKWARD = '''
import numpy as np
from speechcourse.gradcheck import numerical_gradients

def rnn_backward(xs, h0, params, hs, dys):
    """A backward pass made of numerical gradients of the student's own forward pass."""
    def loss(values):
        q = {k: values[k] for k in params}
        return float(np.sum(rnn_forward(xs, values["h0"], q)[1] * dys))
    return numerical_gradients(loss, {**params, "h0": h0})
'''


def test_lab1_hidden_tests_fail_a_backward_pass_made_of_numerical_gradients():
    """Every hidden test of rnn_backward needs an array larger than gradcheck accepts."""
    folder = SOLUTIONS / "ch01_vanilla_rnn"
    reference = load_sibling(str(folder / "reference.py"), "reference")
    namespace = {name: getattr(reference, name) for name in dir(reference) if not name.startswith("__")}
    exec(GRADCHECK_BACKWARD, namespace)
    hidden = load_hidden_tests(folder)
    backward_tests = sorted(name for name in hidden if "backward" in name)
    assert backward_tests
    student = LocalStudent(namespace)
    for name in backward_tests:
        passed, message = run_test(hidden[name], student)
        assert not passed, f"{name} passes a backward pass made of speechcourse.gradcheck"


# ------------------------------------------------------------------------------ links

PLACEHOLDER = re.compile(r"<[^<>\n]*\b(?:url|URL|address|repository|your[- ]\w+)\b[^<>\n]*>|example\.(?:com|org)"
                         r"|\bTODO\b|\bFIXME\b|\bXXX\b|href=\"#\"|\]\(#\)|\]\(\)")


def _student_facing() -> list[Path]:
    return ([REPO / "README.md", *sorted((REPO / "book").glob("*.md")), *sorted((REPO / "labs").glob("*/*.ipynb"))])


def test_nothing_a_student_reads_points_to_a_placeholder(release):
    files = [(str(path.relative_to(REPO)), path.read_text()) for path in _student_facing()]
    files += [(f"release/{name}", text) for name, text in _texts_of_folder(release) if name.endswith((".md", ".txt"))]
    for name, text in files:
        found = PLACEHOLDER.findall(text)
        assert not found, f"{name} has a placeholder: {found[:3]}"


def test_the_hub_link_is_nbgitpuller_to_the_student_repository():
    link = jupyterhub_link("https://hub.uni.edu/", "https://github.com/course/speech-labs.git", "main", "ch01_vanilla_rnn")
    assert link == ("https://hub.uni.edu/hub/user-redirect/git-pull?repo=https%3A//github.com/course/speech-labs.git"
                    "&branch=main&urlpath=lab/tree/speech-labs/labs/ch01_vanilla_rnn/ch01_vanilla_rnn.ipynb")


def test_the_hub_link_is_configured_in_one_place():
    import yaml
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert "course_labs" in config["sphinx"]["local_extensions"]
    hub = config["launch_buttons"]["jupyterhub_url"]
    repository = config["sphinx"]["config"]["course_student_repository"]
    assert bool(hub) == bool(repository), "set both jupyterhub_url and course_student_repository, or neither"


# ------------------------------------------------------------------------------ a fresh venv

@pytest.fixture(scope="session")
def slim_venv(release, tmp_path_factory):
    """A venv made from the release's requirements.txt only, as a student's first command does."""
    venv = tmp_path_factory.mktemp("slim") / ".venv"
    env = _clean_env()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", "-r", "requirements.txt"],
                             cwd=release, env=env, capture_output=True, text=True)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    seconds = time.perf_counter() - started
    print(f"\nslim install: {seconds:.0f} s")
    return venv


def _clean_env() -> dict[str, str]:
    """This process's environment without our venv or any path that could find the repository's code."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "SPEECHCOURSE_DATA", "MPLBACKEND", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep)
                                  if not part.startswith(str(REPO)))
    return env


def test_the_slim_venv_has_no_instructor_toolchain_and_finds_the_release_package(slim_venv, release):
    probe = ("import importlib.util as u, json, speechcourse, torch; print(json.dumps({'file': speechcourse.__file__, "
             "'torch': torch.__version__, 'missing': [m for m in ('nbgrader', 'jupyter_book', 'pytest', 'playwright', "
             "'speechmodels', 'autograder') if u.find_spec(m)]}))")
    run = subprocess.run([str(slim_venv / "bin" / "python"), "-c", probe], cwd="/", env=_clean_env(),
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert Path(found["file"]).resolve().is_relative_to(release.resolve()), found
    assert found["torch"].startswith("2.13.0") and not found["missing"], found


EXECUTE = """
import sys, time
import nbformat
from nbclient import NotebookClient
path = sys.argv[1]
notebook = nbformat.read(path, as_version=4)
started = time.perf_counter()
NotebookClient(notebook, timeout=600, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(notebook, path)
print(f"{time.perf_counter() - started:.1f}")
"""


def _filled(lab: str):
    return fill(nbformat.read(student_notebook(lab), as_version=4),
                answers_from_source(nbformat.read(source_notebook(lab), as_version=4)))


def _execute(venv: Path, notebook: Path) -> float:
    run = subprocess.run([str(venv / "bin" / "python"), "-c", EXECUTE, str(notebook), str(notebook.parent)],
                         cwd=notebook.parent, env=_clean_env(), capture_output=True, text=True)
    assert run.returncode == 0, f"{notebook.name} failed in the slim venv:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    return float(run.stdout.strip().splitlines()[-1])


SKIP = "skip-when-grading"   # cells that only train or plot; the grader skips them too


def _without_training(notebook):
    """The notebook without its SKIP cells: minutes of training on two shared cores prove nothing
    more about the release (their imports are checked by the test below)."""
    notebook.cells = [cell for cell in notebook.cells if SKIP not in cell.get("metadata", {}).get("tags", [])]
    return notebook


IMPORTS = """
import ast, importlib, json, sys
import nbformat
missing = []
for path in sys.argv[1:]:
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        source = "\\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                wanted = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                wanted = [(node.module, alias.name) for alias in node.names]
            else:
                continue
            for module, name in wanted:
                try:
                    imported = importlib.import_module(module)
                    if name and name != "*" and not hasattr(imported, name):
                        importlib.import_module(f"{module}.{name}")
                except Exception as error:
                    missing.append(f"{path}: {module} {name or ''}: {error}")
print(json.dumps(missing))
"""


def test_every_import_of_every_lab_cell_resolves_in_the_slim_venv(slim_venv, release):
    """Also in the cells the runs below skip: the release ships whatever any cell imports."""
    notebooks = [str(release / "labs" / lab / f"{lab}.ipynb") for lab in student_release.lab_names()]
    run = subprocess.run([str(slim_venv / "bin" / "python"), "-c", IMPORTS, *notebooks], cwd="/",
                         env=_clean_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout) == []


@pytest.mark.parametrize("lab", student_release.lab_names())
def test_every_lab_of_the_release_runs_in_the_slim_venv(slim_venv, release, lab):
    notebook = release / "labs" / lab / f"{lab}.ipynb"
    nbformat.write(_without_training(_filled(lab)), notebook)
    seconds = _execute(slim_venv, notebook)
    executed = nbformat.read(notebook, as_version=4)
    errors = [output for cell in executed.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors
    print(f"\n{lab}: executed in the slim venv in {seconds:.0f} s")


def test_a_lab_zip_runs_by_itself(slim_venv, bundles, tmp_path):
    """Unzipped anywhere, the notebook finds the package and the data beside it."""
    lab = min(bundles, key=lambda name: bundles[name].stat().st_size)
    with zipfile.ZipFile(bundles[lab]) as archive:
        archive.extractall(tmp_path)
    notebook = tmp_path / lab / f"{lab}.ipynb"
    filled = _filled(lab)
    filled.cells.append(nbformat.v4.new_code_cell("import speechcourse; print(speechcourse.__file__)"))
    nbformat.write(filled, notebook)
    _execute(slim_venv, notebook)
    printed = nbformat.read(notebook, as_version=4).cells[-1].outputs[0]["text"].strip()
    assert Path(printed).resolve().is_relative_to((tmp_path / lab).resolve()), printed


# ------------------------------------------------------------------------------ swap-in scan

def _package_callables() -> dict[str, object]:
    """'module.name' -> every function and class the student package defines at module level."""
    import importlib
    import inspect
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module_name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (inspect.isfunction(value) or inspect.isclass(value)) and getattr(value, "__module__", "") == module_name:
                found[f"{module_name}.{name}"] = value
    return found


def _graded_cells(lab: str) -> dict[str, list[str]]:
    """Graded name -> the test cells that follow its solution cell (the tests of that name)."""
    cells = [cell.metadata["nbgrader"] for cell in nbformat.read(source_notebook(lab), as_version=4).cells
             if "nbgrader" in cell.metadata]
    tests, current = {}, None
    for meta in cells:
        if meta.get("solution") and not meta.get("grade"):
            current = meta["grade_id"]
            tests.setdefault(current, [])
        elif meta.get("grade") and not meta.get("solution") and current and meta["grade_id"].startswith("test_"):
            tests[current].append(meta["grade_id"])
    return {name: ids for name, ids in tests.items() if ids}


def _fits(candidate, graded) -> bool:
    """Could ``candidate`` be called the way the graded function or class is?"""
    import inspect
    if inspect.isclass(graded) != inspect.isclass(candidate):
        return False
    try:
        wanted = [p for p in inspect.signature(graded).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        inspect.signature(candidate).bind(*range(len(wanted)))
    except (TypeError, ValueError):
        return False
    return True


class _Rejected(BaseException):
    """Not an Exception, so that no hidden test catches it: the candidate is out at once."""


def _stop_when_it_raises(candidate):
    """A candidate that cannot even be called like the graded function fails its tests at once."""
    import functools
    import inspect
    if inspect.isclass(candidate):
        return candidate

    @functools.wraps(candidate)
    def call(*args, **kwargs):
        try:
            return candidate(*args, **kwargs)
        except Exception as error:
            raise _Rejected(repr(error)) from None
    return call


class _Captured(BaseException):
    pass


def _first_call(graded: str, test_ids: list[str], reference, hidden):
    """(args, kwargs) of the first call a hidden test makes to ``graded``, or None."""
    import inspect
    if inspect.isclass(getattr(reference, graded)):
        return None

    def capture(*args, **kwargs):
        raise _Captured((args, kwargs))

    namespace = {**{k: v for k, v in vars(reference).items() if not k.startswith("__")}, graded: capture}
    try:
        run_test(hidden[test_ids[0]], LocalStudent(namespace))
    except _Captured as call:
        return call.args[0]
    return None


def _as_data(value):
    import torch
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return [_as_data(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_data(item) for key, item in value.items()}
    return value


def _same(got, want) -> bool:
    """False only when ``got`` clearly differs from ``want``; anything unclear counts as the same."""
    got, want = _as_data(got), _as_data(want)
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, (list, tuple)) and len(got) == len(want) and all(map(_same, got, want))
    try:
        got_array, want_array = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    except (TypeError, ValueError):
        return True
    return got_array.shape == want_array.shape and bool(np.allclose(got_array, want_array, rtol=1e-3, atol=1e-4,
                                                                    equal_nan=True))


def _agrees(candidate, graded, args, kwargs) -> bool:
    import copy
    import signal
    signal.alarm(20)
    try:
        got = candidate(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    except BaseException:
        return False
    finally:
        signal.alarm(0)
    return _same(got, graded(*copy.deepcopy(args), **copy.deepcopy(kwargs)))


def _tests_that_call(graded: str, test_ids: list[str], reference, hidden) -> list[str]:
    """Those of ``test_ids`` that fail when ``graded`` is missing (a cell's tests can be about another name)."""
    import inspect
    if inspect.isclass(getattr(reference, graded)):
        return test_ids

    def missing(*args, **kwargs):
        raise _Rejected("not written")

    namespace = {**{k: v for k, v in vars(reference).items() if not k.startswith("__")}, graded: missing}
    calling = []
    for test_id in test_ids:
        try:
            passed = run_test(hidden[test_id], LocalStudent(namespace))[0]
        except _Rejected:
            passed = False
        if not passed:
            calling.append(test_id)
    return calling


# The scan feeds the hidden tests' tensors to numpy helpers on purpose; numpy's deprecation notes
# about torch's __array__ are about that misuse, not about the course's code.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("lab", [lab for lab in lab_names() if (SOLUTIONS / lab / "reference.py").exists()])
def test_no_function_of_the_student_package_passes_a_labs_hidden_tests(lab):
    """Put each function or class of speechcourse in place of each graded one (the rest
    being the reference) and run that one's hidden tests: none may pass them all."""
    import signal

    import matplotlib.pyplot as plt
    folder = SOLUTIONS / lab
    reference = load_sibling(str(folder / "reference.py"), "reference")
    hidden = load_hidden_tests(folder)
    candidates = _package_callables()
    tried = 0

    def too_slow(*_):
        raise TimeoutError("the candidate took more than 20 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    try:
        for graded, test_ids in _graded_cells(lab).items():
            if not hasattr(reference, graded) or not all(test_id in hidden for test_id in test_ids):
                continue
            test_ids = _tests_that_call(graded, test_ids, reference, hidden)
            first_call = _first_call(graded, test_ids, reference, hidden) if test_ids else None
            for qualified, candidate in candidates.items():
                if not _fits(candidate, getattr(reference, graded)):
                    continue
                namespace = {**{k: v for k, v in vars(reference).items() if not k.startswith("__")},
                             graded: _stop_when_it_raises(candidate)}
                tried += 1
                if first_call is not None and not _agrees(candidate, getattr(reference, graded), *first_call):
                    continue   # differs from the reference on the hidden tests' own first input
                signal.alarm(20)
                try:   # all() stops at the first failing test
                    answers = all(run_test(hidden[test_id], LocalStudent(namespace))[0] for test_id in test_ids)
                except (TimeoutError, _Rejected):
                    answers = False
                finally:
                    signal.alarm(0)
                    plt.close("all")
                assert not answers, f"{qualified} passes the hidden tests of {lab}'s {graded}: it answers the lab"
    finally:
        signal.signal(signal.SIGALRM, previous)
    print(f"\n{lab}: {tried} substitutions tried")
    assert tried, "no function of the package has a graded function's signature: the scan tried nothing"


# ------------------------------------------------------------------------------ the site, online and offline

def test_pages_workflow_builds_the_book_and_publishes_it_with_the_official_actions():
    import yaml
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "pages.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step["uses"].split("@")[0] for step in steps if "uses" in step]
    for action in ("actions/checkout", "actions/configure-pages", "actions/upload-pages-artifact",
                   "actions/deploy-pages"):
        assert action in uses, f"pages.yml does not use {action}"
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    assert any("make book" in step.get("run", "") for step in steps)
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}


def test_the_korean_webfont_ships_whole_with_its_licence():
    css = (REPO / "_static" / "korean.css").read_text()
    files = re.findall(r"url\(([^)]+\.woff2)\)", css)
    assert len(files) > 100
    for name in files:
        assert (REPO / "_static" / name).stat().st_size > 0, name
    shipped = {path.name for path in (REPO / "_static" / "fonts" / "noto-sans-kr").glob("*.woff2")}
    assert shipped == {Path(name).name for name in files}, "a font file the CSS does not use, or the reverse"
    assert "SIL OPEN FONT LICENSE" in (REPO / "_static" / "fonts" / "noto-sans-kr" / "OFL.txt").read_text().upper()
    # every Hangul syllable a page can show has a face, and Latin keeps the theme's fonts
    ranges = [tuple(int(x, 16) for x in (part.split("-") * 2)[:2])
              for block in re.findall(r"unicode-range: ([^;]+);", css) for part in block.replace("U+", "").split(",")]
    covered = lambda code: any(lo <= code <= hi for lo, hi in ranges)  # noqa: E731
    text = "".join(path.read_text() for path in (REPO / "book").glob("*.md"))
    missing = sorted({ch for ch in text if "\uac00" <= ch <= "\ud7a3" and not covered(ord(ch))})
    assert not missing, f"Hangul the book uses but no font face covers: {missing[:10]}"
    assert not any(covered(code) for code in range(0x20, 0x250)), "a Korean face claims Latin characters"
