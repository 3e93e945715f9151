"""Sphinx extension: what the page "Say it" (``book/say_it.md``) runs, put into the site.

At the start of every build (``builder-inited``) the capstone recogniser is exported as two
ONNX graphs (``python -m speechmodels.export``, from the committed checkpoint; redone only
when the checkpoint or the code that defines the graphs changed) into ``_build/say_it/``.
When the HTML is written (``build-finished``) `assets` are copied into
``_build/html/book/say_it/``, beside the page:

- the two graphs and ``recogniser.json`` (vocabulary and front-end constants), made here;
- the page's own script and style, ``book/say_it/say_it.js``, ``capture.js``, ``say_it.css``;
- onnxruntime-web's wasm-only build (its ES module and its one ``.wasm``), from
  ``node_modules/`` as ``package-lock.json`` pins it (``npm ci``; ``make book`` runs it);
- the examples to try without a microphone, ``data/wav/*.wav``, and ``examples.json``
  (what each one says, and who says it) from ``data/wav/examples.tsv``.

Nothing is fetched from another host, so the page works offline.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRAPHS = REPO / "_build" / "say_it"                       # the exported graphs, reused between builds
PAGE = REPO / "book" / "say_it"                           # the page's script and style
RUNTIME = REPO / "node_modules" / "onnxruntime-web"
RUNTIME_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
WAV = REPO / "data" / "wav"
SITE_FOLDER = ("book", "say_it")                          # _build/html/book/say_it/
# what the graphs are made from: a change to any of these exports them again
SOURCES = ["book/results/ch05_recogniser.pt", "speechmodels/export.py", "speechmodels/recogniser.py",
           "speechmodels/transformer.py", "speechmodels/transcribe.py", "speechmodels/training.py",
           "speechcourse/frontend.py", "speechcourse/corpus.py"]


class MissingRuntime(RuntimeError):
    """node_modules/ lacks onnxruntime-web: `npm ci` was not run."""


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return digest.hexdigest()


def export_graphs(folder: Path = GRAPHS) -> Path:
    """Export the graphs into ``folder`` unless they are already there for these sources."""
    stamp = folder / "fingerprint.txt"
    key = _fingerprint()
    if stamp.is_file() and stamp.read_text() == key and all((folder / n).is_file() for n in
                                                            ("encoder.onnx", "decoder.onnx", "recogniser.json")):
        return folder
    scratch = folder.with_name(folder.name + ".new")
    shutil.rmtree(scratch, ignore_errors=True)
    env = dict(os.environ, PYTHONWARNINGS="ignore", TORCH_LOGS="-all")
    done = subprocess.run([sys.executable, "-m", "speechmodels.export", str(scratch)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"exporting the recogniser for book/say_it.md failed:\n{done.stderr[-3000:]}")
    (scratch / "fingerprint.txt").write_text(key)
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)
    return folder


def runtime_version() -> str:
    """The onnxruntime-web version installed in node_modules/, checked against package-lock.json."""
    locked = json.loads((REPO / "package-lock.json").read_text())["packages"]["node_modules/onnxruntime-web"]["version"]
    installed = RUNTIME / "package.json"
    if not installed.is_file():
        raise MissingRuntime(f"node_modules/ has no onnxruntime-web: run `npm ci` in {REPO} "
                             "(make book and make test do)")
    version = json.loads(installed.read_text())["version"]
    if version != locked:
        raise MissingRuntime(f"node_modules/ holds onnxruntime-web {version}, package-lock.json pins {locked}: "
                             "run `npm ci`")
    return version


def examples() -> list[dict]:
    """The recordings to try without a microphone, as examples.json lists them."""
    with open(WAV / "examples.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [{"file": row["file"], "source": row["source"], "text": row["text"],
             "voice": row["voice"].removeprefix("fsdd:") if row["source"] == "real" else "a synthetic voice"}
            for row in rows]


def assets() -> dict[str, Path]:
    """{name in the site's say_it/ folder: the file it is copied from}: everything the page loads."""
    files = {name: GRAPHS / name for name in ("encoder.onnx", "decoder.onnx", "recogniser.json")}
    files |= {name: RUNTIME / "dist" / name for name in RUNTIME_FILES}
    files |= {path.name: path for path in sorted(PAGE.iterdir()) if path.suffix in (".js", ".css")}
    files |= {f"examples/{e['file']}": WAV / e["file"] for e in examples()}
    return files


def _on_builder_inited(app) -> None:
    runtime_version()
    export_graphs()


def _on_build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir).joinpath(*SITE_FOLDER)
    shutil.rmtree(target, ignore_errors=True)
    (target / "examples").mkdir(parents=True)
    for name, source in assets().items():
        shutil.copyfile(source, target / name)
    (target / "examples.json").write_text(json.dumps(examples(), indent=1))


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    app.connect("build-finished", _on_build_finished)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
