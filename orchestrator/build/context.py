"""What one build shares: the merge stage's context plus the agent, the placement, the build's
single CapacityLimiter, the worktrees prepared ahead, the budget and the run logs."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from orchestrator.agents.base import Agent
from orchestrator.plan.budget import Budget
from orchestrator.stage.merge_context import MergeContext, Ports
from orchestrator.stage.radar import Radar
from orchestrator.workspace.placement import Placement
from orchestrator.workspace.run_log import RunLogs
from orchestrator.workspace.shared_git import SharedGit


@dataclass(kw_only=True)
class RunContext(MergeContext):
    """A build: adds the agent, the build's single CapacityLimiter and the port allocator."""

    agent: Agent
    agent_label: str
    placement: Placement  # where workspaces live and attempts run (local worktrees, Ray)
    limiter: trio.CapacityLimiter  # the one limit on agents running at once
    lookahead: trio.Semaphore  # worktrees prepared ahead of a free agent slot
    ports: Ports = field(default_factory=Ports)
    agents_failed: int = 0
    resolution_rounds: int = 0  # agent rounds on conflicts this build (for the summary)
    budget: Budget = field(default_factory=Budget)  # --budget and the spec's recorded cost
    run_logs: RunLogs = field(default_factory=RunLogs)  # the run header of each subtask log
    shared_git: SharedGit | None = None  # the shared .git's fingerprint (workspace/shared_git)
    radar: Radar = field(default_factory=Radar.off)  # the conflict radar; build/run.py sets it

    def budget_left(self) -> float | None:
        """USD left before --budget is reached (None: no budget). Anything about to start paid
        work (a subtask, an attempt, a resolution round) checks `budget.reached()` first."""
        return self.budget.left()

    @property
    def resolves_conflicts(self) -> bool:
        return self.settings.resolve == "agent" and self.settings.resolve_attempts > 0
