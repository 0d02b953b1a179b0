"""The merge engine: in-order integration of subtask branches, overlap and conflict detection,
conflict reports, and the one synchronous door to git.

Plain synchronous code on git plumbing: no trio, no agents, no working tree. This module is its
face: orchestrator/ imports `merge` and nothing below it, so what is public is listed here.

The face is lazy: a name is imported from its module when first used, so that a command
needing one helper (e.g. `status` reading a plan) does not load the whole engine. `integrate`
is a function named like its module; importing a submodule binds it to its name here, so this
module refuses to bind a submodule over one of its public names (`_Face`).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from merge import words
    from merge.annotations import render_github
    from merge.failpoints import ENV, MERGE_FAILPOINTS, crash_if_named
    from merge.gitcmd import (
        DRIVER_QUERY,
        HOOKLESS,
        LOCK_RETRIES,
        WORKTREE_LIST,
        GitError,
        GitResult,
        WorktreeEntry,
        check_worktree,
        child_env,
        decode,
        git_env,
        guard_worktrees,
        guarded_worktree_problem,
        hardened_argv,
        is_lock_contention,
        list_worktrees,
        lock_message,
        may_run_drivers,
        parse_worktree_list,
        pid_alive,
        pin_git_config,
        resolve_commit,
        rev_parse,
        run_attached,
        run_command,
        run_git,
        signal_group,
        untrusted_driver_overrides,
        worktree_problem,
    )
    from merge.globs import any_intersect, intersect, is_glob, matches, normalize
    from merge.integrate import (
        CAS_RETRIES,
        Candidate,
        IntegrationRace,
        MergeResult,
        OverlapPolicy,
        group_overlaps,
        integrate,
        is_ancestor,
        merge_chain,
        move_ref,
    )
    from merge.markdown import Places, describe_hunk, render_markdown
    from merge.overlap import Overlap, overlap_detail
    from merge.report import (
        ConflictReport,
        Finding,
        HandResolution,
        Resolution,
        SubtaskRow,
        build_report,
    )

_MODULES: dict[str, tuple[str, ...]] = {  # where each public name lives
    "merge.annotations": ("render_github",),
    "merge.failpoints": ("ENV", "MERGE_FAILPOINTS", "crash_if_named"),
    "merge.gitcmd": (
        "GitError", "GitResult", "LOCK_RETRIES", "WORKTREE_LIST", "WorktreeEntry", "child_env",
        "decode", "git_env", "is_lock_contention", "list_worktrees", "parse_worktree_list",
        "pid_alive", "resolve_commit", "rev_parse", "run_attached", "run_command", "run_git",
        "signal_group", "DRIVER_QUERY", "HOOKLESS", "check_worktree", "guard_worktrees",
        "guarded_worktree_problem", "hardened_argv", "lock_message", "may_run_drivers",
        "pin_git_config", "untrusted_driver_overrides", "worktree_problem"
    ),
    "merge.globs": ("any_intersect", "intersect", "is_glob", "matches", "normalize"),
    "merge.integrate": (
        "CAS_RETRIES", "Candidate", "IntegrationRace", "MergeResult", "OverlapPolicy",
        "group_overlaps", "integrate", "is_ancestor", "merge_chain", "move_ref"
    ),
    "merge.markdown": ("Places", "describe_hunk", "render_markdown"),
    "merge.overlap": ("Overlap", "overlap_detail"),
    "merge.report": (
        "ConflictReport", "Finding", "HandResolution", "Resolution", "SubtaskRow", "build_report"
    ),
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names}


class _Face(types.ModuleType):
    """This module's type: a submodule imported later (`merge.integrate`) does not replace the
    public name it shares (the function `integrate`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _HOMES:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Face


def __getattr__(name: str) -> Any:
    """Import `name` from its module on first use, and keep it here."""
    try:
        home = _HOMES[name]
    except KeyError:
        raise AttributeError(f"module 'merge' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "CAS_RETRIES",
    "DRIVER_QUERY",
    "ENV",
    "HOOKLESS",
    "LOCK_RETRIES",
    "MERGE_FAILPOINTS",
    "WORKTREE_LIST",
    "Candidate",
    "ConflictReport",
    "Finding",
    "GitError",
    "GitResult",
    "HandResolution",
    "IntegrationRace",
    "MergeResult",
    "Overlap",
    "OverlapPolicy",
    "Places",
    "Resolution",
    "SubtaskRow",
    "WorktreeEntry",
    "any_intersect",
    "build_report",
    "check_worktree",
    "child_env",
    "crash_if_named",
    "decode",
    "describe_hunk",
    "git_env",
    "group_overlaps",
    "guard_worktrees",
    "guarded_worktree_problem",
    "hardened_argv",
    "integrate",
    "intersect",
    "is_ancestor",
    "is_glob",
    "is_lock_contention",
    "list_worktrees",
    "lock_message",
    "matches",
    "may_run_drivers",
    "merge_chain",
    "move_ref",
    "normalize",
    "overlap_detail",
    "parse_worktree_list",
    "pid_alive",
    "pin_git_config",
    "render_github",
    "render_markdown",
    "resolve_commit",
    "rev_parse",
    "run_attached",
    "run_command",
    "run_git",
    "signal_group",
    "untrusted_driver_overrides",
    "words",
    "worktree_problem",
]
