"""The merge stage as the build sees it: finished branches -> merge.integrate -> statuses and the
conflict report. Integration is plumbing only (no working tree), serialised by one lock."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import trio

from merge.integrate import Candidate, MergeResult, integrate
from orchestrator.context import MergeContext, integration_branch
from orchestrator.failpoints import failpoint
from orchestrator.plan import Subtask
from orchestrator.reporting import write_conflict_report


def is_committed_unmerged(subtask: Subtask) -> bool:
    """Work committed by an earlier run (or fixed by hand) that still waits to be merged."""
    meta = subtask.meta
    return ((subtask.status == "in_progress" and meta.get("merge") == "pending"
             and bool(meta.get("head"))) or
            (subtask.status == "conflict" and bool(meta.get("head"))))


def merged_with_changes(subtask: Subtask) -> bool:
    """Completed by a merge of real work (so its changes can overlap a sibling's)."""
    meta = subtask.meta
    return (subtask.status == "completed" and bool(meta.get("head"))
            and meta.get("head") != meta.get("base"))


async def merge_subtasks(ctx: MergeContext, subtasks: Sequence[Subtask], group: str | None,
                         merged_siblings: Sequence[Subtask] = ()) -> list[MergeResult]:
    """Integrate `subtasks` and record every result. `merged_siblings`, the members of the
    same parallel phase merged earlier (e.g. before a crash), take part in the overlap checks;
    all of them belong to one phase."""
    if not subtasks:
        return []
    wanted = {s.id for s in subtasks}
    async with ctx.merge_lock:
        tips = await ctx.subtask_tips()
        everyone = sorted([*merged_siblings, *subtasks], key=_position)
        candidates = [_candidate(ctx, s, tips.get(s.id), group) for s in everyone]
        outcomes = await trio.to_thread.run_sync(partial(
            integrate, ctx.repo, ctx.integration_ref, candidates,
            overlap="block" if ctx.settings.overlap == "block" else "merge"))
        results = [r for r in outcomes if r.subtask_id in wanted]
        candidates = [c for c in candidates if c.subtask_id in wanted]
        await ctx.records.merged(results, heads={c.subtask_id: c.head for c in candidates})
        failpoint("merge-recorded")
        for result in results:
            _announce(ctx, result)
        plan = await ctx.records.read()
        await trio.to_thread.run_sync(write_conflict_report, ctx.spec, plan)
        failpoint("report-written")
    for result in results:
        if result.outcome == "conflict":
            if not ctx.resolves_conflicts:  # the user resolves it there
                ctx.background.start_soon(ctx.worktrees.restore, result.subtask_id,
                                          ctx.branch_for(result.subtask_id))
        else:
            ctx.background.start_soon(partial(ctx.worktrees.release, result.subtask_id,
                                               keep=ctx.settings.keep_worktrees))
    return results


def _position(subtask: Subtask) -> int:
    return next(n for n, s in enumerate(subtask.phase.subtasks) if s.id == subtask.id)


def _candidate(ctx: MergeContext, subtask: Subtask, tip: str | None,
               group: str | None) -> Candidate:
    """The subtask's branch as it is now: a branch fixed by hand carries the fix."""
    branch = ctx.branch_for(subtask.id)
    head = tip or str(subtask.meta.get("head"))
    message = (f"Merge {branch} into {integration_branch(ctx.spec)}\n\n"
               f"{subtask.id}: {subtask.title}\n\n"
               f"Orchestrate-Spec: {ctx.spec.name}\nOrchestrate-Subtask: {subtask.id}\n")
    return Candidate(subtask.id, branch, str(subtask.meta.get("base", "")), head, message, group)


def _announce(ctx: MergeContext, result: MergeResult) -> None:
    overlaps = f" (overlaps: {', '.join(result.overlaps)})" if result.overlaps else ""
    if result.outcome == "conflict":
        paths = ", ".join(result.conflicted_paths) or ", ".join(result.overlaps)
        ctx.emit("subtask_conflict", f"conflict: not merged ({paths})",
                 subtask=result.subtask_id, paths=list(result.conflicted_paths))
    elif result.outcome == "already_merged":
        ctx.emit("subtask_merged", "already merged", subtask=result.subtask_id)
    else:
        ctx.emit("subtask_merged", f"merged as {result.merge_commit and result.merge_commit[:12]}"
                 + overlaps, subtask=result.subtask_id, merge_commit=result.merge_commit,
                 overlaps=list(result.overlaps))
