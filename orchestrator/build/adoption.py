"""Work committed just before a crash: a subtask whose commit exists on its branch but whose
status write never happened (`in_progress` without a `head`) is adopted as committed-but-
unmerged instead of being started over, so its agent does not run again.

The commit is recognised as orchestrate's own: the branch tip carries the trailers
`Orchestrate-Spec: <spec>` and `Orchestrate-Subtask: <id>` and has the subtask's recorded
`base` among its ancestors. orchestrate writes that commit only after the agent and the
verification succeeded, so adopting it skips nothing that was still to be checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from orchestrator import names
from orchestrator.door.processes import git, is_ancestor
from orchestrator.events import EventKind
from orchestrator.plan.model import Plan
from orchestrator.stage.merge_context import MergeContext

TRAILERS = (f"%(trailers:key={names.SPEC_TRAILER},valueonly,separator=%x01)%x00"
            f"%(trailers:key={names.SUBTASK_TRAILER},valueonly,separator=%x01)")


async def adopt_crashed_commits(ctx: MergeContext, plan: Plan, ids: Sequence[str]) -> list[str]:
    """Record the orchestrate commit found on each of `ids`' branches; return those adopted."""
    tips = await ctx.subtask_tips() if ids else {}
    found = {}
    for subtask_id in ids:
        base = str(plan.subtask(subtask_id).record.base or "")
        tip = tips.get(subtask_id)
        if base and tip and tip != base and await _ours(ctx, subtask_id, base, tip):
            found[subtask_id] = tip
    for subtask_id, tip in found.items():
        await ctx.records.recovered_commit(subtask_id, tip)
        ctx.emit(EventKind.SUBTASK_RECOVERED, f"recovered the commit {tip[:12]} made before the "
                 "previous build stopped; not running the agent again",
                 subtask=subtask_id, head=tip)
        ctx.background.start_soon(partial(ctx.worktrees.release, subtask_id,
                                          keep=ctx.settings.keep_worktrees))
    return list(found)


async def _ours(ctx: MergeContext, subtask_id: str, base: str, tip: str) -> bool:
    shown = await git(ctx.repo, "log", "-1", f"--format={TRAILERS}", tip, check=False)
    spec, _, subtask = shown.stdout.strip("\n").partition("\0")
    if ctx.spec.name not in spec.split("\x01") or subtask_id not in subtask.split("\x01"):
        return False
    return await is_ancestor(ctx.repo, base, tip)
