"""The shared `.git`'s checks: callers who ask together share one check, which begins after
they all asked, so a change made before any of them asked is found, and undone, once. The
real SharedGit on a real repository, in this process."""

from __future__ import annotations

from pathlib import Path

import trio

from orchestrator.workspace.shared_git import SharedGit


async def test_callers_asking_together_share_one_check(repo: Path) -> None:
    shared, _ = await SharedGit.open(repo, "001-demo")
    config = repo / ".git" / "config"
    before = config.read_text()
    config.write_text(before + "[planted]\n\tby = an agent\n")
    results: list[list[str]] = []

    async def ask() -> None:
        results.append(await shared.check())

    async with trio.open_nursery() as nursery:
        for _ in range(5):  # all asking in the same tick, as agents that end together do
            nursery.start_soon(ask)
    assert len(results) == 5
    assert all(result is results[0] for result in results)  # one check, begun after all asked
    assert any("config" in change for change in results[0])
    assert config.read_text() == before  # undone
    assert await shared.check() == []  # a later caller gets a check of its own
    shared.close()
