"""One subtask: worktree -> agent attempts -> verification -> commit -> status.

Where the workspace lives and where each attempt runs is the build's placement
(workspace/placement.py: local worktrees, or Ray tasks on a cluster); this module drives it.

The worktree is prepared before the subtask's turn comes (at most max_parallel prepared ahead),
so a freed agent slot is used at once. The agent holds one token of the build's
CapacityLimiter only while it and its verification run; the commit happens after.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator.agents.base import AgentTask
from orchestrator.agents.cost import attempt_cost
from orchestrator.agents.prompts import build_prompt
from orchestrator.build.context import RunContext
from orchestrator.build.plan_order import ANY_ORDER, PlanOrder, Queue
from orchestrator.door.orphans import stop_orphaned_agents
from orchestrator.door.processes import GitError
from orchestrator.events import EventKind
from orchestrator.failpoints import failpoint
from orchestrator.plan.model import Plan, Subtask
from orchestrator.plan.own_record import record_head
from orchestrator.workspace.attempt import AttemptFailed, log_path
from orchestrator.workspace.diagnosis import failure_detail


@dataclass
class Outcome:
    subtask_id: str
    ok: bool
    head: str | None = None
    error: str = ""
    usage: dict[str, int] = field(default_factory=dict)  # of the attempt not yet recorded
    cost_usd: float | None = None  # likewise
    budget_stopped: bool = False  # the budget was reached: the subtask stays pending
    verification: str | None = None  # passed, failed (exit N) or skipped (<type>) (SPEC 2a)
    tail: str = ""  # the end of the failed attempt's output
    sandbox: str | None = None  # what the last attempt ran in: bwrap or none (on its worker)
    sandbox_reason: str = ""  # why none, where `auto` found no working bwrap


async def run_subtask(ctx: RunContext, plan: Plan, subtask: Subtask, base: str,
                      order: PlanOrder = ANY_ORDER) -> Outcome:
    """Run `subtask` on a branch made from `base`; record and return how it ended. `order`:
    the subtask's wave, whose subtasks take worktrees and agent slots in plan order."""
    try:
        return await _run_in_order(ctx, plan, subtask, base, order)
    finally:
        order.gone(subtask.id)


async def _run_in_order(ctx: RunContext, plan: Plan, subtask: Subtask, base: str,
                        order: PlanOrder) -> Outcome:
    started = trio.current_time()
    outcome = Outcome(subtask.id, ok=False)
    if ctx.budget.reached():
        return await _stop_for_budget(ctx, subtask, outcome)
    try:
        async with AsyncExitStack() as holding:
            await order.my_turn(subtask.id, Queue.WORKTREE)
            order.queued_in(subtask.id, Queue.WORKTREE)
            async with ctx.lookahead:  # at most max_parallel subtasks get ready ahead
                worktree = await holding.enter_async_context(
                    ctx.placement.workspace(subtask, base))
                failpoint("worktree-prepared")
                await ctx.placement.set_up(subtask, worktree)
                await order.my_turn(subtask.id, Queue.AGENT)
                await ctx.limiter.acquire()
            if ctx.budget.reached():  # spent while this subtask waited for an agent slot
                ctx.limiter.release()
                return await _stop_for_budget(ctx, subtask, outcome)
            started = trio.current_time()
            outcome = await _run_agent(ctx, plan, subtask, worktree, base, order)
            if outcome.ok:
                failpoint("agent-finished")
                outcome.head = await ctx.placement.hand_back(subtask, worktree)
                await trio.to_thread.run_sync(record_head, ctx.spec, subtask.id, outcome.head)
                ctx.heads_made[subtask.id] = outcome.head
                failpoint("work-committed")
                await ctx.radar.finished(subtask.id, base=base, head=outcome.head)
                await ctx.placement.release(subtask)
    except (AttemptFailed, GitError, OSError) as exc:
        outcome.ok, outcome.error = False, str(exc)
    finally:
        if not outcome.ok:
            with trio.CancelScope(shield=True):
                await ctx.radar.finished(subtask.id, base=base, head=None)
        if ctx.settings.setup or subtask.verification_command:
            with trio.CancelScope(shield=True):  # what setup or verification left running
                await stop_orphaned_agents(ctx.worktrees.path_for(subtask.id))
    if outcome.budget_stopped:
        return await _stop_for_budget(ctx, subtask, outcome)
    ctx.budget.recorded(await ctx.records.finished_agent(
        subtask.id, ok=outcome.ok, head=outcome.head, error=outcome.error, usage=outcome.usage,
        cost_usd=outcome.cost_usd, duration_s=trio.current_time() - started,
        verification=outcome.verification or subtask.verification_skipped,
        egress_refused=ctx.egress.refused.pop(subtask.id, 0) if ctx.egress else 0,
        sandbox=outcome.sandbox, sandbox_reason=outcome.sandbox_reason))
    failpoint("commit-recorded")
    _announce(ctx, subtask, outcome, base)
    return outcome


async def _stop_for_budget(ctx: RunContext, subtask: Subtask, outcome: Outcome) -> Outcome:
    """The budget is spent: the subtask stays (or goes back to) pending, saying so."""
    message = ctx.budget.message()
    ctx.budget.recorded(await ctx.records.budget_stopped(
        [subtask.id], message, usage=outcome.usage, cost_usd=outcome.cost_usd))
    ctx.emit(EventKind.BUDGET_REACHED, f"left pending: {message}", subtask=subtask.id,
             spent_usd=ctx.budget.spent, budget_usd=ctx.budget.limit)
    outcome.ok, outcome.budget_stopped, outcome.error = False, True, message
    return outcome


def _announce(ctx: RunContext, subtask: Subtask, outcome: Outcome, base: str) -> None:
    if not outcome.ok:
        ctx.agents_failed += 1
        first_line = outcome.error.splitlines()[0] if outcome.error else "unknown error"
        log, worktree = _log_path(ctx, subtask), ctx.worktrees.path_for(subtask.id)
        ctx.emit(EventKind.SUBTASK_FAILED, f"failed: {first_line}", subtask=subtask.id,
                 error=outcome.error, log=str(log), worktree=str(worktree),
                 detail=failure_detail(outcome.tail, log, worktree))
    elif outcome.head == base:
        ctx.emit(EventKind.SUBTASK_SKIPPED, "completed with no changes", subtask=subtask.id)
    else:
        ctx.emit(EventKind.SUBTASK_COMMITTED, f"committed {outcome.head and outcome.head[:12]}",
                 subtask=subtask.id, head=outcome.head)


async def _run_agent(ctx: RunContext, plan: Plan, subtask: Subtask, worktree: Path,
                     base: str, order: PlanOrder) -> Outcome:
    """Holding one agent slot (released at the end): record the start, run the attempts."""
    try:
        branch = ctx.branch_for(subtask.id)
        await ctx.records.started(subtask.id, branch=branch, worktree=str(worktree), base=base)
        ctx.emit(EventKind.SUBTASK_STARTED, f"started on {branch}", subtask=subtask.id,
                 phase=subtask.phase.key, branch=branch, worktree=str(worktree), base=base,
                 log=str(_log_path(ctx, subtask)))
        order.queued_in(subtask.id, Queue.AGENT)  # the next in plan order may take a slot now
        failpoint("subtask-started")
        await ctx.radar.running(subtask, worktree, base)
        return await _attempts(ctx, plan, subtask, worktree, branch)
    finally:
        ctx.limiter.release()


def _log_path(ctx: RunContext, subtask: Subtask) -> Path:
    return log_path(ctx.spec.logs, subtask.id)


async def _attempts(ctx: RunContext, plan: Plan, subtask: Subtask, worktree: Path,
                    branch: str) -> Outcome:
    outcome = Outcome(subtask.id, ok=False)
    feedback = ""
    port = ctx.ports.take()
    try:
        for attempt in range(1, ctx.settings.retries + 2):
            if attempt > 1 and ctx.budget.reached():
                outcome.budget_stopped = True
                break
            task = AgentTask(ctx.spec.name, subtask.id,
                             build_prompt(ctx.spec, plan, subtask, branch, feedback),
                             worktree, branch, _log_path(ctx, subtask), port, attempt,
                             radar_file=ctx.radar.file_for(subtask.id))
            await ctx.run_logs.start(task.log_path, subtask.id, ctx.agent_label)
            result = await ctx.placement.attempt(subtask, task)
            outcome.verification = result.verification
            if result.sandbox is not None:
                outcome.sandbox, outcome.sandbox_reason = result.sandbox, result.sandbox_reason
            cost = attempt_cost(ctx.settings, result)
            if result.ok:
                outcome.ok, outcome.usage, outcome.cost_usd = True, result.usage, cost
                ctx.budget.spend(cost)  # before this agent slot is free for another subtask
                return outcome
            outcome.error, outcome.tail = result.error, result.output_tail
            feedback = f"{result.error}\n{result.output_tail}"
            ctx.budget.recorded(await ctx.records.attempt_failed(
                subtask.id, result.error, usage=result.usage, cost_usd=cost))
            failpoint("attempt-failed-recorded")
            ctx.emit(EventKind.ATTEMPT_FAILED, f"attempt {attempt} failed: {result.error}",
                     subtask=subtask.id, attempt=attempt, error=result.error)
            if not result.retry:
                break
            await ctx.placement.after_failed_attempt(task)
    finally:
        ctx.ports.release(port)
    return outcome
