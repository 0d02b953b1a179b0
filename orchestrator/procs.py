"""Child processes in their own process group, output to a file, and the whole group killed on
cancellation or after the leader exits (so a backgrounded grandchild cannot outlive its step)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import trio

GRACE_S = 3.0


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_alive(pgid: int, leader: trio.Process | None) -> bool:
    # reading `returncode` reaps an exited leader: as a zombie it would keep the group alive
    if leader is not None and leader.returncode is None:
        return True
    return _signal_group(pgid, 0)


async def kill_group(pgid: int, leader: trio.Process | None = None) -> None:
    """SIGTERM the group, give it GRACE_S to exit, then SIGKILL whatever is left."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    with trio.move_on_after(GRACE_S):
        while _group_alive(pgid, leader):  # noqa: ASYNC110 - no event tells when a group is empty
            await trio.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)


async def run_in_group(command: str, *, cwd: Path, output: IO[bytes],
                       stdin: IO[bytes] | None = None,
                       env: Mapping[str, str] | None = None) -> int:
    """Run `command` through /bin/sh in a new session and return its exit code.

    stdout and stderr go to `output`, a file: a grandchild holding a pipe would keep us waiting.
    """
    process = await trio.lowlevel.open_process(
        ["/bin/sh", "-c", command], cwd=cwd, stdin=stdin or subprocess.DEVNULL,
        stdout=output, stderr=output, env=dict(env) if env is not None else None,
        start_new_session=True)
    try:
        await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            await kill_group(process.pid, process)
            await process.wait()
    return process.returncode if process.returncode is not None else -1
