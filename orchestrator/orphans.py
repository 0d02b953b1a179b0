"""Agents left running by a build that was killed outright (SIGKILL, OOM killer, a crash):
their process groups outlive it, because each agent runs in a session of its own. The next
build of the spec stops them before it reuses their worktrees.

They are recognised by the environment every agent process is started with: an
ORCHESTRATE_WORKTREE inside this spec's worktree folder. The caller holds the spec's run lock,
so no live build of the spec owns such a process. Linux only (/proc); elsewhere nothing is
found.
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

from orchestrator.procs import kill_group

PROC = Path("/proc")


def orphaned_groups(spec_worktrees: Path) -> set[int]:
    """Process groups holding a process started as an agent in `spec_worktrees`."""
    mark = b"ORCHESTRATE_WORKTREE=" + os.fsencode(spec_worktrees) + b"/"
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
    if any(variable.startswith(mark) for variable in environ):
        return int(stat.rsplit(")", 1)[1].split()[2])  # pid (comm) state ppid pgrp ...
    return None


async def stop_orphaned_agents(spec_worktrees: Path) -> int:
    """Stop every orphaned agent group (SIGTERM, then SIGKILL); return how many."""
    groups = await trio.to_thread.run_sync(orphaned_groups, spec_worktrees)
    async with trio.open_nursery() as nursery:
        for group in groups:
            nursery.start_soon(kill_group, group)
    return len(groups)
