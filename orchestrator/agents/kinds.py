"""Every kind of agent, each one entry: how to check it can start, which program it runs, how
commits name it, and how to open it. `open_agent` and friends look a kind up by name and never
branch on it.

Kinds: `claude` (the built-in loop on the Messages API; opening it imports `anthropic`, so only
then), `command` (--agent-command), and one per preset of agents/presets.py (a command agent
with a fixed command line).
"""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.agents.base import Agent, anthropic_api_key
from orchestrator.agents.presets import PRESETS, Preset, command_program
from orchestrator.errors import UsageError
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.events import Sink

Opener = Callable[[Settings, "Sink | None"], AbstractAsyncContextManager[Agent]]


@dataclass(frozen=True)
class AgentKind:
    name: str
    program: Callable[[Settings], tuple[str, str]]  # (program, the option that names it)
    label: Callable[[Settings], str]  # how commits name the agent, never a full command line
    open: Opener
    check: Callable[[Settings], None] = lambda settings: None  # refuse what cannot start


def _no_program(settings: Settings) -> tuple[str, str]:
    return "", ""


def _claude_label(settings: Settings) -> str:
    return f"claude ({settings.model})"


@asynccontextmanager
async def _open_claude(settings: Settings, sink: Sink | None) -> AsyncIterator[Agent]:
    from orchestrator.agents.claude import open_claude_agent

    async with open_claude_agent(settings, sink) as agent:
        yield agent


def _check_claude(settings: Settings) -> None:
    anthropic_api_key()


def _check_command(settings: Settings) -> None:
    if not settings.agent_command:
        raise UsageError("option --agent command needs --agent-command 'CMD'",
                         "Or set agent_command in orchestrate.toml or ORCHESTRATE_AGENT_COMMAND.")


def _command_program(settings: Settings) -> tuple[str, str]:
    return command_program(settings.agent_command or ""), "--agent-command"


def _command_label(settings: Settings) -> str:
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


def _given_model(settings: Settings) -> str | None:
    return settings.model if settings.model_given else None


@asynccontextmanager
async def _open_command(settings: Settings, sink: Sink | None) -> AsyncIterator[Agent]:
    from orchestrator.agents.command import CommandAgent

    yield CommandAgent(command_line(settings), model=_given_model(settings), pty=settings.pty)


def _preset_kind(preset: Preset) -> AgentKind:
    def program(settings: Settings) -> tuple[str, str]:
        return preset.program, f"--agent {preset.name}"

    def label(settings: Settings) -> str:
        return f"{preset.name} ({settings.model})" if settings.model_given else preset.name

    @asynccontextmanager
    async def open_preset(settings: Settings, sink: Sink | None) -> AsyncIterator[Agent]:
        from orchestrator.agents.command import CommandAgent

        yield CommandAgent("", preset=preset, model=_given_model(settings),
                           extra_args=settings.agent_args, pty=settings.pty)

    return AgentKind(preset.name, program, label, open_preset)


KINDS: dict[str, AgentKind] = {kind.name: kind for kind in (
    AgentKind("claude", _no_program, _claude_label, _open_claude, _check_claude),
    AgentKind("command", _command_program, _command_label, _open_command, _check_command),
    *(_preset_kind(preset) for preset in PRESETS.values()),
)}
