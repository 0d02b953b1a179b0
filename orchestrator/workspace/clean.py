"""`orchestrate clean`: remove a spec's worktrees (dirty or locked ones too) and its parked
pool entries, optionally its subtask branches, then prune git's worktree records.

Held under the spec's run lock, so it never pulls a worktree from under a running build.
The integration branch is deleted only with `all_branches`; a branch checked out in a worktree
that is not the spec's (the user's own checkout, say) is kept and reported.
"""

from __future__ import annotations

import glob
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from merge import WorktreeEntry, list_worktrees, run_git
from orchestrator import names
from orchestrator.plan.specs import Spec
from orchestrator.plan.store import RunLock
from orchestrator.workspace import overlay

WORKTREES = Path(names.WORKTREE_ROOT)
POOL = WORKTREES / names.POOL


@dataclass
class CleanResult:
    worktrees: list[Path] = field(default_factory=list)
    branches: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # what could not be removed, and why


Worktree = WorktreeEntry


def clean(spec: Spec, *, branches: bool = False, all_branches: bool = False) -> CleanResult:
    result = CleanResult()
    with RunLock(spec.folder).hold():
        for worktree in spec_worktrees(spec):
            remove_worktree(spec.repo, worktree.path, result)
        for folder in _spec_folders(spec):
            overlay.unmount_under(folder)  # stale overlays of worktrees git no longer knows
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)  # leftovers git no longer knows
        shutil.rmtree(overlay.state_root(spec.repo) / spec.name, ignore_errors=True)
        run_git(spec.repo, "worktree", "prune")
        overlay.collect_lowers(spec.repo, keep=0, grace_s=0)
        if branches or all_branches:
            _delete_branches(spec, all_branches, result)
    return result


def spec_worktrees(spec: Spec) -> list[Worktree]:
    """The spec's subtask worktrees, and its worktrees parked in the pool (as
    `.pool/<spec>--<subtask>`, detached, or still on one of the spec's branches)."""
    prefix = names.spec_ref_prefix(spec.name)
    return [w for w in list_worktrees(spec.repo)
            if any(_inside(w.path, f) for f in _spec_folders(spec))
            or (_inside(w.path, spec.repo / POOL) and (w.branch or "").startswith(prefix))]


def _spec_folders(spec: Spec) -> list[Path]:
    """The spec's folder of worktrees and its entries in the pool."""
    pool = spec.repo / POOL
    parked = sorted(pool.glob(f"{glob.escape(spec.name)}--*")) if pool.is_dir() else []
    return [spec.repo / WORKTREES / spec.name, *parked]


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def remove_worktree(repo: Path, path: Path, result: CleanResult) -> None:
    # An overlay is unmounted first (else `worktree remove` would delete every file through
    # it); unlocked, so that `worktree prune` forgets it even if git cannot remove it.
    if overlay.unmount_under(path) and _inside(path, names.worktree_root(repo)):
        shutil.rmtree(overlay.state_dir(repo.resolve(), path.resolve()), ignore_errors=True)
    run_git(repo, "worktree", "unlock", str(path), check=False)
    done = run_git(repo, "worktree", "remove", "--force", str(path), check=False)
    if done.returncode != 0 and path.exists():
        shutil.rmtree(path, ignore_errors=True)  # e.g. it holds submodules; prune forgets it
    if path.exists():
        result.kept.append(f"worktree {path}: {done.stderr.strip() or 'could not be removed'}")
    else:
        result.worktrees.append(path)


def _delete_branches(spec: Spec, all_branches: bool, result: CleanResult) -> None:
    prefix = names.spec_ref_prefix(spec.name)
    integration = prefix + "integration"
    checked_out = {w.branch: w.path for w in list_worktrees(spec.repo) if w.branch}
    refs = run_git(spec.repo, "for-each-ref", "--format=%(refname)", prefix).stdout.split()
    for ref in refs:
        name = ref[len("refs/heads/"):]
        if ref == integration and not all_branches:
            continue
        if ref in checked_out:
            result.kept.append(f"branch {name}: checked out in {checked_out[ref]}")
            continue
        run_git(spec.repo, "branch", "-D", name)
        result.branches.append(name)
