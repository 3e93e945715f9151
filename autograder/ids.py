"""Student ids: the folder name a submission came in, and the id nbgrader files it under.

nbgrader treats ids as glob patterns and as parts of paths, and the CSV and the
gradebook need text. A folder name made only of letters, digits and ``_ . -`` (not
starting with ``.`` or ``-``) is used as it is. Any other name, including one that is
not valid UTF-8, is filed under ``x-<readable part>-<hash>`` and shown, in the CSV and
the exports, as the folder name with undecodable bytes written ``\\xNN``. Both come
with a note, and ``OUT/students.json`` maps each internal id back to its folder.
"""
from __future__ import annotations

import hashlib
import os
import re

SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")


def display_id(folder_name: str) -> str:
    """The folder name as text: undecodable bytes become ``\\xNN``."""
    return os.fsencode(folder_name).decode("utf-8", "backslashreplace")


def internal_id(folder_name: str) -> str:
    """The id nbgrader sees: the name itself when it is safe, else a safe, unique stand-in."""
    if SAFE.match(folder_name) and not folder_name.startswith("x-"):
        return folder_name
    raw = os.fsencode(folder_name)
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", display_id(folder_name)).strip("._-")[:40]
    return f"x-{readable or 'id'}-{hashlib.sha256(raw).hexdigest()[:10]}"


def id_notes(folder_name: str) -> list[str]:
    """What a student (and the instructor) is told about a renamed id."""
    notes = []
    try:
        os.fsencode(folder_name).decode("utf-8")
    except UnicodeDecodeError:
        notes.append("The student folder's name is not valid UTF-8; it is shown with \\x escapes.")
    internal = internal_id(folder_name)
    if internal != folder_name:
        notes.append(f"The student folder's name has characters nbgrader cannot use in an id; "
                     f"the gradebook files it as {internal}.")
    return notes
