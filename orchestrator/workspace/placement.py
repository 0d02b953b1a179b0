"""Where a subtask's workspace lives and where its attempts run: the seam the subtask driver
(build/driver.py) drives.

A placement is built once per build with what it needs (repository, spec, settings, worktrees,
agent); each call carries the subtask. The driver asks it to prepare a workspace on a branch at
a base commit, set it up, run one attempt (workspace/attempt.py), put a workspace back after a
failed attempt, hand back the committed head and release the workspace. The scheduler, the
merge stage and every plan write stay on the coordinator whatever the placement.

* LocalPlacement: a git worktree of the user's repository on this machine.
* RayPlacement (workspace/ray_placement.py, `--runner ray`): each attempt is a Ray task that
  clones the remote on a worker and pushes the subtask branch back.
"""

from __future__ import annotations

import importlib.util
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator import names
from orchestrator.agents.base import Agent, AgentResult, AgentTask
from orchestrator.errors import UsageError
from orchestrator.plan.model import Subtask
from orchestrator.plan.specs import Spec
from orchestrator.settings import Settings
from orchestrator.workspace.attempt import (
    command_env,
    commit_message,
    log_path,
    restore_branch,
    run_attempt,
    run_setup,
)
from orchestrator.workspace.commit import commit_work
from orchestrator.workspace.run_log import RunLogs
from orchestrator.workspace.worktrees import Worktrees, copy_untracked

RAY_HINT = "Install it with `pip install 'orchestrate[ray]'`, or use --runner local."


class Placement(Protocol):
    name: str
    reads_workspaces: bool  # a running workspace can be read from here (the conflict radar)

    def workspace(self, subtask: Subtask, base: str) -> AbstractAsyncContextManager[Path]:
        """Hold a workspace on the subtask's branch made from `base` for its whole run."""
        ...

    async def set_up(self, subtask: Subtask, workspace: Path) -> None:
        """`copy` and `setup` before the agent (may raise attempt.AttemptFailed)."""
        ...

    async def attempt(self, subtask: Subtask, task: AgentTask) -> AgentResult:
        """One attempt: the agent, the branch checks and the verification."""
        ...

    async def after_failed_attempt(self, task: AgentTask) -> None:
        """Make the workspace fit for the next attempt (or raise attempt.AttemptFailed)."""
        ...

    async def hand_back(self, subtask: Subtask, workspace: Path) -> str:
        """The successful attempt's work as a commit on the local subtask branch: its head."""
        ...

    async def release(self, subtask: Subtask) -> None:
        """Once the head is handed back: let the workspace go."""
        ...


@dataclass(kw_only=True)
class Workshop:
    """What every placement is built with: the build's spec, settings, worktrees and agent."""

    spec: Spec
    settings: Settings
    worktrees: Worktrees
    agent: Agent
    agent_label: str
    run_logs: RunLogs

    def branch_for(self, subtask: Subtask) -> str:
        return names.subtask_branch(self.spec.name, subtask.id)

    def commit_message(self, subtask: Subtask) -> str:
        return commit_message(self.spec.name, subtask, self.agent_label)


class LocalPlacement:
    """Worktrees of the user's repository under .orchestrate/worktrees on this machine."""

    name = "local"
    reads_workspaces = True

    def __init__(self, shop: Workshop) -> None:
        self.shop = shop
        self.settings, self.agent = shop.settings, shop.agent  # an attempt.AttemptContext

    def workspace(self, subtask: Subtask, base: str) -> AbstractAsyncContextManager[Path]:
        return self.shop.worktrees.hold(subtask.id, self.shop.branch_for(subtask), base)

    async def set_up(self, subtask: Subtask, workspace: Path) -> None:
        shop = self.shop
        await copy_untracked(shop.spec.repo, workspace, shop.settings.copy)
        if not shop.settings.setup:
            return
        log = log_path(shop.spec.logs, subtask.id)
        await shop.run_logs.start(log, subtask.id, shop.agent_label)
        env = command_env(shop.spec.name, subtask.id, workspace, shop.branch_for(subtask))
        await run_setup(shop.settings, workspace, log, env)

    async def attempt(self, subtask: Subtask, task: AgentTask) -> AgentResult:
        return await run_attempt(self, subtask, task)

    async def after_failed_attempt(self, task: AgentTask) -> None:
        await restore_branch(task.worktree, task.branch)

    async def hand_back(self, subtask: Subtask, workspace: Path) -> str:
        return await commit_work(workspace, self.shop.commit_message(subtask),
                                 self.shop.settings.copy)

    async def release(self, subtask: Subtask) -> None:
        await self.shop.worktrees.release(subtask.id, keep=self.shop.settings.keep_worktrees)


def check_runner(settings: Settings) -> None:
    """Before any side effect: `--runner ray` needs Ray installed (not imported here)."""
    if settings.runner == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError("option --runner ray needs Ray, which is not installed", RAY_HINT)
