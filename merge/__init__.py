"""The merge engine: in-order integration of subtask branches, overlap and conflict detection,
conflict reports, and the one synchronous door to git.

Plain synchronous code on git plumbing: no trio, no agents, no working tree. This module is its
face: orchestrator/ imports `merge` and nothing below it, so what is public is listed here.
"""

from merge import words
from merge.annotations import render_github
from merge.failpoints import ENV, MERGE_FAILPOINTS, crash_if_named
from merge.gitcmd import (
    LOCK_RETRIES,
    WORKTREE_LIST,
    GitError,
    GitResult,
    WorktreeEntry,
    child_env,
    decode,
    git_env,
    is_lock_contention,
    list_worktrees,
    parse_worktree_list,
    pid_alive,
    resolve_commit,
    rev_parse,
    run_attached,
    run_command,
    run_git,
    signal_group,
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

__all__ = [
    "CAS_RETRIES",
    "ENV",
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
    "child_env",
    "crash_if_named",
    "decode",
    "describe_hunk",
    "git_env",
    "group_overlaps",
    "integrate",
    "intersect",
    "is_ancestor", "is_glob",
    "is_lock_contention",
    "list_worktrees",
    "matches",
    "merge_chain",
    "move_ref",
    "normalize",
    "overlap_detail",
    "parse_worktree_list",
    "pid_alive",
    "render_github",
    "render_markdown",
    "resolve_commit",
    "rev_parse",
    "run_attached",
    "run_command",
    "run_git",
    "signal_group",
    "words",
]
