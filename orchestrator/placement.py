"""Where a subtask's workspace lives and where its attempts run: the seam the runner drives.

The runner (orchestrator/runner.py) asks its build's placement to prepare a workspace on a
branch at a base commit, set it up, run one attempt (agent and verification), put a workspace
back after a failed attempt, hand back the committed head and release the workspace. The
scheduler, the merge stage and every plan write stay on the coordinator whatever the placement.

* LocalPlacement: a git worktree of the user's repository on this machine (the original code,
  unchanged).
* RayPlacement (orchestrator/ray_runner.py, `--runner ray`): each attempt is a Ray task that
  clones the remote on a worker and pushes the subtask branch back (SPEC 14).

One placement is chosen per build from the `runner` setting by `open_placement`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

from orchestrator.agents.base import AgentResult, AgentTask
from orchestrator.committing import commit_work
from orchestrator.context import RunContext
from orchestrator.errors import UsageError
from orchestrator.plan import Subtask
from orchestrator.runner import _one_attempt, _restore_branch, _set_up, commit_message
from orchestrator.settings import Settings

RAY_HINT = "Install it with `pip install 'orchestrate[ray]'`, or use --runner local."


class Placement(Protocol):
    name: str
    reads_workspaces: bool  # a running workspace can be read from here (the conflict radar)

    def workspace(self, ctx: RunContext, subtask: Subtask, branch: str,
                  base: str) -> AbstractAsyncContextManager[Path]:
        """Hold a workspace on `branch` made from `base` for the subtask's whole run."""
        ...

    async def set_up(self, ctx: RunContext, subtask: Subtask, workspace: Path) -> None:
        """`copy` and `setup` before the agent (may raise runner.AttemptFailed)."""
        ...

    async def attempt(self, ctx: RunContext, subtask: Subtask, task: AgentTask) -> AgentResult:
        """One attempt: the agent, the branch checks and the verification."""
        ...

    async def after_failed_attempt(self, ctx: RunContext, task: AgentTask) -> None:
        """Make the workspace fit for the next attempt (or raise runner.AttemptFailed)."""
        ...

    async def hand_back(self, ctx: RunContext, subtask: Subtask, workspace: Path) -> str:
        """The successful attempt's work as a commit on the local subtask branch: its head."""
        ...

    async def release(self, ctx: RunContext, subtask: Subtask) -> None:
        """Once the head is handed back: let the workspace go."""
        ...


class LocalPlacement:
    """Worktrees of the user's repository under .orchestrate/worktrees on this machine."""

    name = "local"
    reads_workspaces = True

    def workspace(self, ctx: RunContext, subtask: Subtask, branch: str,
                  base: str) -> AbstractAsyncContextManager[Path]:
        return ctx.worktrees.hold(subtask.id, branch, base)

    async def set_up(self, ctx: RunContext, subtask: Subtask, workspace: Path) -> None:
        await _set_up(ctx, subtask, workspace)

    async def attempt(self, ctx: RunContext, subtask: Subtask, task: AgentTask) -> AgentResult:
        return await _one_attempt(ctx, subtask, task)

    async def after_failed_attempt(self, ctx: RunContext, task: AgentTask) -> None:
        await _restore_branch(task.worktree, task.branch)

    async def hand_back(self, ctx: RunContext, subtask: Subtask, workspace: Path) -> str:
        return await commit_work(workspace, commit_message(ctx, subtask), ctx.settings.copy)

    async def release(self, ctx: RunContext, subtask: Subtask) -> None:
        await ctx.worktrees.release(subtask.id, keep=ctx.settings.keep_worktrees)


def check_runner(settings: Settings) -> None:
    """Before any side effect: `--runner ray` needs Ray installed (not imported here)."""
    if settings.runner == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError("option --runner ray needs Ray, which is not installed", RAY_HINT)


@asynccontextmanager
async def open_placement(settings: Settings, repo: Path) -> AsyncIterator[Placement]:
    """The build's one placement; for Ray: connected and version-checked, shut down after."""
    if settings.runner != "ray":
        yield LocalPlacement()
        return
    from orchestrator.ray_runner import open_ray_placement

    async with open_ray_placement(settings, repo) as placement:
        yield placement
