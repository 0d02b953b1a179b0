"""Checks before a build changes anything: the repository, the base, the branch names.

Everything here only reads; a failed check leaves no branch, no worktree, no byte changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from merge import list_worktrees, resolve_commit, run_git
from orchestrator import names
from orchestrator.errors import UsageError
from orchestrator.names import refname_problem
from orchestrator.plan.model import Plan, Status
from orchestrator.plan.specs import Spec
from orchestrator.stage.merge_context import integration_branch

FALLBACK_IDENTITY = {"GIT_AUTHOR_NAME": "orchestrate", "GIT_AUTHOR_EMAIL": "orchestrate@localhost",
                     "GIT_COMMITTER_NAME": "orchestrate",
                     "GIT_COMMITTER_EMAIL": "orchestrate@localhost"}


@dataclass(frozen=True)
class Target:
    integration_branch: str
    base: str  # the commit a new integration branch starts from, or the existing one's tip
    exists: bool
    base_branch: str | None = None  # the branch a new integration branch starts from, if any
    note: str = ""  # why the base is not the default one, for `build` to say (SPEC 2a)
    start_name: str = ""  # what a new integration branch starts from, as the user named it


def check_repository(spec: Spec, base: str | None, plan: Plan | None = None) -> Target:
    repo = spec.repo
    branch = integration_branch(spec)
    _check_branch_names(repo, spec)
    tip = _resolve(repo, f"refs/heads/{branch}")
    if tip is not None:
        _check_not_checked_out(repo, branch)
        return Target(branch, tip, exists=True)
    if base is None and plan is not None and (found := _auto_claude_base(spec, plan)):
        return found
    ref = base or _main_worktree_branch(repo)
    commit = _resolve(repo, ref)
    if commit is None:
        raise UsageError(f"option --base: {ref!r} is not a commit in {repo}",
                         "Pass --base with an existing branch, tag or commit.")
    return Target(branch, commit, exists=False, base_branch=_branch_name(repo, ref),
                  start_name=ref.removeprefix("refs/heads/"))


def _branch_name(repo: Path, ref: str) -> str | None:
    """`ref` as a local branch name (`main` for `refs/heads/main` or `main`), else None."""
    name = ref.removeprefix("refs/heads/")
    return name if _resolve(repo, f"refs/heads/{name}") is not None else None


def _auto_claude_base(spec: Spec, plan: Plan) -> Target | None:
    """Auto-Claude's `completed` means committed on its branch `auto-claude/<spec>`: a spec of
    its with completed subtasks starts from that branch when it exists (SPEC 2a)."""
    if spec.folder.parent != spec.repo / names.AUTO_CLAUDE_SPECS:
        return None
    completed = sum(1 for s in plan.subtasks() if s.status == Status.COMPLETED)
    branch = names.auto_claude_branch(spec.name)
    if not completed or (commit := _resolve(spec.repo, f"refs/heads/{branch}")) is None:
        return None
    return Target(integration_branch(spec), commit, exists=False, start_name=branch,
                  note=f"base: {branch} at {commit[:12]} (Auto-Claude's branch, where the "
                  f"plan's {completed} completed subtask(s) were committed)")


def _resolve(repo: Path, ref: str) -> str | None:
    return resolve_commit(repo, ref)


def _check_branch_names(repo: Path, spec: Spec) -> None:
    if (reason := refname_problem(spec.name)) is not None:
        raise UsageError(f"argument SPEC: the spec folder name {spec.name!r} cannot be part of "
                         f"a git branch name: {reason}", f"Rename the folder {spec.folder}.")
    for blocker in names.branch_blockers(spec.name):
        if _resolve(repo, f"refs/heads/{blocker}") is not None:
            raise UsageError(f"branch {blocker!r} exists, so git cannot create branches under "
                             f"{blocker}/ for this spec", f"Rename it: git branch -m {blocker} "
                             f"{blocker}-old")


def _worktree_branches(repo: Path) -> list[tuple[Path, str | None]]:
    return [(w.path, w.branch.removeprefix(names.HEADS) if w.branch else None)
            for w in list_worktrees(repo)]


def _main_worktree_branch(repo: Path) -> str:
    path, branch = _worktree_branches(repo)[0]
    if branch is None:
        raise UsageError(f"the main worktree ({path}) has a detached HEAD, so there is no "
                         "branch to start the integration branch from",
                         "Pass --base REF (e.g. --base main).")
    if _resolve(repo, f"refs/heads/{branch}") is None:
        raise UsageError(f"branch {branch!r} has no commits yet",
                         "Commit something first, or pass --base REF.")
    return f"refs/heads/{branch}"


def _check_not_checked_out(repo: Path, branch: str) -> None:
    for path, checked_out in _worktree_branches(repo):
        if checked_out == branch:
            raise UsageError(f"the integration branch {branch} is checked out in {path}; "
                             "moving it would leave that checkout stale",
                             f"Switch that worktree to another branch first (git -C {path} "
                             "switch -).")


def ensure_identity(repo: Path) -> None:
    """Let commits succeed on machines with no git identity configured."""
    if run_git(repo, "var", "GIT_COMMITTER_IDENT", check=False).returncode != 0:
        for key, value in FALLBACK_IDENTITY.items():
            os.environ.setdefault(key, value)
