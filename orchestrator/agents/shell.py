"""Anthropic's bash tool (bash_20250124): each command runs in a fresh `/bin/bash -c` in the
worktree, in its own process group, with a time limit. Whatever the command leaves running in
its group is killed when the call ends, so nothing outlives a tool call."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

from merge import child_env
from orchestrator.agents.base import git_ceiling
from orchestrator.door.processes import run_with_time_limit

# Never hand the model the credentials of the session that drives it.
HIDDEN_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GIT_DIR", "GIT_WORK_TREE",
              "GIT_INDEX_FILE")


async def run_bash(command: str, worktree: Path, *, time_limit: float,
                   limit: int) -> tuple[str, bool]:
    """The command's combined output (clipped to `limit`) and whether the call failed."""
    with tempfile.TemporaryFile() as out:
        returncode = await _run(command, worktree, out, time_limit)
        text = _read_back(out, limit)
    if returncode is None:
        return f"{text}\n[timed out after {time_limit:g} s; the command was killed]", True
    status = "" if returncode == 0 else f"\n[exit code {returncode}]"
    return (text or "(no output)") + status, False


async def _run(command: str, worktree: Path, out: IO[bytes], time_limit: float) -> int | None:
    """The exit code, or None when the time limit killed the command."""
    return await run_with_time_limit(["/bin/bash", "-c", command], cwd=worktree, output=out,
                                     time_limit=time_limit, env=_environment(worktree))


def _environment(worktree: Path) -> dict[str, str]:
    return child_env({"GIT_TERMINAL_PROMPT": "0", "PAGER": "cat", "GIT_PAGER": "cat",
                      "GIT_CEILING_DIRECTORIES": git_ceiling(worktree),
                      "ORCHESTRATE_WORKTREE": str(worktree)},  # marks it for orphans.py
                     hidden=HIDDEN_ENV)


def _read_back(out: IO[bytes], limit: int) -> str:
    """The output file's text; only its head and tail are read when it is large."""
    size = os.fstat(out.fileno()).st_size
    out.seek(0)
    if size <= limit:
        return out.read().decode("utf-8", "replace")
    half = max(limit // 2, 1)
    head = out.read(half).decode("utf-8", "replace")
    out.seek(size - half)
    tail = out.read(half).decode("utf-8", "replace")
    return f"{head}\n[... {size - 2 * half} bytes of output omitted ...]\n{tail}"
