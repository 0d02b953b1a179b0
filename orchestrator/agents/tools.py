"""The claude agent's client tools: Anthropic's text editor and bash, run by the orchestrator
inside one worktree. A refused or failed call becomes an `is_error` result, never an exception."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from orchestrator.agents.confine import ToolError
from orchestrator.agents.editor import edit
from orchestrator.agents.shell import run_bash
from orchestrator.door.sandbox import Confinement
from orchestrator.settings import ClaudeSettings

EDITOR_TOOL = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
BASH_TOOL = {"type": "bash_20250124", "name": "bash"}
RESTART_NOTE = ("There is no session to restart: every bash call runs in a fresh shell in the "
                "worktree, and processes a call leaves behind are stopped when it ends.")


@dataclass(frozen=True)
class ToolOutcome:
    text: str
    is_error: bool = False


class Toolbox:
    """The tools offered to the model for one worktree."""

    def __init__(self, worktree: Path, settings: ClaudeSettings,
                 confinement: Confinement | None = None) -> None:
        self.worktree = worktree
        self.settings = settings
        self.confinement = confinement  # bash runs in this sandbox, without any credential

    def definitions(self) -> list[dict[str, Any]]:
        tools = [dict(EDITOR_TOOL)]
        if self.settings.bash:
            tools.append(dict(BASH_TOOL))
        return tools

    async def call(self, name: str, tool_input: object) -> ToolOutcome:
        try:
            if not isinstance(tool_input, dict):
                raise ToolError("the tool input must be a JSON object")
            if name == EDITOR_TOOL["name"]:
                return ToolOutcome(await trio.to_thread.run_sync(
                    edit, self.worktree, tool_input, self.settings.output_limit))
            if name == BASH_TOOL["name"] and self.settings.bash:
                return await self._bash(tool_input)
            raise ToolError(f"unknown tool {name!r}; the tools offered are "
                            + ", ".join(tool["name"] for tool in self.definitions()))
        except ToolError as exc:
            return ToolOutcome(f"Error: {exc}", is_error=True)
        except OSError as exc:
            return ToolOutcome(f"Error: {name} failed: {exc.strerror or exc}", is_error=True)

    async def _bash(self, tool_input: dict[str, Any]) -> ToolOutcome:
        if tool_input.get("restart") is True:
            return ToolOutcome(RESTART_NOTE)
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("`command` must be a non-empty string")
        text, failed = await run_bash(command, self.worktree, time_limit=self.settings.bash_timeout,
                                      limit=self.settings.output_limit,
                                      confinement=self.confinement)
        return ToolOutcome(text, is_error=failed)
