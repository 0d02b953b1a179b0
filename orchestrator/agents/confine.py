"""Keep the claude agent's file tools inside its worktree: every path is resolved (symlinks and
`..` included) before anything is read or written, and must land inside the worktree, outside
its `.git`."""

from __future__ import annotations

import os
from pathlib import Path


class ToolError(Exception):
    """A tool call that is refused or fails; its message goes back to the model as is_error."""


def resolve_inside(worktree: Path, raw: object) -> Path:
    """The real path `raw` names (relative to the worktree, or absolute inside it)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ToolError("`path` must be a non-empty string")
    if "\x00" in raw:
        raise ToolError("`path` must not contain a NUL character")
    root = Path(os.path.realpath(worktree))
    given = Path(raw)
    candidate = given if given.is_absolute() else root / given
    # realpath follows every symlink that exists, dangling ones included, so a link pointing
    # outside is caught whether or not its target exists yet.
    real = Path(os.path.realpath(candidate))
    if real != root and root not in real.parents:
        raise ToolError(f"{raw}: refused: the path is outside the worktree {root}")
    relative = real.relative_to(root)
    if relative.parts[:1] == (".git",):
        raise ToolError(f"{raw}: refused: the .git folder is managed by the orchestrator")
    return real


def display(worktree: Path, path: Path) -> str:
    """`path` as the model should see it: relative to the worktree."""
    root = Path(os.path.realpath(worktree))
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
