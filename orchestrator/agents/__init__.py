"""Agents behind one small protocol (base.Agent); `open_agent` picks and opens one per build.

Each kind of agent is one entry of agents/kinds.py; nothing here branches on the kind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.agents.base import Agent
from orchestrator.agents.kinds import KINDS, AgentKind
from orchestrator.agents.presets import PRESETS
from orchestrator.errors import UsageError
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.events import Sink

__all__ = ["KINDS", "agent_label", "check_agent_configured", "open_agent"]


def _kind(settings: Settings) -> AgentKind:
    if settings.agent is None:
        raise UsageError("no agent configured",
                         "Pass --agent-command 'CMD' (e.g. a Claude Code, Aider or Codex command) "
                         f"or --agent PRESET ({', '.join(PRESETS)}), or set agent_command in "
                         "orchestrate.toml; or set ANTHROPIC_API_KEY to use the built-in claude "
                         "agent.")
    return KINDS[settings.agent]


def check_agent_configured(settings: Settings, repo: Path | None = None) -> None:
    """Refuse a build whose agent cannot start, before anything is created; with `repo`,
    also that the agent's program exists (a relative path is taken from the repo root)."""
    kind = _kind(settings)
    kind.check(settings)
    if repo is not None:
        _check_program(*kind.program(settings), repo)


def _check_program(program: str, source: str, repo: Path) -> None:
    if not program or _runnable(program, repo):
        return
    where = "is not an executable file" if "/" in program else "is not on PATH"
    raise UsageError(f"{source}: the agent program `{program}` {where}; nothing was started",
                     f"Install {program} (or fix PATH or the command) and run the build again.")


def _runnable(program: str, repo: Path) -> bool:
    if "/" not in program:
        return shutil.which(program) is not None
    path = Path(program).expanduser()
    path = path if path.is_absolute() else repo / path
    return path.is_file() and os.access(path, os.X_OK)


def agent_label(settings: Settings) -> str:
    """How commits name the agent: its kind and program, never the full command line."""
    return KINDS[settings.agent].label(settings) if settings.agent in KINDS else "command"


@asynccontextmanager
async def open_agent(settings: Settings, sink: Sink | None = None) -> AsyncIterator[Agent]:
    """The build's agent; `sink` receives the agent's own events (the claude agent's
    request limit)."""
    check_agent_configured(settings)
    async with _kind(settings).open(settings, sink) as agent:
        yield agent
