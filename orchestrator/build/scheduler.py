"""build(): phases in dependency order, a parallel phase's subtasks in one nursery under the
build's single CapacityLimiter, each batch handed to the merge stage when it has finished.

A phase waits for the phases it depends on; phases that do not depend on each other run at
the same time. Statuses live in the plan only, so every decision re-reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import trio

from merge import MergeResult, words
from orchestrator.build.context import RunContext
from orchestrator.build.driver import run_subtask
from orchestrator.build.only import selected, unfinished_dependencies
from orchestrator.build.plan_order import PlanOrder
from orchestrator.build.resolution import resolve_conflicts
from orchestrator.events import EventKind
from orchestrator.plan.declared import record_waves, waves
from orchestrator.plan.model import Phase, Plan, Status, Subtask
from orchestrator.stage.merge_stage import merge_subtasks

RUNNABLE = frozenset({Status.PENDING, Status.BLOCKED})
RETRYABLE = frozenset({Status.FAILED, Status.CONFLICT})


async def run_phases(ctx: RunContext, plan: Plan) -> None:
    finished = [trio.Event() for _ in plan.phases]
    async with trio.open_nursery() as nursery:
        for phase in plan.phases:
            nursery.start_soon(partial(_phase_when_ready, ctx, phase, finished))


async def _phase_when_ready(ctx: RunContext, phase: Phase, finished: list[trio.Event]) -> None:
    try:
        for dep in phase.depends_on:
            await finished[dep].wait()
        plan = await ctx.records.read()
        current = plan.phases[phase.index]
        unfinished = unfinished_dependencies(plan, current)
        if not any(selected(ctx.settings.only, s) for s in current.subtasks):
            return  # build --only: none of this phase's subtasks was named
        if ctx.budget.reached():
            await _stop_phase_for_budget(ctx, current)
        elif not unfinished:
            await _run_phase(ctx, current)
        elif not ctx.settings.no_merge:
            await _block_phase(ctx, current, unfinished)
    finally:
        finished[phase.index].set()


async def _block_phase(ctx: RunContext, phase: Phase, unfinished: list[Subtask]) -> None:
    waiting = [s for s in phase.subtasks if s.status in RUNNABLE]
    if not waiting:
        return
    causes = ", ".join(f"{s.id} ({s.status})" for s in unfinished[:5])
    reason = f"blocked: {phase.label} depends on unfinished subtasks: {causes}"
    await ctx.records.blocked([s.id for s in waiting], reason)
    for subtask in waiting:
        ctx.emit(EventKind.SUBTASK_BLOCKED, reason, subtask=subtask.id, phase=phase.key)


async def _stop_phase_for_budget(ctx: RunContext, phase: Phase) -> None:
    """No subtask starts once the budget is reached: a phase's waiting subtasks stay pending
    (not blocked: a later build with more budget runs them)."""
    waiting = [s.id for s in phase.subtasks if _wants_agent(ctx, s)]
    if waiting:
        message = ctx.budget.message()
        await ctx.records.budget_stopped(waiting, message)
        for subtask_id in waiting:
            ctx.emit(EventKind.BUDGET_REACHED, f"left pending: {message}", subtask=subtask_id,
                     phase=phase.key, spent_usd=ctx.budget.spent, budget_usd=ctx.budget.limit)


def _wants_agent(ctx: RunContext, subtask: Subtask) -> bool:
    if subtask.is_committed_unmerged or not selected(ctx.settings.only, subtask):
        return False
    return subtask.status in RUNNABLE or (
        (ctx.settings.retry_failed or bool(ctx.settings.only)) and subtask.status in RETRYABLE)


async def _run_phase(ctx: RunContext, phase: Phase) -> None:
    ctx.emit(EventKind.PHASE_STARTED, f"{phase.label}: "
             f"{'parallel' if phase.parallel_safe else 'sequential'}", phase=phase.key)
    if phase.parallel_safe:
        await _run_parallel(ctx, phase)
    else:
        await _run_sequential(ctx, phase)


async def _run_parallel(ctx: RunContext, phase: Phase) -> None:
    """The phase's waves one after another (SPEC 11): each wave's subtasks run at once under
    the build's one limiter from the integration head after the previous wave was merged."""
    found = waves(phase.subtasks, ctx.settings.schedule)
    if len(found) > 1 or any("wave" in s.meta for s in phase.subtasks):
        await record_waves(ctx.records, phase, found)
    for number, wave in enumerate(found, 1):
        if len(found) > 1:
            ctx.emit(EventKind.WAVE_STARTED, f"{phase.label}: wave {number} of {len(found)} "
                     f"({', '.join(s.id for s in wave)})", phase=phase.key, wave=number,
                     subtasks=[s.id for s in wave])
        await _run_wave(ctx, phase, {s.id for s in wave})
        if ctx.settings.no_merge:
            return  # a later wave starts only from this one's merged work


async def _run_wave(ctx: RunContext, phase: Phase, members: set[str]) -> None:
    plan = await ctx.records.read()
    todo = [s for s in plan.phases[phase.index].subtasks
            if s.id in members and _wants_agent(ctx, s)]
    if todo:
        base = await ctx.integration_tip()
        order = PlanOrder([s.id for s in todo])
        running = {s.id for s in todo}
        committed = [s for s in plan.phases[phase.index].subtasks if s.id not in running
                     and (s.is_committed_unmerged or s.merged_with_changes)]
        async with ctx.radar.watching(phase, committed), trio.open_nursery() as nursery:
            for subtask in todo:
                nursery.start_soon(run_subtask, ctx, plan, subtask, base, order)
    if ctx.settings.no_merge:
        return
    fresh = (await ctx.records.read()).phases[phase.index]
    ready = [s for s in fresh.subtasks if s.id in members and s.status == Status.IN_PROGRESS
             and s.is_committed_unmerged and selected(ctx.settings.only, s)]
    results = await merge_subtasks(ctx, ready, group=phase.key, merged_siblings=[
        s for s in fresh.subtasks if s.merged_with_changes])
    await resolve_conflicts(ctx, [s.id for s in fresh.subtasks if s.id in members
                                  and selected(ctx.settings.only, s)],
                            ended=_conflicted(results))


async def _run_sequential(ctx: RunContext, phase: Phase) -> None:
    """One subtask at a time, each merged before the next starts from the new integration head.

    A failed or conflicting subtask does not stop the ones after it (SPEC 3.5).
    """
    for position in range(len(phase.subtasks)):
        plan = await ctx.records.read()
        subtask = plan.phases[phase.index].subtasks[position]
        if not selected(ctx.settings.only, subtask):
            continue
        if _wants_agent(ctx, subtask):
            outcome = await run_subtask(ctx, plan, subtask, await ctx.integration_tip())
            if ctx.settings.no_merge:
                return  # the next subtask needs this one merged first
            if not outcome.ok:
                continue
        elif subtask.status == Status.CONFLICT:  # rounds an earlier build left (SPEC 10)
            await resolve_conflicts(ctx, [subtask.id], ended=())
            continue
        elif not (subtask.status == Status.IN_PROGRESS and subtask.is_committed_unmerged):
            continue
        if ctx.settings.no_merge:
            return
        fresh = (await ctx.records.read()).subtask(subtask.id)
        if fresh.is_committed_unmerged:
            results = await merge_subtasks(ctx, [fresh], group=None)
            if not results:
                return  # the check fails on the integration branch: the next would miss this one
            await resolve_conflicts(ctx, [fresh.id], ended=_conflicted(results))


def _conflicted(results: Sequence[MergeResult]) -> set[str]:
    return {r.subtask_id for r in results if r.outcome == words.CONFLICT}
