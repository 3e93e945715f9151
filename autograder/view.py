"""What the sandbox mounts, at host paths that do not name the repository.

A bind mount shows its source's path in ``/proc/self/mountinfo`` (the fourth field: the
directory's path inside its file system), whatever path it is mounted at. Binding
``speechcourse/``, ``data/``, the harness files and the venv straight from the checkout
would therefore show the sandbox where the repository lives. Instead each of them is
bound from a *view*: a tree of hard links to the same files under
``/tmp/autograder-view/<key>/`` (no data is copied; in-place edits show through, and a
file replaced or added changes its folder's mtime and so the key). A tree on another file
system than ``/tmp`` (hard links cannot cross) is bound as it is, and the README says so.

The key is a hash of every folder's path and mtime in the trees, so a view is made once
per state of the checkout and venv, in about a second, and shared by every grading
process on the machine; views unused for a day are removed.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from pathlib import Path

VIEW_ROOT = Path("/tmp/autograder-view")
KEEP_SECONDS = 24 * 3600

KEY_SECONDS = 30                  # a tree's key is recomputed at most this often per process

_made: dict[tuple, Path] = {}
_keys: dict[str, tuple[float, str]] = {}


def _tree_key(source: Path) -> str:
    known = _keys.get(str(source))
    if known is not None and time.monotonic() - known[0] < KEY_SECONDS:
        return known[1]
    digest = hashlib.sha256(os.fsencode(os.path.realpath(source)))
    for folder, folders, files in os.walk(source):
        folders.sort()
        info = os.lstat(folder)
        digest.update(os.fsencode(folder) + b"\0" + str(info.st_mtime_ns).encode() + b"\0")
    _keys[str(source)] = (time.monotonic(), digest.hexdigest()[:20])
    return _keys[str(source)][1]


def _file_key(source: Path) -> str:
    info = os.lstat(source)
    return hashlib.sha256(os.fsencode(os.path.realpath(source)) + f"{info.st_ino}:{info.st_mtime_ns}:"
                          f"{info.st_size}".encode()).hexdigest()[:20]


def _root_ok() -> bool:
    try:
        VIEW_ROOT.mkdir(mode=0o755)
    except FileExistsError:
        pass
    except OSError:
        return False
    info = os.lstat(VIEW_ROOT)
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _link_tree(source: Path, target: Path) -> None:
    target.mkdir(mode=0o755)
    for folder, folders, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        for name in folders:
            path = Path(folder, name)
            if path.is_symlink():
                os.symlink(os.readlink(path), target / relative / name)
            else:
                (target / relative / name).mkdir(mode=0o755)
        for name in files:
            path = Path(folder, name)
            if path.is_symlink():
                os.symlink(os.readlink(path), target / relative / name)
            elif path.is_file():
                os.link(path, target / relative / name, follow_symlinks=False)
        folders[:] = [name for name in folders if not Path(folder, name).is_symlink()]


def _prune(keep: set[str]) -> None:
    now = time.time()
    for entry in os.scandir(VIEW_ROOT):
        try:
            if entry.name not in keep and now - entry.stat(follow_symlinks=False).st_mtime > KEEP_SECONDS:
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            pass


def venv_without_its_path(view: Path, source: Path) -> None:
    """In a view of a venv, the files that write down where the venv lives, made neutral.

    ``pyvenv.cfg`` loses its ``command`` line, ``bin/`` keeps only its links to the interpreter
    (its scripts start with ``#!<venv>/bin/python``), and editable installs' ``.pth`` files,
    finders and ``direct_url.json`` (the sandbox finds ``speechcourse`` on ``PYTHONPATH``) go.
    Each is unlinked in the view only; the venv itself is not touched."""
    needle = os.fsencode(os.path.realpath(source.parent))
    config = view / "pyvenv.cfg"
    if config.is_file():
        lines = [line for line in config.read_text().splitlines() if not line.startswith("command")]
        config.unlink()
        config.write_text("\n".join(lines) + "\n")
    for entry in (view / "bin").iterdir() if (view / "bin").is_dir() else []:
        if not entry.is_symlink():
            entry.unlink()
    for site in view.glob("lib/python*/site-packages"):
        for entry in site.iterdir():
            if entry.is_file() and (entry.name.startswith("__editable__") or
                                    entry.suffix == ".pth" and needle in entry.read_bytes()):
                entry.unlink()
        for record in site.glob("*.dist-info/direct_url.json"):
            record.unlink()


def neutral(source: Path, fix=None) -> Path:
    """A path holding exactly ``source`` (a folder or a file) that does not name where it lives.

    ``fix(view, source)`` may then change the view (unlinking, never writing through a link).
    ``source`` itself when no view can be made (another file system, no permission)."""
    source = Path(source)
    try:
        if not _root_ok() or os.lstat(source).st_dev != os.lstat(VIEW_ROOT).st_dev:
            return source
        is_folder = source.is_dir()
        key = (_tree_key(source) if is_folder else _file_key(source)) + "-" + source.name + ("-fixed" if fix else "")
        cached = _made.get((str(source), key))
        if cached is not None and os.path.lexists(cached):
            return cached
        target = VIEW_ROOT / key
        if not target.exists():
            partial = VIEW_ROOT / f".partial-{os.getpid()}-{time.monotonic_ns()}"
            try:
                if is_folder:
                    _link_tree(source, partial)
                    if fix is not None:
                        fix(partial, source)
                else:                       # a file goes in a folder of its own (its mtime is the source's)
                    partial.mkdir(mode=0o755)
                    os.link(source, partial / source.name, follow_symlinks=False)
                os.rename(partial, target)
            except OSError:
                if not target.exists():
                    raise
            finally:
                if partial.is_dir():
                    shutil.rmtree(partial, ignore_errors=True)
                elif partial.exists():
                    partial.unlink()
            _prune({key})
        os.utime(target, follow_symlinks=False)   # in use: not pruned for another day (a folder of ours)
        found = target if is_folder else target / source.name
        _made[(str(source), key)] = found
        return found
    except OSError:
        return source
