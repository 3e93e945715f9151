"""The language the course speaks to a student in: English, or Korean for the Korean edition.

The Korean release of a lab (``labs/ko/<lab>/<lab>.ipynb``) runs ``use("ko")`` in its first
code cell, so that the self-checks (and the hidden tests, which fail through the same
checks) explain themselves in Korean. The graded cells and the tests are the same in both
editions: only the sentences differ. ``SPEECHCOURSE_LANG=ko`` in the environment does the
same for a whole session.

Every sentence a student may read is written once, in both languages, where it is raised::

    raise CheckFailed(say(f"{name}: expected shape {shape}, got {got}.",
                          f"{name}: 모양이 {shape}이어야 하는데 {got}입니다."))
"""
from __future__ import annotations

import os

LANGUAGES = ("en", "ko")
_language = os.environ.get("SPEECHCOURSE_LANG", "en") if os.environ.get("SPEECHCOURSE_LANG") in LANGUAGES else "en"


def use(language: str) -> None:
    """Speak ``language`` ("en" or "ko") from now on in this kernel."""
    global _language
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, not {language!r}")
    _language = language


def current() -> str:
    """The language in use: "en" or "ko"."""
    return _language


def say(en: str, ko: str) -> str:
    """The sentence in the language in use."""
    return ko if _language == "ko" else en
