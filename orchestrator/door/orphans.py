"""Agent processes that escaped their process group (`setsid`, a daemon) or outlived a build
that was killed outright (SIGKILL, OOM killer): each agent runs in a session of its own, so
neither is stopped with the group. They are found by the environment every agent process is
started with, ORCHESTRATE_WORKTREE, and stopped after each attempt (that worktree) and when a
build starts (every worktree of the spec: the run lock says no live build owns them).
Linux only (/proc); elsewhere nothing is found.
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

from orchestrator.door.processes import kill_group

PROC = Path("/proc")


def orphaned_groups(folder: Path) -> set[int]:
    """Process groups holding a process started as an agent in `folder` or below it."""
    mark = b"ORCHESTRATE_WORKTREE=" + os.fsencode(folder)
    own = os.getpgid(0)
    found = set()
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        group = _agent_group(entry, mark) if entry.name.isdigit() else None
        if group is not None and group != own:
            found.add(group)
    return found


def _agent_group(entry: Path, mark: bytes) -> int | None:
    try:
        environ = (entry / "environ").read_bytes().split(b"\0")
        stat = (entry / "stat").read_text()
    except OSError:  # gone meanwhile, or not ours to read
        return None
    if any(v == mark or v.startswith(mark + b"/") for v in environ):
        return int(stat.rsplit(")", 1)[1].split()[2])  # pid (comm) state ppid pgrp ...
    return None


async def stop_orphaned_agents(folder: Path) -> int:
    """Stop every agent group of `folder` or below (SIGTERM, then SIGKILL); return how many."""
    groups = await trio.to_thread.run_sync(orphaned_groups, folder)
    async with trio.open_nursery() as nursery:
        for group in groups:
            nursery.start_soon(kill_group, group)
    return len(groups)
