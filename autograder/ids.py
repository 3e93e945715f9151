"""Student ids: the folder name a submission came in, and the id nbgrader files it under.

nbgrader treats ids as glob patterns and as parts of paths, and the CSV and the
gradebook need text. A folder name made only of letters, digits and ``_ . -`` (not
starting with ``.`` or ``-``) is used as it is. Any other name, including one that is
not valid UTF-8, is filed under ``x-<readable part>-<hash>`` and shown, in the CSV and
the exports, as the folder name with undecodable bytes written ``\\xNN``. Both come
with a note, and ``OUT/students.json`` maps each internal id back to its folder.

Two names must never look alike where they differ: a name with a character that shows as
nothing or as a plain space (a zero-width space, a space at either end or doubled, a
no-break space, a control or format character) or that is not in Unicode NFC form (``é``
as ``e`` plus a combining accent, as macOS writes names) is shown with those characters
escaped (``alice\\u200b``, ``alice\\x20``), so that the Canvas export never holds two
rows that read the same, and it comes with a note asking to check the id.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata

SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")


def _text(folder_name: str) -> str:
    """The name as text, undecodable bytes as ``\\xNN`` (the stand-in's readable part is made of it)."""
    return os.fsencode(folder_name).decode("utf-8", "backslashreplace")


def _hidden(text: str, index: int) -> bool:
    """Whether the character at ``index`` would not be seen as itself."""
    ch = text[index]
    if ch == " ":      # a plain space shows only between two characters that are not spaces
        return index == 0 or index == len(text) - 1 or text[index - 1] == " " or text[index + 1] == " "
    if unicodedata.category(ch)[0] in "CZ":   # control, format (zero-width), unassigned, separators
        return True
    return unicodedata.combining(ch) != 0 and not unicodedata.is_normalized("NFC", text)


def _escaped(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def display_id(folder_name: str) -> str:
    """The folder name as text that shows every difference: undecodable bytes and a backslash as
    ``\\xNN``, characters that cannot be seen as ``\\xNN``/``\\uNNNN`` escapes."""
    text = os.fsencode(folder_name).decode("utf-8", "surrogateescape")
    shown = []
    for index, ch in enumerate(text):
        if 0xDC80 <= ord(ch) <= 0xDCFF:            # a byte that is not UTF-8
            shown.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch == "\\" or (_hidden(text, index) and not 0xD800 <= ord(ch) <= 0xDFFF):
            shown.append(_escaped(ch))
        else:
            shown.append(ch)
    return "".join(shown)


def internal_id(folder_name: str) -> str:
    """The id nbgrader sees: the name itself when it is safe, else a safe, unique stand-in."""
    if SAFE.match(folder_name) and not folder_name.startswith("x-"):
        return folder_name
    raw = os.fsencode(folder_name)
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", _text(folder_name)).strip("._-")[:40]
    return f"x-{readable or 'id'}-{hashlib.sha256(raw).hexdigest()[:10]}"


def id_notes(folder_name: str) -> list[str]:
    """What a student (and the instructor) is told about a renamed id."""
    notes = []
    try:
        os.fsencode(folder_name).decode("utf-8")
    except UnicodeDecodeError:
        notes.append("The student folder's name is not valid UTF-8; it is shown with \\x escapes.")
    text = os.fsencode(folder_name).decode("utf-8", "surrogateescape")
    if any(_hidden(text, index) for index in range(len(text)) if not 0xD800 <= ord(text[index]) <= 0xDFFF):
        notes.append(f"The student folder's name has characters that cannot be seen (spaces at its ends, "
                     f"a zero-width or control character, or an accent stored apart); it is shown as "
                     f"{display_id(folder_name)}: check it against the class list.")
    internal = internal_id(folder_name)
    if internal != folder_name:
        notes.append(f"The student folder's name has characters nbgrader cannot use in an id; "
                     f"the gradebook files it as {internal}.")
    return notes
