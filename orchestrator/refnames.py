"""Which strings can be one component of a git branch name and a folder name.

The rules are those of `git check-ref-format` (see its manual), applied to a single component,
plus what `git branch` and file systems refuse; tests compare them with git itself.
"""

from __future__ import annotations

_FORBIDDEN_CHARS = set(" ~^:?*[\\/")
_MAX_BYTES = 200  # folder names stop at 255 bytes; leave room for ".lock" and suffixes


def refname_problem(component: str) -> str | None:
    """Why `component` cannot be a ref component and folder name, or None if it can."""
    if not component:
        return "it is empty"
    if component.startswith("."):
        return "it starts with '.'"
    if component.startswith("-"):
        return "it starts with '-'"
    if component.endswith("."):
        return "it ends with '.'"
    if component.endswith(".lock"):
        return "it ends with '.lock'"
    if ".." in component:
        return "it contains '..'"
    if "@{" in component:
        return "it contains '@{'"
    if component == "@":
        return "it is '@'"
    bad = sorted({c for c in component if c in _FORBIDDEN_CHARS or ord(c) < 32 or ord(c) == 127})
    if bad:
        return "it contains " + ", ".join(repr(c) for c in bad)
    if len(component.encode("utf-8")) > _MAX_BYTES:
        return f"it is longer than {_MAX_BYTES} bytes"
    return None
