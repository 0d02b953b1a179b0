"""`orchestrate reset SPEC ID [--drop]`: a subtask back to `pending` so that the next build runs
it afresh from the integration head. Its worktree is removed; its branch is kept as
`orchestrate/<spec>/<id>.prev-<n>` (n = 1, 2, … for each reset) or, with `drop`, deleted.

Held under the spec's run lock (a running build is never changed under it). The branch moves
before the plan is written: killed in between, the plan still names the old status and a
second `reset` finishes the job (there is no branch left to move).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from merge import list_worktrees, run_git
from orchestrator import names
from orchestrator.errors import UsageError
from orchestrator.failpoints import failpoint
from orchestrator.plan.parse import load_plan
from orchestrator.plan.specs import Spec
from orchestrator.plan.store import PlanStore, RunLock
from orchestrator.plan.transitions import reset_to_pending
from orchestrator.workspace.clean import CleanResult, remove_worktree


@dataclass
class ResetResult:
    subtask_id: str
    status_before: str
    kept_as: str | None = None  # the branch the old work is on now
    dropped: str | None = None  # the branch deleted with --drop
    worktrees: list[Path] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # worktrees that could not be removed


def reset(spec: Spec, subtask_id: str, *, drop: bool) -> ResetResult:
    plan = load_plan(spec.plan_path)
    known = [s.id for s in plan.subtasks()]
    if subtask_id not in known:
        raise UsageError(f"no subtask {subtask_id!r} in {spec.name}: its subtasks are "
                         f"{', '.join(known[:20])}{' …' if len(known) > 20 else ''}",
                         f"See `orchestrate status {spec.name}`.")
    with RunLock(spec.folder).hold():
        plan = load_plan(spec.plan_path)
        result = ResetResult(subtask_id, str(plan.subtask(subtask_id).status))
        _remove_worktrees(spec, subtask_id, result)
        _move_branch(spec, subtask_id, drop, result)
        failpoint("reset-branch-moved")
        PlanStore(spec.folder).update(partial(reset_to_pending, subtask_id=subtask_id,
                                              kept_as=result.kept_as))
    return result


def _remove_worktrees(spec: Spec, subtask_id: str, result: ResetResult) -> None:
    """Its worktree, and a parked one still on its branch."""
    ref = "refs/heads/" + names.subtask_branch(spec.name, subtask_id)
    own = (names.worktree_root(spec.repo) / spec.name / subtask_id).resolve()
    removed = CleanResult()
    for worktree in list_worktrees(spec.repo):
        if worktree.path.resolve() == own or worktree.branch == ref:
            remove_worktree(spec.repo, worktree.path, removed)
    run_git(spec.repo, "worktree", "prune")
    result.worktrees, result.kept = removed.worktrees, removed.kept


def _move_branch(spec: Spec, subtask_id: str, drop: bool, result: ResetResult) -> None:
    branch = names.subtask_branch(spec.name, subtask_id)
    found = run_git(spec.repo, "rev-parse", "-q", "--verify", f"refs/heads/{branch}^{{commit}}",
                    check=False)
    if found.returncode != 0:
        return
    tip = found.stdout.strip()
    if drop:
        result.dropped = branch
    else:
        result.kept_as = _free_prev_name(spec.repo, branch)
        run_git(spec.repo, "update-ref", "-m", f"orchestrate reset {subtask_id}",
                f"refs/heads/{result.kept_as}", tip, "")
    run_git(spec.repo, "update-ref", "-d", f"refs/heads/{branch}", tip)


def _free_prev_name(repo: Path, branch: str) -> str:
    taken = set(run_git(repo, "for-each-ref", "--format=%(refname)",
                        f"refs/heads/{branch}.prev-*").stdout.split())
    number = 1
    while f"refs/heads/{branch}.prev-{number}" in taken:
        number += 1
    return f"{branch}.prev-{number}"
