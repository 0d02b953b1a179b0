"""`orchestrate review`: each subtask branch's own commits (first-parent) and diffstat against
its own base (see _own_base), or one subtask's full diff. Reads only; the branch's current
tip is shown (it may have moved since the plan recorded `head`, e.g. after a conflict was
fixed by hand)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from merge import resolve_commit, run_git
from orchestrator import names
from orchestrator.errors import UsageError
from orchestrator.events import printable
from orchestrator.plan.model import Plan, Status, Subtask
from orchestrator.plan.specs import Spec
from orchestrator.stage.conflict_report import integration_branch

MAX_COMMITS = 50


@dataclass(frozen=True)
class Target:
    branch: str
    base: str | None
    tip: str | None


def review_text(spec: Spec, plan: Plan) -> str:
    blocks = [f"{spec.name}: integration branch {integration_branch(spec, plan)}"]
    blocks += [_subtask_block(spec, plan, subtask) for subtask in plan.subtasks()]
    return "\n\n".join(blocks) + "\n"


def review_diff(spec: Spec, plan: Plan, subtask_id: str, *, color: bool) -> str:
    subtask = _find(plan, subtask_id)
    target = _target(spec, plan, subtask)
    if target.tip is None or target.base is None:
        if subtask.status == Status.BLOCKED and subtask.record.error:
            cause = str(subtask.record.error).removeprefix("blocked: ")
            raise UsageError(f"argument SUBTASK: {subtask_id!r} is blocked and has no work "
                             f"yet: {cause}", "It runs once those subtasks are completed: fix "
                             f"them, then run `orchestrate build {spec.name}`.")
        if subtask.status != Status.FAILED:
            raise UsageError(f"argument SUBTASK: {subtask_id!r} has no branch with commits yet "
                             f"({target.branch})", f"Run `orchestrate build {spec.name}` first.")
    failure = _failure_text(spec, subtask) if subtask.status == Status.FAILED else ""
    if target.tip is None or target.base is None:
        return failure
    diff = run_git(spec.repo, "diff", f"--color={'always' if color else 'never'}",
                   "--no-ext-diff", target.base, target.tip, "--").stdout
    return failure + ("\n" + diff if failure and diff else diff)


def _failure_text(spec: Spec, subtask: Subtask) -> str:
    """What a failed subtask left: the error, the log, and the worktree with the last
    attempt's (uncommitted) edits; the branch's committed diff, if any, follows."""
    record = subtask.record
    attempts = record.attempts
    after = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
    lines = [f"{subtask.id} failed{after}: {record.error or 'no error recorded'}"]
    log = names.subtask_log(spec.logs, subtask.id)
    if log.exists():
        lines.append(f"  log: {log}")
    worktree = record.worktree
    if worktree and Path(worktree).is_dir():
        lines.append(f"  worktree: {worktree} (the last attempt's uncommitted edits: "
                     f"git -C {worktree} status)")
    lines.append(f"  run it again: orchestrate build {spec.name} --retry-failed")
    return "\n".join(lines) + "\n"


def _find(plan: Plan, subtask_id: str) -> Subtask:
    try:
        return plan.subtask(subtask_id)
    except KeyError:
        known = ", ".join(s.id for s in plan.subtasks()) or "none"
        raise UsageError(f"argument SUBTASK: no subtask {subtask_id!r} in the plan",
                         f"Known subtasks: {known}.") from None


def _subtask_block(spec: Spec, plan: Plan, subtask: Subtask) -> str:
    target = _target(spec, plan, subtask)
    merge = subtask.record.merge
    header = f"{subtask.id}  {subtask.status}" + (f"  merge={merge}" if merge else "")
    if target.tip is None:
        return f"{header}\n  {target.branch}: no branch yet"
    if target.base is None:
        return f"{header}\n  {target.branch} at {target.tip[:12]}: base unknown"
    lines = [header, f"  {target.branch}  {target.base[:12]}..{target.tip[:12]}"]
    commits = _git(spec.repo, "log", "--first-parent", f"--max-count={MAX_COMMITS}",
                   "--format=%h %s", f"{target.base}..{target.tip}")
    stat = _git(spec.repo, "diff", "--stat=100", "--no-ext-diff", target.base, target.tip,
                "--")
    lines += [f"    {printable(line)}" for line in commits.splitlines()] or ["    (no commits)"]
    lines += [f"    {line}" for line in stat.splitlines()]
    return "\n".join(lines)


def _target(spec: Spec, plan: Plan, subtask: Subtask) -> Target:
    record = subtask.record
    branch = record.branch or names.subtask_branch(spec.name, subtask.id)
    tip = _resolve(spec.repo, f"refs/heads/{branch}") or _resolve(spec.repo, record.head)
    recorded = _resolve(spec.repo, record.base)
    return Target(branch, _own_base(spec, plan, subtask, tip) or recorded, tip)


def _own_base(spec: Spec, plan: Plan, subtask: Subtask, tip: str | None) -> str | None:
    """Where the subtask's own work starts: its merge-base with the integration branch as it
    was before the subtask was merged (`merge_commit^1`), or as it is now. After the report's
    fix-up recipe (the integration branch merged into the subtask's branch) the other
    subtasks' work is below that point, so it is not listed as this subtask's."""
    if tip is None:
        return None
    merge_commit = _resolve(spec.repo, subtask.record.merge_commit)
    against = (f"{merge_commit}^1" if merge_commit
               else f"refs/heads/{integration_branch(spec, plan)}")
    found = _merge_base(spec.repo, against, tip)
    if found == tip and not merge_commit:  # merged some other way: nothing to tell apart
        return None
    return found


def _resolve(repo: Path, rev: object) -> str | None:
    if not isinstance(rev, str) or not rev:
        return None
    return resolve_commit(repo, rev)


def _merge_base(repo: Path, rev: str, tip: str) -> str | None:
    found = run_git(repo, "merge-base", rev, tip, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def _git(repo: Path, *args: str) -> str:
    return run_git(repo, *args).stdout.rstrip("\n")
