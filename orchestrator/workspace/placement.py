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

import contextlib
import importlib.util
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orchestrator import names
from orchestrator.agents.base import Agent, AgentResult, AgentTask
from orchestrator.door.egress import EgressProxy
from orchestrator.door.processes import GitError, resolve
from orchestrator.door.sandbox_policy import SandboxPolicy, no_sandbox
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
from orchestrator.workspace.shared_git import SharedGit
from orchestrator.workspace.worktrees import Worktrees, copy_untracked, reset_worktree

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
    shared: SharedGit | None = None  # the shared .git's fingerprint, checked around attempts
    sandbox: SandboxPolicy = field(default_factory=no_sandbox)
    egress: EgressProxy | None = None

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
        # an attempt.AttemptContext
        self.settings, self.agent = shop.settings, shop.agent
        self.sandbox, self.egress = shop.sandbox, shop.egress

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
        await run_setup(shop.settings, workspace, log, env, shop.sandbox.setup(workspace))

    async def attempt(self, subtask: Subtask, task: AgentTask) -> AgentResult:
        if self.shop.shared is None:
            return await run_attempt(self, subtask, task)
        start = await resolve(task.worktree, "HEAD")
        async with self.shop.shared.watching() as watch:
            result = await run_attempt(self, subtask, task)
        if not watch.changed:
            return result
        error = watch.error
        if watch.stash and start is not None:
            # it may hold another attempt's stashed work: no later attempt commits that
            with contextlib.suppress(GitError):
                await reset_worktree(task.worktree, start)
                error += f"; its worktree was reset to {start[:12]}"
        return AgentResult(ok=False, error=error, output_tail=result.output_tail,
                           usage=result.usage, cost_usd=result.cost_usd)

    async def after_failed_attempt(self, task: AgentTask) -> None:
        await restore_branch(task.worktree, task.branch)

    async def hand_back(self, subtask: Subtask, workspace: Path) -> str:
        if self.shop.shared is not None:
            # what a sibling changed is undone (failing the attempts running) before `git add`
            # reads info/exclude; this attempt has ended and is not one of them
            await self.shop.shared.check()
        return await self._commit(subtask, workspace)

    async def _commit(self, subtask: Subtask, workspace: Path) -> str:
        return await commit_work(workspace, self.shop.commit_message(subtask),
                                 self.shop.settings.copy,
                                 self.shop.shared.pinned if self.shop.shared else ())

    async def release(self, subtask: Subtask) -> None:
        await self.shop.worktrees.release(subtask.id, keep=self.shop.settings.keep_worktrees)


def check_runner(settings: Settings) -> None:
    """Before any side effect: `--runner ray` needs Ray installed (not imported here)."""
    if settings.runner == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError("option --runner ray needs Ray, which is not installed", RAY_HINT)
    if settings.runner == "ray":
        try:
            importlib.import_module("ray")
        except Exception as exc:
            raise UsageError(f"option --runner ray needs Ray, which is installed but fails to "
                             f"import ({type(exc).__name__}: {exc})",
                             "Reinstall it with `pip install --force-reinstall "
                             "'orchestrate[ray]'`, or use --runner local.") from None
