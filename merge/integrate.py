"""In-order integration of subtask branches into the integration branch, without a working tree.

Each branch becomes a two-parent merge commit: `git merge-tree --write-tree` computes the tree,
`git commit-tree` makes the commit and `git update-ref REF NEW OLD` moves the branch only if
nobody moved it meanwhile. A branch whose head is already in the integration branch is reported
as merged and not merged twice, so the stage can be rerun after any crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from merge.gitcmd import GitError, run_git

Outcome = Literal["merged", "already_merged", "conflict"]
CAS_RETRIES = 5


@dataclass(frozen=True)
class Candidate:
    """A finished subtask branch waiting to be integrated."""

    subtask_id: str
    branch: str
    base: str  # the integration commit the branch was made from
    head: str
    message: str  # the merge commit's message
    group: str | None = None  # the parallel phase it ran in; overlaps are sought per group


@dataclass(frozen=True)
class MergeResult:
    subtask_id: str
    outcome: Outcome
    merge_commit: str | None = None
    conflicted_paths: tuple[str, ...] = ()
    messages: tuple[str, ...] = field(default=())
    overlaps: tuple[str, ...] = ()  # paths this subtask shares with another of its group


def integrate(repo: Path, integration_ref: str, candidates: Sequence[Candidate], *,
              overlap: Literal["merge", "block"] = "merge") -> list[MergeResult]:
    """Merge each candidate, in order, into `integration_ref` (a full ref name)."""
    return [integrate_one(repo, integration_ref, c) for c in candidates]


def integrate_one(repo: Path, integration_ref: str, candidate: Candidate) -> MergeResult:
    for _ in range(CAS_RETRIES):
        tip = run_git(repo, "rev-parse", "--verify", integration_ref + "^{commit}").stdout.strip()
        if is_ancestor(repo, candidate.head, tip):
            return MergeResult(candidate.subtask_id, "already_merged", merge_commit=tip)
        tree = merge_tree(repo, tip, candidate.head)
        if isinstance(tree, MergeResult):
            return MergeResult(candidate.subtask_id, "conflict",
                               conflicted_paths=tree.conflicted_paths, messages=tree.messages)
        commit = run_git(repo, "commit-tree", tree, "-p", tip, "-p", candidate.head,
                         input=candidate.message.encode()).stdout.strip()
        moved = run_git(repo, "update-ref", "-m", f"orchestrate: merge {candidate.branch}",
                        integration_ref, commit, tip, check=False)
        if moved.returncode == 0:
            return MergeResult(candidate.subtask_id, "merged", merge_commit=commit)
    raise GitError(("update-ref", integration_ref), repo, moved)


def is_ancestor(repo: Path, commit: str, of: str) -> bool:
    result = run_git(repo, "merge-base", "--is-ancestor", commit, of, check=False)
    if result.returncode not in (0, 1):
        raise GitError(("merge-base", "--is-ancestor", commit, of), repo, result)
    return result.returncode == 0


def merge_tree(repo: Path, ours: str, theirs: str) -> str | MergeResult:
    """The merged tree's id, or a MergeResult carrying the conflicts.

    Exit code 1 alone does not mean a conflict (an unknown ref also exits 1): a conflict
    must come with the tree id on the first line.
    """
    args = ("merge-tree", "--write-tree", "--name-only", "--messages", "-z", ours, theirs)
    result = run_git(repo, *args, check=False)
    fields = result.stdout.split("\0")
    if result.returncode == 0:
        return fields[0].strip()
    if result.returncode != 1 or not _is_oid(fields[0]):
        raise GitError(args, repo, result)
    paths: list[str] = []
    rest = fields[1:]
    while rest and rest[0]:
        paths.append(rest.pop(0))
    messages = tuple(m for m in rest[1:] if m.strip())
    return MergeResult("", "conflict", conflicted_paths=tuple(dict.fromkeys(paths)),
                       messages=messages)


def _is_oid(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)
