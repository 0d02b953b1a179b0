"""The plan and git agree (SPEC 6): a `completed` subtask whose work is not in the integration
branch (deleted by `clean --all`, reset by hand) is stale and never counts as done.

A subtask's work is contained when its recorded `head` (or its `merge_commit`) is one of the
commits of the integration branch since the plan's base. ONE `git rev-list` lists them all, so
`status` stays fast and `build` checks every subtask at once. Subtasks without recorded work
(completed with no changes, or completed by Auto-Claude before orchestrate ran) are trusted.

Only `merge.gitcmd` is imported at the top: `status` must not import trio.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from merge import run_git
from orchestrator import names
from orchestrator.events import EventKind
from orchestrator.plan.model import Plan, Status, Subtask
from orchestrator.plan.specs import Spec

if TYPE_CHECKING:
    from orchestrator.stage.merge_context import MergeContext

# What a stale subtask loses besides its status: the record of a merge that is not there.


def integration_ref(spec: Spec) -> str:
    return names.integration_ref(spec.name)


def recorded_work(plan: Plan) -> list[Subtask]:
    """`completed` subtasks whose recorded head is real work (not their base)."""
    return [s for s in plan.subtasks() if s.status == Status.COMPLETED
            and s.record.head is not None and s.record.head != s.record.base]


def rev_list_args(ref: str, plan: Plan) -> list[str]:
    """The one git call that lists the integration branch's commits since the plan's base
    (a missing branch lists nothing)."""
    base = plan.record.base
    since = [f"^{base}"] if isinstance(base, str) and base else []
    return ["rev-list", "--ignore-missing", ref, *since]


def not_contained(candidates: Iterable[Subtask], listing: str) -> list[Subtask]:
    commits = set(listing.split())
    return [s for s in candidates
            if s.record.head not in commits and s.record.merge_commit not in commits]


def stale_ids(spec: Spec, plan: Plan) -> set[str]:
    """For `status`: the ids of stale subtasks (no git call when nothing is to be checked)."""
    candidates = recorded_work(plan)
    if not candidates:
        return set()
    done = run_git(spec.repo, *rev_list_args(integration_ref(spec), plan), check=False)
    return {s.id for s in not_contained(candidates, done.stdout if done.returncode == 0 else "")}


async def find_stale(ctx: MergeContext, plan: Plan) -> list[Subtask]:
    """For `build`: the stale subtasks of `plan`, in plan order."""
    from orchestrator.door.processes import git

    candidates = recorded_work(plan)
    if not candidates:
        return []
    done = await git(ctx.repo, *rev_list_args(ctx.integration_ref, plan), check=False)
    return not_contained(candidates, done.stdout if done.returncode == 0 else "")


async def reconcile(ctx: MergeContext) -> None:
    """Before scheduling: a stale subtask whose branch exists goes back to committed-but-
    unmerged (merged again, no agent run); one whose branch is gone goes back to pending.
    One plan write for all of them, one warning line each."""
    from functools import partial

    from orchestrator.failpoints import failpoint
    from orchestrator.plan.transitions import mark_stale  # imports trio: not at the top

    stale = await find_stale(ctx, await ctx.records.read())
    tips = await ctx.subtask_tips() if stale else {}
    branch = ctx.integration_ref.removeprefix("refs/heads/")
    remerge: dict[str, str] = {s.id: tips[s.id] for s in stale if s.id in tips}
    if stale:
        await ctx.records.update(partial(mark_stale, [s.id for s in stale], remerge, branch))
    failpoint("stale-recorded")
    for subtask in stale:
        action = (f"merging {ctx.branch_for(subtask.id)} again (no agent run)"
                  if subtask.id in remerge else "its branch is gone, so it runs again")
        ctx.emit(EventKind.SUBTASK_STALE,
                 f"warning: marked completed but its work is not in {branch}; " + action,
                 subtask=subtask.id, remerge=subtask.id in remerge)


def rerun_note(spec: Spec, plan: Plan) -> str | None:
    """What `clean --all` tells the user about subtasks whose work it just deleted."""
    gone = [s.id for s in recorded_work(plan)]
    if not gone:
        return None
    return (f"note: {len(gone)} subtask(s) are still `completed` in the plan, but their work "
            f"was only in the deleted branches; the next `orchestrate build {spec.name}` "
            "finds them stale and runs them again")
