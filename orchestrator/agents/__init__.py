"""Agents behind one small protocol (base.Agent); `open_agent` picks and opens one per build.

Every kind of agent is registered here: `claude` (the built-in loop on the Messages API),
`command` (--agent-command), and the presets of orchestrator/presets.py, which are command
agents with a fixed command line.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.agents.base import Agent, anthropic_api_key
from orchestrator.agents.presets import PRESETS, command_program
from orchestrator.errors import UsageError
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.events import Sink


def check_agent_configured(settings: Settings, repo: Path | None = None) -> None:
    """Refuse a build whose agent cannot start, before anything is created; with `repo`,
    also that the agent's program exists (a relative path is taken from the repo root)."""
    if settings.agent is None:
        raise UsageError("no agent configured",
                         "Pass --agent-command 'CMD' (e.g. a Claude Code, Aider or Codex command) "
                         f"or --agent PRESET ({', '.join(PRESETS)}), or set agent_command in "
                         "orchestrate.toml; or set ANTHROPIC_API_KEY to use the built-in claude "
                         "agent.")
    if settings.agent == "command" and not settings.agent_command:
        raise UsageError("option --agent command needs --agent-command 'CMD'",
                         "Or set agent_command in orchestrate.toml or ORCHESTRATE_AGENT_COMMAND.")
    if settings.agent == "claude":
        anthropic_api_key()
    if repo is not None:
        _check_program(settings, repo)


def _check_program(settings: Settings, repo: Path) -> None:
    if settings.agent in PRESETS:
        program, source = PRESETS[settings.agent].program, f"--agent {settings.agent}"
    elif settings.agent == "command":
        program, source = command_program(settings.agent_command or ""), "--agent-command"
    else:
        return
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
    if settings.agent == "claude":
        return f"claude ({settings.model})"
    if settings.agent in PRESETS:
        return f"{settings.agent} ({settings.model})" if settings.model_given else settings.agent
    try:
        words = shlex.split(settings.agent_command or "")
    except ValueError:  # unbalanced quotes: the shell will say so when it runs
        words = (settings.agent_command or "").split()
    program = next((w for w in words if "=" not in w), "")
    return f"command ({program.rsplit('/', 1)[-1]})" if program else "command"


def command_line(settings: Settings) -> str:
    """--agent-command with agent_args appended, each quoted for the shell."""
    command = settings.agent_command or ""
    return " ".join([command, shlex.join(settings.agent_args)]) if settings.agent_args \
        else command


@asynccontextmanager
async def open_agent(settings: Settings, sink: Sink | None = None) -> AsyncIterator[Agent]:
    """The build's agent; `sink` receives the agent's own events (the claude agent's
    request limit)."""
    check_agent_configured(settings)
    if settings.agent == "claude":
        from orchestrator.agents.claude import open_claude_agent

        async with open_claude_agent(settings, sink) as agent:
            yield agent
        return
    from orchestrator.agents.command import CommandAgent

    if settings.agent in PRESETS:
        yield CommandAgent("", preset=PRESETS[settings.agent],
                           model=settings.model if settings.model_given else None,
                           extra_args=settings.agent_args, pty=settings.pty)
        return
    yield CommandAgent(command_line(settings),
                       model=settings.model if settings.model_given else None, pty=settings.pty)
