"""Subtasks wait for their worktrees in line: first come, first served, and up to
`checkouts_at_once` fresh checkouts are made at the same time (no checkout waits for another
to end). The real Worktrees on a real repository, in this process."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.lowlevel

from orchestrator.workspace.worktrees import Worktrees
from tests.conftest import git

SPEC = "001-line"


async def hold_all(worktrees: Worktrees, ids: list[str], base: str) -> tuple[list[str], int]:
    """Every subtask of `ids` asks for its worktree in that order, one scheduler tick apart;
    returns the order in which they got them and the most checkouts seen under way at once."""
    ready: list[str] = []
    peak = 0

    async def one(subtask_id: str) -> None:
        async with worktrees.hold(subtask_id, f"orchestrate/{SPEC}/{subtask_id}", base):
            ready.append(subtask_id)

    async def watch(done: trio.Event) -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, worktrees.creating)
            await trio.lowlevel.checkpoint()

    done = trio.Event()
    async with trio.open_nursery() as watcher:
        watcher.start_soon(watch, done)
        async with trio.open_nursery() as nursery:
            for subtask_id in ids:
                nursery.start_soon(one, subtask_id)
                await trio.lowlevel.checkpoint()
        done.set()
    return ready, peak


def many_files(repo: Path, count: int) -> str:
    for n in range(count):
        (repo / f"f{n}.txt").write_text(f"{n}\n" * 50)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "files")
    return git(repo, "rev-parse", "HEAD")


async def test_worktrees_go_to_subtasks_in_the_order_they_asked(repo: Path) -> None:
    base = many_files(repo, 50)
    ids = [f"s{n}" for n in range(5)]
    worktrees = Worktrees(repo, SPEC, pool_limit=8, checkouts_at_once=1)
    ready, peak = await hold_all(worktrees, ids, base)
    assert ready == ids
    assert peak == 1


async def test_fresh_checkouts_run_at_the_same_time_up_to_the_bound(repo: Path) -> None:
    base = many_files(repo, 50)
    worktrees = Worktrees(repo, SPEC, pool_limit=8, checkouts_at_once=3)
    ready, peak = await hold_all(worktrees, [f"s{n}" for n in range(5)], base)
    assert sorted(ready) == [f"s{n}" for n in range(5)]
    assert peak == 3
    for subtask_id in ready:
        path = worktrees.path_for(subtask_id)
        assert git(path, "status", "--porcelain") == ""
        assert git(path, "rev-parse", "--abbrev-ref", "HEAD") == f"orchestrate/{SPEC}/{subtask_id}"
