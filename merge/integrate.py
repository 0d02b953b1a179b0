"""In-order integration of subtask branches into the integration branch, without a working tree.

Each branch becomes a two-parent merge commit: `git merge-tree --write-tree` computes the tree
and `git commit-tree` makes the commit on top of the previous one; then one
`git update-ref REF NEW OLD` moves the branch over the whole chain, only if nobody moved it
meanwhile (else the chain is rebuilt on the new tip). A branch whose head is already in the
integration branch is reported as merged and not merged twice, so the stage can be rerun after
any crash.

Candidates of the same group (one parallel phase) are checked for overlaps first: every path two
of them changed is flagged on each, and with `overlap="block"` a later candidate that overlaps an
earlier one already integrated is not merged (outcome `conflict`, conflict kind `overlap`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from merge import words
from merge.changes import branch_changes_many
from merge.conflicts import (
    Conflict,
    MergeMessage,
    MergeTreeOutput,
    UnexpectedOutput,
    blocked_overlap,
    parse_merge_tree,
)
from merge.failpoints import crash_if_named
from merge.gitcmd import ATTRIBUTELESS, CommitWriter, GitError, attributeless_git, run_git
from merge.gitcmd import rev_parse as rev_parse  # re-exported: callers import it from here
from merge.overlap import Overlap, find_overlaps
from merge.quick_merge import QuickMerges

Outcome = Literal["merged", "already_merged", "conflict"]
OverlapPolicy = Literal["merge", "block"]
CAS_RETRIES = 5


class IntegrationRace(RuntimeError):
    """Other writers moved the integration branch on every attempt."""


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
    merge_commit: str | None = None  # the new merge commit, or the tip that already has it
    conflicted_paths: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()  # git's conflict messages, or why the merge was blocked
    conflicts: tuple[Conflict, ...] = ()
    overlaps: tuple[str, ...] = ()  # paths this subtask shares with another of its group


def integrate(repo: Path, integration_ref: str, candidates: Sequence[Candidate], *,
              overlap: OverlapPolicy = "merge") -> list[MergeResult]:
    """Merge each candidate, in order, into `integration_ref` (`refs/heads/...` or a branch).

    Pass a whole parallel group, merged members included (they come back `already_merged`),
    so overlaps with them are found too.
    """
    ref = full_ref(integration_ref)
    overlaps = _group_overlaps(repo, candidates)
    for _ in range(CAS_RETRIES):
        start = rev_parse(repo, ref)
        with CommitWriter(repo) as writer, \
                QuickMerges(repo, start, [c.head for c in candidates]) as quick:
            results, tip = _merge_chain(repo, start, candidates, overlaps, overlap,
                                        writer=writer, quick=quick)
        if tip == start or _move_ref(repo, ref, tip, start, f"merge {len(candidates)} branches"):
            return results
    raise IntegrationRace(f"{ref} kept moving while merging {len(candidates)} branches; "
                          f"gave up after {CAS_RETRIES} attempts")


@dataclass(frozen=True)
class Chain:
    """The merge commits of a list of candidates on top of `start`; no ref has moved."""

    start: str
    results: tuple[MergeResult, ...]
    tips: tuple[str, ...]  # tips[i]: the chain's last commit once candidates[i] is in

    @property
    def tip(self) -> str:
        return self.tips[-1] if self.tips else self.start


def merge_chain(repo: Path, start: str, candidates: Sequence[Candidate], *,
                overlaps: Sequence[Overlap] = (), overlap: OverlapPolicy = "merge",
                integrated: Mapping[str, str] | None = None) -> Chain:
    """The chain of `candidates` merged in order onto `start`, without moving any ref (the
    caller decides where the integration branch goes, e.g. after checking the result).

    `overlaps` are the group's (see `group_overlaps`); `integrated` names the subtasks, id ->
    head, already in `start` that `--overlap block` must count as merged before these."""
    tips: list[str] = []
    results: list[MergeResult] = []
    done = dict(integrated or {})
    tip = start
    with CommitWriter(repo) as writer, \
            QuickMerges(repo, start, [c.head for c in candidates]) as quick:
        for candidate in candidates:
            found, tip = _merge_chain(repo, tip, [candidate], list(overlaps), overlap, done,
                                      writer=writer, quick=quick)
            results += found
            tips.append(tip)
    return Chain(start, tuple(results), tuple(tips))


def move_ref(repo: Path, integration_ref: str, new: str, old: str, why: str) -> bool:
    """Compare-and-swap the integration branch from `old` to `new`; False if it moved."""
    return _move_ref(repo, full_ref(integration_ref), new, old, why)


def group_overlaps(repo: Path, candidates: Sequence[Candidate]) -> list[Overlap]:
    """Every path two candidates of the same group changed."""
    return _group_overlaps(repo, candidates)


def _merge_chain(repo: Path, tip: str, candidates: Sequence[Candidate],
                 overlaps: list[Overlap], policy: OverlapPolicy,
                 integrated: dict[str, str] | None = None, *,
                 writer: CommitWriter | None = None,
                 quick: QuickMerges | None = None) -> tuple[list[MergeResult], str]:
    """Each candidate's merge commit on top of the previous one; returns the results and the
    last commit. Nothing moves yet: the caller swaps the ref once for the whole chain."""
    contained = contained_in(repo, tip, [c.head for c in candidates])
    if integrated is None:
        integrated = {}  # subtask id -> head, for those now in the chain
    results = []
    for candidate in candidates:
        mine = [o for o in overlaps if candidate.subtask_id in o.subtask_ids]
        blocked = (_blocking_overlaps(repo, candidate, mine, integrated)
                   if policy == "block" and candidate.head not in contained else [])
        if candidate.head in contained:
            result = MergeResult(candidate.subtask_id, words.ALREADY_MERGED, merge_commit=tip)
        elif blocked:
            result = blocked_result(candidate.subtask_id, blocked)
        else:
            result = merge_commit_onto(repo, tip, candidate, writer, quick)
        if result.outcome != words.CONFLICT:
            integrated[candidate.subtask_id] = candidate.head
        if result.outcome == words.MERGED and result.merge_commit:
            tip = result.merge_commit
        results.append(replace(result, overlaps=tuple(o.path for o in mine)))
    return results, tip


def merge_commit_onto(repo: Path, tip: str, candidate: Candidate,
                      writer: CommitWriter | None = None,
                      quick: QuickMerges | None = None) -> MergeResult:
    """The merge commit of `candidate` onto `tip` (no ref moves), or the conflicts; written
    by `writer` (one process for a chain of merges) if given, computed by `quick` where the
    two sides changed disjoint paths (merge/quick_merge.py)."""
    merged = (quick and quick.merge(tip, candidate.head)) or merge_tree(repo, tip,
                                                                       candidate.head)
    if not merged.clean:
        return conflict_result(candidate.subtask_id, merged)
    if writer is not None:
        commit = writer.commit(merged.tree, (tip, candidate.head), candidate.message)
    else:
        commit = run_git(repo, "commit-tree", "--no-gpg-sign", merged.tree, "-p", tip,
                         "-p", candidate.head, input=candidate.message.encode()).stdout.strip()
    if quick is not None:
        quick.made(commit, merged.tree)
    crash_if_named("merge-commit-created")
    return MergeResult(candidate.subtask_id, words.MERGED, merge_commit=commit)


def _move_ref(repo: Path, ref: str, new: str, old: str, why: str) -> bool:
    """Compare-and-swap `ref` from `old` to `new`; False if someone else moved it first."""
    args = ("update-ref", "-m", f"orchestrate: {why}", ref, new, old)
    moved = run_git(repo, *args, check=False)
    if moved.returncode == 0:
        crash_if_named("merge-ref-moved")
        return True
    if rev_parse(repo, ref) != old:
        return False
    raise GitError(args, repo, moved)


def conflict_result(subtask_id: str, merged: MergeTreeOutput) -> MergeResult:
    texts = tuple(m.text for m in merged.messages if m.type != "Auto-merging")
    return MergeResult(subtask_id, words.CONFLICT, conflicted_paths=merged.conflicted_paths,
                       messages=texts, conflicts=merged.conflicts)


def blocked_result(subtask_id: str, blocked: Sequence[tuple[Overlap, tuple[str, ...]]]
                   ) -> MergeResult:
    conflicts = tuple(blocked_overlap(o.path, others) for o, others in blocked)
    return MergeResult(subtask_id, words.CONFLICT,
                       conflicted_paths=tuple(c.path for c in conflicts),
                       messages=tuple(c.message for c in conflicts), conflicts=conflicts)


def _blocking_overlaps(repo: Path, candidate: Candidate, mine: list[Overlap],
                       integrated: dict[str, str]) -> list[tuple[Overlap, tuple[str, ...]]]:
    """Overlaps with earlier, integrated candidates whose work this branch does not contain
    (a branch that merged the integration branch to resolve the overlap contains it)."""
    blocked = []
    for overlap in mine:
        earlier = overlap.subtask_ids[:overlap.subtask_ids.index(candidate.subtask_id)]
        others = tuple(s for s in earlier if s in integrated
                       and not is_ancestor(repo, integrated[s], candidate.head))
        if others:
            blocked.append((overlap, others))
    return blocked


def _group_overlaps(repo: Path, candidates: Sequence[Candidate]) -> list[Overlap]:
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.group is not None:
            groups.setdefault(candidate.group, []).append(candidate)
    found: list[Overlap] = []
    for members in groups.values():
        if len(members) > 1:
            changes = branch_changes_many(repo, [(c.base, c.head) for c in members])
            found += find_overlaps([(c.subtask_id, changes[(c.base, c.head)])
                                    for c in members])
    return found


def merge_tree(repo: Path, ours: str, theirs: str) -> MergeTreeOutput:
    """The merge of two commits as a tree, with the conflicts, without touching any checkout.

    Exit code 1 alone does not mean a conflict (an unknown ref also exits 1): a conflict
    must come with the tree id on the first line. `ours` and `theirs` are commit ids: the
    merge runs in a scratch git dir (no refs, attributes or merge drivers).
    """
    args = (*ATTRIBUTELESS, "merge-tree", "--write-tree", "--name-only", "--messages", "-z",
            ours, theirs)
    with attributeless_git(repo) as env:
        result = run_git(repo, *args, check=False, env=env)
    if result.returncode not in (0, 1) and UNRELATED_HISTORIES in result.stderr:
        return unrelated_histories()
    if result.returncode not in (0, 1):
        raise GitError(args, repo, result)
    try:
        return parse_merge_tree(result.stdout, clean=result.returncode == 0)
    except UnexpectedOutput:
        raise GitError(args, repo, result) from None


UNRELATED_HISTORIES = "refusing to merge unrelated histories"
WHOLE_BRANCH = "(the whole branch)"  # the path a conflict of kind `unrelated` is reported at


def unrelated_histories() -> MergeTreeOutput:
    """A branch that shares no history with the integration branch: a conflict of its own
    kind for the whole branch, never a crash."""
    text = ("CONFLICT (unrelated): the branch shares no history with the integration branch; "
            "make it from the integration branch (or merge that into it with "
            "--allow-unrelated-histories) and run `orchestrate merge`")
    return MergeTreeOutput("", False, (), (MergeMessage((WHOLE_BRANCH,), "CONFLICT (unrelated)",
                                                        text),))


def contained_in(repo: Path, tip: str, heads: Sequence[str]) -> set[str]:
    """Which of `heads` are ancestors of `tip` (or equal to it), in one git call."""
    if not heads:
        return set()
    listing = run_git(repo, "rev-list", "--stdin", input=f"^{tip}\n{chr(10).join(heads)}\n"
                      .encode(), check=False)
    if listing.returncode != 0:
        return {h for h in heads if is_ancestor(repo, h, tip)}
    outside = set(listing.stdout.split())
    return {h for h in heads if h not in outside}


def is_ancestor(repo: Path, commit: str, of: str) -> bool:
    result = run_git(repo, "merge-base", "--is-ancestor", commit, of, check=False)
    if result.returncode not in (0, 1):
        raise GitError(("merge-base", "--is-ancestor", commit, of), repo, result)
    return result.returncode == 0


def full_ref(name: str) -> str:
    return name if name.startswith("refs/") else "refs/heads/" + name
