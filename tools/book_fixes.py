"""Sphinx extension: small fixes to the pages the theme writes.

sphinx-thebe adds its inline configuration script once per ``env-before-read-docs``, which
Jupyter Book fires more than once, so every page declared ``const THEBE_JS_URL`` twice
and the browser logged "Identifier 'THEBE_JS_URL' has already been declared". This drops
repeated scripts (same file, same inline body) from each page before it is written.

The theme also logged "Got invalid theme mode: . Resetting to auto." on every page,
because its ``default_mode`` was empty; it is set to "auto", the value the theme falls
back to anyway.
"""
from __future__ import annotations


def _key(script):
    filename = getattr(script, "filename", script) or ""      # an inline script: None or ""
    attributes = getattr(script, "attributes", {}) or {}
    return str(filename), " ".join(str(attributes.get("body", "")).split())


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):
        context["default_mode"] = "auto"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", drop_repeated_scripts, priority=100_000)  # after every handler that adds scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
