"""The merge stage as the build sees it: finished branches -> merge.integrate -> statuses and the
conflict report. Integration is plumbing only (no working tree), serialised by one lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial

import trio

from merge import Candidate, MergeResult, OverlapPolicy, integrate, words
from orchestrator import names
from orchestrator.door.processes import git, is_ancestor
from orchestrator.events import EventKind
from orchestrator.failpoints import failpoint
from orchestrator.plan.model import Status, Subtask
from orchestrator.plan.own_record import recorded_heads
from orchestrator.stage.conflict_report import write_conflict_report
from orchestrator.stage.gate import integrate_checked
from orchestrator.stage.merge_context import MergeContext, integration_branch
from orchestrator.stage.verdicts import Verdict, ending, failing_test


def is_committed_unmerged(subtask: Subtask) -> bool:
    """Kept for callers of the function: the predicate is `Subtask.is_committed_unmerged`."""
    return subtask.is_committed_unmerged


def merged_with_changes(subtask: Subtask) -> bool:
    """Kept for callers of the function: the predicate is `Subtask.merged_with_changes`."""
    return subtask.merged_with_changes


async def merge_subtasks(ctx: MergeContext, subtasks: Sequence[Subtask], group: str | None,
                         merged_siblings: Sequence[Subtask] = ()) -> list[MergeResult]:
    """Integrate `subtasks` and record every result. `merged_siblings`, the members of the
    same parallel phase merged earlier (e.g. before a crash), take part in the overlap checks;
    all of them belong to one phase. With a check configured the integration branch only
    moves to a commit that passed it (SPEC 9; culprits come back as `conflict`); when the
    check fails where merging would start, nothing is merged or recorded and the result is
    empty (`ctx.checks.base_failure` says why)."""
    if not subtasks:
        return []
    wanted = {s.id for s in subtasks}
    async with ctx.merge_lock:
        await ctx.confirm_integration_tip()
        tips = await ctx.subtask_tips()
        moved = await _moved_branches(ctx, subtasks, tips)
        if moved:
            await _fail_moved(ctx, moved)
            subtasks = [s for s in subtasks if s.id not in moved]
            wanted -= set(moved)
            if not subtasks:
                return []
        everyone = sorted([*merged_siblings, *subtasks], key=_position)
        candidates = [await _own_base(ctx, s, _candidate(ctx, s, tips.get(s.id), group))
                      for s in everyone]
        policy: OverlapPolicy = "block" if ctx.settings.overlap == "block" else "merge"
        culprits: dict[str, Verdict] = {}
        gate: tuple[int, int] | None = None
        if ctx.settings.check:
            gated = await integrate_checked(ctx, candidates, policy)
            if gated is None:  # the check fails where merging would start: merge nothing
                return []
            outcomes, culprits = gated.results, gated.culprits
            gate = (gated.rate.culprits, gated.rate.judged)
        else:
            outcomes = await trio.to_thread.run_sync(partial(
                integrate, ctx.repo, ctx.integration_ref, candidates, overlap=policy))
        await ctx.note_integration_tip()
        results = [r for r in outcomes if r.subtask_id in wanted]
        candidates = [c for c in candidates if c.subtask_id in wanted]
        await ctx.records.merged(results, heads={c.subtask_id: c.head for c in candidates},
                                 check_failures={s: v.record(str(ctx.settings.check))
                                                 for s, v in culprits.items()}, gate=gate)
        failpoint("merge-recorded")
        for result in results:
            _announce(ctx, result, culprits.get(result.subtask_id))
        plan = await ctx.records.read()
        await trio.to_thread.run_sync(write_conflict_report, ctx.spec, plan)
        failpoint("report-written")
    for result in results:
        if result.outcome == words.CONFLICT:
            if not ctx.resolves_conflicts:  # the user resolves it there
                ctx.background.start_soon(ctx.worktrees.restore, result.subtask_id,
                                          ctx.branch_for(result.subtask_id))
        else:
            ctx.background.start_soon(partial(ctx.worktrees.release, result.subtask_id,
                                               keep=ctx.settings.keep_worktrees))
    return results


async def _own_base(ctx: MergeContext, subtask: Subtask, candidate: Candidate) -> Candidate:
    """A conflict fixed by hand (the integration branch merged into the subtask's branch, as
    the report says) holds the other subtasks' work too: its own changes, in which overlaps
    are sought, start at its merge-base with the integration branch, not at its old base."""
    if subtask.status != Status.CONFLICT or candidate.head == subtask.record.head:
        return candidate
    found = await git(ctx.repo, "merge-base", candidate.head, ctx.integration_ref, check=False)
    base = found.stdout.strip()
    return replace(candidate, base=base) if found.returncode == 0 and base else candidate


def _position(subtask: Subtask) -> int:
    return next(n for n, s in enumerate(subtask.phase.subtasks) if s.id == subtask.id)


async def _moved_branches(ctx: MergeContext, subtasks: Sequence[Subtask],
                          tips: dict[str, str]) -> dict[str, str]:
    """Subtask id -> why: branches that no longer contain the head orchestrate recorded for
    them (its own record, else the plan's) were moved outside orchestrate; commits added on
    top (a fix by hand) are fine, unless this run made the head (the fix would be an agent's,
    made while the build ran), and a branch with unrelated history is a conflict instead."""
    own = await trio.to_thread.run_sync(recorded_heads, ctx.spec)
    found: dict[str, str] = {}
    for subtask in subtasks:
        made = ctx.heads_made.get(subtask.id)
        recorded = made or own.get(subtask.id) or subtask.record.head
        tip = tips.get(subtask.id)
        if not recorded or not tip or tip == recorded:
            continue
        if not await _shares_history(ctx, tip):
            continue
        if not made and await is_ancestor(ctx.repo, recorded, tip):
            continue
        found[subtask.id] = f"branch moved outside orchestrate ({recorded} -> {tip})"
    return found


async def _shares_history(ctx: MergeContext, commit: str) -> bool:
    base = await git(ctx.repo, "merge-base", commit, ctx.integration_ref, check=False)
    return base.returncode == 0


async def _fail_moved(ctx: MergeContext, moved: dict[str, str]) -> None:
    for subtask_id, error in moved.items():
        await ctx.records.set_status([subtask_id], Status.FAILED, error=error)
        ctx.emit(EventKind.SUBTASK_FAILED, f"failed: {error}", subtask=subtask_id, error=error)


def _candidate(ctx: MergeContext, subtask: Subtask, tip: str | None,
               group: str | None) -> Candidate:
    """The subtask's branch as it is now: a branch fixed by hand carries the fix."""
    branch = ctx.branch_for(subtask.id)
    head = tip or str(subtask.record.head)
    message = (f"Merge {branch} into {integration_branch(ctx.spec)}\n\n"
               f"{subtask.id}: {subtask.title}\n\n"
               + names.trailers(ctx.spec.name, subtask.id))
    return Candidate(subtask.id, branch, str(subtask.record.base), head, message, group)


def _announce(ctx: MergeContext, result: MergeResult, culprit: Verdict | None = None) -> None:
    overlaps = f" (overlaps: {', '.join(result.overlaps)})" if result.overlaps else ""
    if culprit is not None:
        found = failing_test(culprit.output)
        ctx.setbacks[result.subtask_id] = (
            f"ejected by the check ({ending(culprit, ctx.settings.check_limit_s)}"
            + (f": {found})" if found else ")"))
        ctx.emit(EventKind.SUBTASK_CONFLICT, f"check failed: not merged (the check fails on "
                 f"{culprit.commit[:12]}, exit {culprit.exit_code}; log: {culprit.log})",
                 subtask=result.subtask_id, paths=[], reason="check_failed",
                 commit=culprit.commit, log=culprit.log)
    elif result.outcome == words.CONFLICT:
        paths = ", ".join(result.conflicted_paths) or ", ".join(result.overlaps)
        ctx.setbacks[result.subtask_id] = f"a merge conflict in {paths}"
        ctx.emit(EventKind.SUBTASK_CONFLICT, f"conflict: not merged ({paths})",
                 subtask=result.subtask_id, paths=list(result.conflicted_paths))
    elif result.outcome == "already_merged":
        ctx.emit(EventKind.SUBTASK_MERGED, "already merged", subtask=result.subtask_id)
    else:
        merged = result.merge_commit and result.merge_commit[:12]
        ctx.emit(EventKind.SUBTASK_MERGED, f"merged as {merged}" + overlaps,
                 subtask=result.subtask_id, merge_commit=result.merge_commit,
                 overlaps=list(result.overlaps))
