"""Anthropic's text editor tool (text_editor_20250728): view, create, str_replace and insert,
confined to one worktree. Each command returns the text for the model or raises ToolError."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator.agents.confine import ToolError, display, resolve_inside
from orchestrator.agents.output import clip

Args = Mapping[str, object]
SNIPPET_CONTEXT = 4


def edit(worktree: Path, args: Args, limit: int) -> str:
    command = args.get("command")
    handler = _COMMANDS.get(command) if isinstance(command, str) else None
    if handler is None:
        known = ", ".join(_COMMANDS)
        raise ToolError(f"unknown command {command!r}; use one of: {known}")
    return clip(handler(worktree, args), limit)


def _view(worktree: Path, args: Args) -> str:
    path = resolve_inside(worktree, args.get("path"))
    if path.is_dir():
        if args.get("view_range") is not None:
            raise ToolError("`view_range` only applies to files, not folders")
        return _listing(worktree, path)
    lines = _read(worktree, path).splitlines()
    start, end = _view_range(args.get("view_range"), len(lines))
    numbered = (f"{number:6}\t{line}" for number, line in enumerate(lines[start - 1:end], start))
    return f"{display(worktree, path)}:\n" + "\n".join(numbered)


def _view_range(raw: object, count: int) -> tuple[int, int]:
    if raw is None:
        return 1, count
    if (not isinstance(raw, list) or len(raw) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in raw)):
        raise ToolError("`view_range` must be [start, end] (whole numbers; end -1 = last line)")
    start, end = raw
    end = count if end == -1 else end
    if not 1 <= start <= max(count, 1) or end < start or end > count:
        raise ToolError(f"`view_range` {raw} is not within the file's {count} lines")
    return start, end


def _listing(worktree: Path, folder: Path) -> str:
    lines = [f"Files and folders up to 2 levels deep in {display(worktree, folder)}, "
             "hidden items excluded:"]
    for entry in _visible(folder):
        lines.append(_entry_line(worktree, entry))
        # follow_symlinks=False: a linked folder may point outside the worktree.
        if entry.is_dir(follow_symlinks=False):
            lines.extend(_entry_line(worktree, inner) for inner in _visible(Path(entry.path)))
    return "\n".join(lines)


def _visible(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _entry_line(worktree: Path, entry: os.DirEntry[str]) -> str:
    shown = display(worktree, Path(entry.path))
    return shown + "/" if entry.is_dir(follow_symlinks=False) else shown


def _create(worktree: Path, args: Args) -> str:
    path = resolve_inside(worktree, args.get("path"))
    text = _string(args, "file_text")
    if path.is_dir():
        raise ToolError(f"{display(worktree, path)} is a folder")
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    verb = "Overwrote" if existed else "Created"
    return f"{verb} {display(worktree, path)} ({len(text.splitlines())} lines)."


def _str_replace(worktree: Path, args: Args) -> str:
    path = resolve_inside(worktree, args.get("path"))
    old = _string(args, "old_str")
    new = _string(args, "new_str", default="")
    if not old:
        raise ToolError("`old_str` must not be empty")
    text = _read(worktree, path)
    matches = text.count(old)
    if matches != 1:
        where = display(worktree, path)
        if matches == 0:
            raise ToolError(f"No replacement made: `old_str` does not occur in {where}.")
        raise ToolError(f"No replacement made: `old_str` occurs {matches} times in {where}; "
                        "include more surrounding lines to make it unique.")
    first_line = text[:text.index(old)].count("\n") + 1
    updated = text.replace(old, new, 1)
    path.write_bytes(updated.encode("utf-8"))
    return _edited(worktree, path, updated, first_line, new.count("\n") + 1)


def _insert(worktree: Path, args: Args) -> str:
    path = resolve_inside(worktree, args.get("path"))
    key = "insert_text" if "insert_text" in args else "new_str"
    new = _string(args, key)
    after = args.get("insert_line")
    lines = _read(worktree, path).splitlines(keepends=True)
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= len(lines):
        raise ToolError(f"`insert_line` must be a line number from 0 to {len(lines)}")
    if lines and after == len(lines) and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    block = new if new.endswith("\n") or not new else new + "\n"
    updated = "".join([*lines[:after], block, *lines[after:]])
    path.write_bytes(updated.encode("utf-8"))
    return _edited(worktree, path, updated, after + 1, max(new.count("\n"), 1))


def _edited(worktree: Path, path: Path, text: str, first: int, count: int) -> str:
    lines = text.splitlines()
    start = max(first - SNIPPET_CONTEXT, 1)
    end = min(first + count - 1 + SNIPPET_CONTEXT, len(lines))
    snippet = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
    return f"Edited {display(worktree, path)}. The changed region now reads:\n{snippet}"


def _read(worktree: Path, path: Path) -> str:
    if not path.is_file():
        state = "is not a regular file" if path.exists() else "does not exist"
        raise ToolError(f"{display(worktree, path)} {state}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{display(worktree, path)} is not a UTF-8 text file") from None


def _string(args: Args, key: str, default: str | None = None) -> str:
    value = args.get(key, default)
    if not isinstance(value, str):
        raise ToolError(f"`{key}` must be a string")
    return value


_COMMANDS: dict[str, Callable[[Path, Args], str]] = {
    "view": _view, "create": _create, "str_replace": _str_replace, "insert": _insert,
}
