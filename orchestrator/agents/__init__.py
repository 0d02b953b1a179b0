"""Agents behind one small protocol (base.Agent); `open_agent` picks and opens one per build."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from orchestrator.agents.base import Agent, anthropic_api_key
from orchestrator.errors import UsageError
from orchestrator.settings import Settings


def check_agent_configured(settings: Settings) -> None:
    if settings.agent is None:
        raise UsageError("no agent configured",
                         "Pass --agent-command 'CMD' (e.g. a Claude Code, Aider or Codex command) "
                         "or set agent_command in orchestrate.toml; or set ANTHROPIC_API_KEY to "
                         "use the built-in claude agent.")
    if settings.agent == "command" and not settings.agent_command:
        raise UsageError("option --agent command needs --agent-command 'CMD'",
                         "Or set agent_command in orchestrate.toml or ORCHESTRATE_AGENT_COMMAND.")
    if settings.agent == "claude":
        anthropic_api_key()


def agent_label(settings: Settings) -> str:
    """How commits name the agent: its kind and program, never the full command line."""
    if settings.agent == "claude":
        return f"claude ({settings.model})"
    try:
        words = shlex.split(settings.agent_command or "")
    except ValueError:  # unbalanced quotes: the shell will say so when it runs
        words = (settings.agent_command or "").split()
    program = next((w for w in words if "=" not in w), "")
    return f"command ({program.rsplit('/', 1)[-1]})" if program else "command"


@asynccontextmanager
async def open_agent(settings: Settings) -> AsyncIterator[Agent]:
    check_agent_configured(settings)
    if settings.agent == "claude":
        from orchestrator.agents.claude import open_claude_agent

        async with open_claude_agent(settings) as agent:
            yield agent
        return
    from orchestrator.agents.command import CommandAgent

    yield CommandAgent(settings.agent_command or "")
