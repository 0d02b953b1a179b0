"""The next command to type, after `build`, `merge` and `status`: from the subtasks' statuses
only, so every command gives the same advice for the same plan."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from orchestrator.plan.model import MergeState, Plan, Status, Subtask


def next_steps(spec: str, plan: Plan, stale: Collection[str] = ()) -> list[str]:
    """One line per thing to do next, from the plan's statuses; `stale`: completed subtasks
    whose work is not in the integration branch (counted as such, never as done)."""
    counts = Counter("stale" if s.id in stale else s.status for s in plan.subtasks())
    waiting_merge = sum(1 for s in plan.subtasks() if s.status == Status.IN_PROGRESS
                        and s.record.merge == MergeState.PENDING and s.record.head)
    total = sum(counts.values())
    steps = []
    if counts.get(Status.FAILED):
        steps.append(f"`orchestrate build {spec} --retry-failed` runs the failed subtasks "
                     f"again (`orchestrate status {spec}` lists their logs and worktrees)")
    if counts.get(Status.CONFLICT):
        steps.append(f"conflicts: `orchestrate report {spec}` shows them and how to resolve "
                     f"each one; then `orchestrate merge {spec}`")
    if waiting_merge:
        steps.append(f"committed work waits to be merged: `orchestrate merge {spec}`")
    ready = len(ready_blocked(plan))
    if ready:
        steps.append(f"{ready} blocked subtask{'s are' if ready != 1 else ' is'} ready (the "
                     f"dependencies are completed): `orchestrate build {spec}` continues")
    if (counts.get(Status.BLOCKED, 0) > ready
            and not (counts.get(Status.FAILED) or counts.get(Status.CONFLICT))):
        steps.append(f"blocked subtasks run once their dependencies are completed: "
                     f"`orchestrate build {spec}`")
    if counts.get("stale"):
        steps.append(f"{counts['stale']} completed subtask(s) are not in the integration "
                     f"branch any more: `orchestrate build {spec}` merges them again (or reruns "
                     "them when their branch is gone)")
    unstarted = counts.get(Status.PENDING, 0) + counts.get(Status.IN_PROGRESS, 0) - waiting_merge
    if unstarted > 0 and not steps:
        steps.append(f"to run the remaining subtasks: `orchestrate build {spec}`")
    merged_work = any(s.status == Status.COMPLETED and s.record.merge == MergeState.MERGED
                      and not s.record.no_changes and s.id not in stale
                      for s in plan.subtasks())
    if merged_work and counts.get(Status.COMPLETED, 0) < total:
        steps.append(f"`orchestrate pr {spec}` opens (or updates) a pull request with the work "
                     "merged so far; its body, the report, lists what is missing")
    if total and counts.get(Status.COMPLETED, 0) == total:
        steps.append(f"all done: `orchestrate review {spec}`, then `orchestrate pr {spec}` "
                     "(or merge the integration branch yourself)")
    return [f"next: {step}" for step in steps]


def ready_blocked(plan: Plan) -> list[Subtask]:
    """Blocked subtasks whose phase's dependencies are all completed now (say, after a conflict
    was fixed with `orchestrate merge`): the next `build` runs them."""
    return [s for phase in plan.phases
            if all(d.status == Status.COMPLETED for dep in phase.depends_on
                   for d in plan.phases[dep].subtasks)
            for s in phase.subtasks if s.status == Status.BLOCKED]
