"""Sphinx extension: the execution cache forgets every page when what the pages read changes.

MyST-NB's cache (``execute_notebooks: cache``, in ``_build/.jupyter_cache``) is keyed by a
page's code cells alone. The pages also read files their code does not spell out: the
results and weights in ``book/results/`` (which ``experiments/`` rewrite), the corpus in
``data/``, and the course's own packages. A cached page would keep showing an older
results file. So, before anything executes, this extension fingerprints those inputs and,
when the fingerprint differs from the one the cache was filled under, empties the cache:
every page then runs once more and is cached again. A page never needs
``execution_mode: force``, and the Korean twins (DEVELOPERS.md, "The Korean edition"),
whose code cells are their English pages', reuse the English execution.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what a page's code reads besides its own cells: data, results, the code it imports, the runtime
INPUTS = ("book/results", "data", "speechcourse", "speechmodels", "experiments", "tools/say_it.py",
          "package-lock.json", "requirements.txt", "constraints.txt")
FINGERPRINT = "inputs.sha256"   # written inside the cache folder


def _files(root: Path):
    for name in INPUTS:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def fingerprint(root: Path = ROOT) -> str:
    """sha256 over the names and bytes of every input file, in a fixed order."""
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_folder(app) -> Path:
    configured = app.config["nb_execution_cache_path"]
    return Path(configured) if configured else Path(app.outdir).parent / ".jupyter_cache"


def forget_stale_executions(app) -> None:
    folder = cache_folder(app)
    now = fingerprint()
    stamp = folder / FINGERPRINT
    if folder.exists() and (not stamp.is_file() or stamp.read_text().strip() != now):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(now + "\n")


def setup(app):
    # builder-inited runs before any page is read, so before MyST-NB opens the cache
    app.connect("builder-inited", forget_stale_executions, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
