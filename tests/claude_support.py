"""Helpers for driving the real claude agent against the fake Messages API."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from orchestrator.agents.base import AgentResult, AgentTask
from orchestrator.agents.claude import open_claude_agent
from orchestrator.settings import ClaudeSettings, Settings


def make_task(tmp_path: Path, marker: str, *, attempt: int = 1) -> AgentTask:
    worktree = tmp_path / "worktree"
    worktree.mkdir(exist_ok=True)
    return AgentTask(spec="001-demo", subtask_id=marker, prompt=f"Subtask {marker}: do the work.",
                     worktree=worktree, branch=f"orchestrate/001-demo/{marker}",
                     log_path=tmp_path / "logs" / f"{marker}.log", port=41000, attempt=attempt)


def settings(**claude: Any) -> Settings:
    return Settings(claude=replace(ClaudeSettings(), **claude))


async def run_agent(task: AgentTask, config: Settings | None = None) -> AgentResult:
    async with open_claude_agent(config or Settings()) as agent:
        return await agent.run(task)


def live_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that are still running (zombies do not count: they are dead,
    and nothing may reap them in a container whose init does not)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


async def survivors(pgid: int, wait: float = 3.0) -> list[int]:
    """The live members of group `pgid` once a kill has had `wait` seconds to land."""
    for _ in range(int(wait / 0.05)):
        if not live_members(pgid):
            break
        await trio.sleep(0.05)
    return live_members(pgid)
