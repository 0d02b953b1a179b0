"""Anthropic's bash tool (bash_20250124): each command runs in a fresh `/bin/bash -c` in the
worktree, in its own process group, with a time limit. Whatever the command leaves running in
its group is killed when the call ends, so nothing outlives a tool call."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from functools import partial
from pathlib import Path
from typing import IO

import trio

from orchestrator.agents.base import git_ceiling

# Never hand the model the credentials of the session that drives it.
HIDDEN_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GIT_DIR", "GIT_WORK_TREE",
              "GIT_INDEX_FILE")
KILL_GRACE = 2.0


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
    start = partial(trio.run_process, ["/bin/bash", "-c", command], cwd=worktree,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, check=False, env=_environment(worktree),
                    deliver_cancel=_terminate_group)
    pgid: int | None = None
    try:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(start)
            pgid = process.pid
            with trio.move_on_after(time_limit) as limit_scope:
                await process.wait()
            if limit_scope.cancelled_caught:
                nursery.cancel_scope.cancel()
        return None if limit_scope.cancelled_caught else process.returncode
    finally:
        if pgid is not None:
            _signal_group(pgid, signal.SIGKILL)  # background jobs the command left behind


async def _terminate_group(process: trio.Process) -> None:
    _signal_group(process.pid, signal.SIGTERM)
    with trio.move_on_after(KILL_GRACE):
        await process.wait()
    _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _environment(worktree: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in HIDDEN_ENV}
    env.update(GIT_TERMINAL_PROMPT="0", PAGER="cat", GIT_PAGER="cat",
               GIT_CEILING_DIRECTORIES=git_ceiling(worktree),
               ORCHESTRATE_WORKTREE=str(worktree))  # marks it for orphans.py
    return env


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
