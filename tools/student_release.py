"""The student edition of the course, and one zip per lab: what students get, without the answers.

    python tools/student_release.py release dist/student    # make student-release OUT=dist/student
    python tools/student_release.py bundles _build/bundles  # <lab>.zip for each lab (make book does it)
    python tools/student_release.py release dist/student-ko --edition ko   # make student-release EDITION=ko

The release holds `labs/`, the student package `speechcourse/`, the corpus `data/digits.npz`,
a slim `requirements.txt` (numpy, CPU torch, matplotlib, jupyterlab, and the package itself),
a `pyproject.toml` that installs the package, and a README with two commands. A lab's zip
holds the same, flat: the notebook beside the package, and only the splits of the corpus
its notebook loads. Neither holds `solutions/`, `tests/`, `autograder/`, `speechmodels/`
or anything else of the instructor's: the files are listed here one by one, never copied
by folder from the repository. Labs are found in `labs/<slug>/<slug>.ipynb`.

The Korean edition (`--edition ko`) is the same release with the Korean notebooks
(`labs/ko/<slug>/<slug>.ipynb`, written by `make labs` from `solutions/<slug>/ko.yml`) in the
same places, and its README in Korean; a lab without a Korean release ships in English. A
lab's Korean zip is `<slug>-ko.zip`, holding the same folder `<slug>/` and notebook name
(a submission keeps the notebook's name, whichever language it is in).
"""
from __future__ import annotations

import argparse
import io
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
PACKAGE = "speechcourse"
CORPUS = REPO / "data" / "digits.npz"
DATA_CARD = REPO / "data" / "README.md"
# The slim environment: what a lab imports, and JupyterLab to run it. Versions come from constraints.txt.
SLIM = ("numpy", "torch", "matplotlib", "jupyterlab")
# Fixed timestamp for zip members, so that the same inputs give the same bytes.
EPOCH = (2026, 1, 1, 0, 0, 0)
LOAD_SPLIT = re.compile(r"load_split\(\s*(?:name\s*=\s*)?([\"'])(\w+)\1")
PYPROJECT = """\
# Installs the course's student package, speechcourse, in place (pip install -e .).
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "speechcourse"
version = "0.1.0"
description = "Sequence models for speech recognition: the labs' helpers (corpus, front end, plots, self-checks)"
requires-python = ">=3.11"

[tool.setuptools]
packages = {packages}
"""


# ------------------------------------------------------------------------------- what ships

def lab_names() -> list[str]:
    """Every lab with a student notebook labs/<slug>/<slug>.ipynb."""
    return sorted(path.parent.name for path in (REPO / "labs").glob("*/*.ipynb")
                  if path.stem == path.parent.name)


def lab_notebook(lab: str) -> Path:
    return REPO / "labs" / lab / f"{lab}.ipynb"


EDITIONS = ("en", "ko")


def edition_notebook(lab: str, edition: str = "en") -> Path:
    """The lab's notebook in ``edition``: labs/<lab>/<lab>.ipynb, or labs/ko/<lab>/<lab>.ipynb."""
    return lab_notebook(lab) if edition == "en" else REPO / "labs" / edition / lab / f"{lab}.ipynb"


def has_edition(lab: str, edition: str) -> bool:
    return edition_notebook(lab, edition).is_file()


def shipped_notebook(lab: str, edition: str = "en") -> Path:
    """What an edition ships for ``lab``: its notebook in that language, else the English one."""
    return edition_notebook(lab, edition) if has_edition(lab, edition) else lab_notebook(lab)


def bundle_name(lab: str, edition: str = "en") -> str:
    """The zip's file name: <lab>.zip, or <lab>-ko.zip for the Korean one."""
    return f"{lab}.zip" if edition == "en" else f"{lab}-{edition}.zip"


def lab_title(lab: str, edition: str = "en") -> str:
    """The notebook's first heading, e.g. 'Lab 1 — A vanilla RNN, by hand' ('실습 1 — ...' in Korean)."""
    import nbformat
    for cell in nbformat.read(shipped_notebook(lab, edition), as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return lab


def package_files() -> list[Path]:
    """The student package's files, relative to the repository: sources and data files, no caches."""
    root = REPO / PACKAGE
    return sorted(path.relative_to(REPO) for path in root.rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts
                  and path.suffix not in (".pyc", ".pyo") and not path.name.startswith("."))


def package_names() -> list[str]:
    return sorted({".".join(path.parent.parts) for path in package_files() if path.name == "__init__.py"})


def splits_needed(lab: str) -> list[str] | None:
    """The corpus splits the lab's notebook (or its self-check module) loads; None if it
    calls load_split with a name that is not written out, [] if it loads no data."""
    import nbformat
    texts = [cell.source for cell in nbformat.read(lab_notebook(lab), as_version=4).cells
             if cell.cell_type == "code"]
    selfcheck = REPO / PACKAGE / "selfcheck" / f"{lab}.py"
    if selfcheck.exists():
        texts.append(selfcheck.read_text())
    text = "\n".join(texts)
    calls = text.count("load_split(")
    names = sorted({match.group(2) for match in LOAD_SPLIT.finditer(text)})
    return names if len(LOAD_SPLIT.findall(text)) == calls else None


def slim_requirements() -> str:
    """requirements.txt of the release: the four packages, pinned as constraints.txt pins them."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if version:
            pins[name.lower()] = version
    missing = [name for name in SLIM if name not in pins]
    if missing:
        raise SystemExit(f"constraints.txt pins no version of {missing}")
    lines = ["# What a lab needs, and nothing of the instructor's toolchain (no nbgrader, jupyter-book, pytest).",
             "# torch is the plain PyPI build; on Linux without an NVIDIA GPU, the README shows how to get",
             "# the smaller CPU-only build.",
             *(f"{name}=={pins[name]}" for name in SLIM),
             "# the course's helpers (speechcourse/), installed in place from this folder",
             "-e ."]
    return "\n".join(lines) + "\n"


def readme(labs: list[str], flat: str | None = None, edition: str = "en") -> str:
    """The README of the release, or of one lab's zip when ``flat`` names the lab."""
    if edition == "ko":
        return readme_ko(labs, flat)
    notebook = f"{flat}.ipynb" if flat else f"labs/{labs[0]}/{labs[0]}.ipynb"
    where = "this folder" if flat else "this folder (the one holding `requirements.txt`)"
    corpus = ("" if flat and splits_needed(flat) == []
              else " and the speech corpus\n`data/digits.npz`" + (" (the splits this lab loads)" if flat else ""))
    listing = "" if flat else "\nThe labs:\n\n" + "".join(
        f"- `labs/{lab}/{lab}.ipynb`: {lab_title(lab)}\n" for lab in labs)
    return f"""# {lab_title(flat) if flat else "Sequence models for speech recognition: the labs"}

Everything a lab needs is here: the notebook{"" if flat else "s"}, the course's helper package
`speechcourse/` (corpus loader, audio front end, plots, self-checks){corpus}. Nothing is
downloaded while a lab runs, and a laptop CPU is enough.
{listing}
## Two commands

In a terminal, in {where}, with Python 3.11 or newer:

```bash
python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
.venv/bin/jupyter lab {notebook}
```

The first command installs numpy, torch, matplotlib, JupyterLab and `speechcourse` into
`.venv/` (a few minutes, once). The second opens the lab in your browser. On Windows
write `.venv\\Scripts\\` for `.venv/bin/`. On Linux without an NVIDIA GPU, add
`--extra-index-url https://download.pytorch.org/whl/cpu` to the first command to get the
CPU-only build of torch (about 200 MB instead of several GB).

Fill in every cell that says `YOUR CODE HERE` or `YOUR ANSWER HERE`, run the self-check
under each one, then restart the kernel, run all cells, save, and hand in the notebook
with its name unchanged.
"""


def readme_ko(labs: list[str], flat: str | None = None) -> str:
    """The Korean edition's README (the same facts and commands as :func:`readme`)."""
    notebook = f"{flat}.ipynb" if flat else f"labs/{labs[0]}/{labs[0]}.ipynb"
    where = "이 폴더" if flat else "이 폴더(`requirements.txt`가 있는 폴더)"
    corpus = ("" if flat and splits_needed(flat) == []
              else ", 음성 말뭉치 `data/digits.npz`" + ("(이 실습이 읽는 부분)" if flat else ""))
    english = [lab for lab in labs if not has_edition(lab, "ko")]
    listing = "" if flat else "\n실습 목록:\n\n" + "".join(
        f"- `labs/{lab}/{lab}.ipynb`: {lab_title(lab, 'ko')}{' (영어)' if lab in english else ''}\n" for lab in labs)
    return f"""# {lab_title(flat, "ko") if flat else "음성 인식을 위한 시퀀스 모델: 실습"}

실습에 필요한 것이 모두 들어 있습니다. 노트북, 강좌의 도우미 패키지 `speechcourse/`(말뭉치
로더, 오디오 전처리, 그림, 자가 점검){corpus}입니다. 실습 중에는 아무것도 내려받지 않으며,
노트북 컴퓨터의 CPU로 충분합니다.
{listing}
## 명령 두 개

터미널에서, {where}에서, Python 3.11 이상으로 실행합니다.

```bash
python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
.venv/bin/jupyter lab {notebook}
```

첫 번째 명령은 numpy, torch, matplotlib, JupyterLab과 `speechcourse`를 `.venv/`에 설치합니다
(처음 한 번, 몇 분 걸립니다). 두 번째 명령은 브라우저에서 실습을 엽니다. Windows에서는
`.venv/bin/` 대신 `.venv\\Scripts\\`라고 씁니다. NVIDIA GPU가 없는 Linux에서는 첫 번째 명령에
`--extra-index-url https://download.pytorch.org/whl/cpu`를 덧붙이면 CPU 전용 torch를 받습니다
(수 GB 대신 약 200 MB).

노트북의 첫 셀을 실행하면 자가 점검이 한국어로 말합니다. `YOUR CODE HERE` 또는
`YOUR ANSWER HERE`라고 적힌 셀을 모두 채우고, 각 셀 아래의 자가 점검을 실행한 뒤, 커널을 다시
시작해 모든 셀을 실행하고 저장해서, 노트북을 이름 그대로 제출합니다. 채점은 영어판과 같은
채점기가 같은 기준으로 합니다.
"""


# ------------------------------------------------------------------------------- writing

def _corpus_subset(splits: list[str] | None) -> bytes:
    """digits.npz holding only ``splits`` (all of it for None), LZMA-compressed like the original."""
    if splits is None:
        return CORPUS.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(CORPUS) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_LZMA) as target:
        for info in source.infolist():
            if info.filename.split("/")[0] in splits:
                member = zipfile.ZipInfo(info.filename, EPOCH)
                member.compress_type = zipfile.ZIP_LZMA
                target.writestr(member, source.read(info))
    return buffer.getvalue()


def bundle_files(lab: str, cache: Path | None = None, edition: str = "en") -> dict[str, bytes | Path]:
    """name inside the zip -> content (bytes, or a file to copy) of one lab's bundle."""
    files: dict[str, bytes | Path] = {f"{lab}.ipynb": shipped_notebook(lab, edition)}
    files.update({path.as_posix(): REPO / path for path in package_files()})
    splits = splits_needed(lab)
    if splits != []:
        key = "all" if splits is None else "+".join(splits)
        cached = cache / f"digits-{key}-{CORPUS.stat().st_mtime_ns}.npz" if cache else None
        if cached is not None and cached.exists():
            files["data/digits.npz"] = cached
        else:
            data = _corpus_subset(splits)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(data)
            files["data/digits.npz"] = data
        files["data/README.md"] = DATA_CARD
    files["requirements.txt"] = slim_requirements().encode()
    files["pyproject.toml"] = PYPROJECT.format(packages=package_names()).encode()
    files["README.md"] = readme([lab], flat=lab, edition=edition).encode()
    return files


def write_bundle(lab: str, out_dir: Path, cache: Path | None = None, edition: str = "en") -> Path:
    """out_dir/<lab>.zip (<lab>-ko.zip), every member under the folder <lab>/, byte-for-byte reproducible."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / bundle_name(lab, edition)
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, content in sorted(bundle_files(lab, cache, edition).items()):
            data = content.read_bytes() if isinstance(content, Path) else content
            member = zipfile.ZipInfo(f"{lab}/{name}", EPOCH)
            member.external_attr = 0o644 << 16
            # the corpus is compressed already; everything else is small text
            member.compress_type = zipfile.ZIP_STORED if name.endswith(".npz") else zipfile.ZIP_DEFLATED
            archive.writestr(member, data)
    partial.replace(target)
    return target


CACHE = REPO / "_build" / "bundles" / ".cache"   # corpus subsets, kept between builds


def write_bundles(out_dir: Path, cache: Path = CACHE, edition: str = "en") -> list[Path]:
    """Every lab's zip in ``edition`` (for Korean, the labs that have a Korean release)."""
    return [write_bundle(lab, out_dir, cache=cache, edition=edition) for lab in lab_names()
            if edition == "en" or has_edition(lab, edition)]


def write_release(out: Path, edition: str = "en") -> Path:
    """The student edition in ``out`` (emptied first if it is an earlier release), in ``edition``'s language."""
    if edition not in EDITIONS:
        raise SystemExit(f"unknown edition {edition!r}; the editions are {', '.join(EDITIONS)}")
    if out.exists():
        if any(out.iterdir()) and not (out / "requirements.txt").exists():
            raise SystemExit(f"{out} exists and is not a student release; give an empty or new folder")
        shutil.rmtree(out)
    labs = lab_names()
    if not labs:
        raise SystemExit("no lab found in labs/<slug>/<slug>.ipynb; run `make labs` first")
    for lab in labs:
        _copy(shipped_notebook(lab, edition), out / "labs" / lab / f"{lab}.ipynb")
    for path in package_files():
        _copy(REPO / path, out / path)
    _copy(CORPUS, out / "data" / "digits.npz")
    _copy(DATA_CARD, out / "data" / "README.md")
    (out / "requirements.txt").write_text(slim_requirements())
    (out / "pyproject.toml").write_text(PYPROJECT.format(packages=package_names()))
    (out / "README.md").write_text(readme(labs, edition=edition))
    return out


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def size_of(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("release", "bundles"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--edition", choices=EDITIONS, default="en",
                        help="the language of the notebooks and README (default en; ko: the Korean edition)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.what == "release":
        out = write_release(args.out, args.edition)
        print(f"student release ({args.edition}) in {out}: {size_of(out) / 1e6:.1f} MB, labs {', '.join(lab_names())} "
              f"({time.perf_counter() - started:.1f} s)")
    else:
        for path in write_bundles(args.out, edition=args.edition):
            print(f"{path}: {size_of(path) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
