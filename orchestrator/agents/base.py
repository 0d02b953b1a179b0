"""The Agent protocol: the orchestrator owns worktrees, branches, commits and statuses; an agent
only edits files in the worktree it is given and reports how it went."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orchestrator.door.sandbox import Confinement
from orchestrator.errors import UsageError


@dataclass(frozen=True)
class AgentTask:
    spec: str  # spec folder name
    subtask_id: str
    prompt: str
    worktree: Path
    branch: str
    log_path: Path  # append the transcript here; the runner writes attempt headers
    port: int  # a TCP port no other running subtask has (for dev servers)
    attempt: int = 1
    # token counts so far, kept current by the agent: an attempt cancelled by its timeout
    # returns no result, and what it spent is still recorded from here
    usage: dict[str, int] = field(default_factory=dict)
    resolving: int = 0  # the resolution round (SPEC 10) this run is, 0 for the subtask itself
    # with `--radar tell`: where the conflict radar appends what the agent should hear
    radar_file: Path | None = None
    # the sandbox of the agent's processes (and its verification), and of the claude agent's
    # own tools (no credential); None without a sandbox
    confinement: Confinement | None = None
    tools_confinement: Confinement | None = None


@dataclass
class AgentResult:
    ok: bool
    error: str = ""  # short reason when not ok: "exit code 3", "API error: ..."
    output_tail: str = ""  # the end of the agent's output, fed back into a retry's prompt
    usage: dict[str, int] = field(default_factory=dict)  # token counts (claude agent)
    cost_usd: float | None = None  # what the attempt cost, when the agent knows (claude-code)
    retry: bool = True  # False: another attempt would fail the same way (command not found)
    verification: str | None = None  # passed or failed (exit N), when it ran (SPEC 2a)
    sandbox: str | None = None  # what the attempt ran in: bwrap or none (None: no agent ran)
    sandbox_reason: str = ""  # why it ran without one where `auto` found no working bwrap


def anthropic_api_key() -> str:
    """ANTHROPIC_API_KEY for the claude agent; a usage error when it is not set."""
    key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        raise UsageError("option --agent claude needs an API key: ANTHROPIC_API_KEY is not set",
                         "Run `export ANTHROPIC_API_KEY=...` (and ANTHROPIC_BASE_URL for a "
                         "proxy), or use --agent command --agent-command 'CMD'.")
    return key


def git_ceiling(worktree: Path) -> str:
    """GIT_CEILING_DIRECTORIES for an agent's processes: git run in its worktree after the
    worktree's .git file is gone fails instead of finding the user's repository above it."""
    inherited = os.environ.get("GIT_CEILING_DIRECTORIES", "")
    return os.pathsep.join(p for p in (str(worktree.parent), inherited) if p)


class Agent(Protocol):
    """Runs one attempt at a subtask. Cancellation (timeout, Ctrl-C) must stop all its work."""

    name: str

    async def run(self, task: AgentTask) -> AgentResult: ...
