"""The conflict report: everything is recomputed from the subtask rows and git, so it can be
rebuilt at any time. Rows say which branch, base, head and merge result each subtask has; git
says what each branch changed, which paths of a parallel group overlap, and (by re-running
merge-tree against the integration branch's head) why a `conflict` subtask does not merge.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from merge import words
from merge.changes import BranchChanges, FileChange, branch_changes, branch_changes_many
from merge.conflicts import Conflict, blocked_overlap
from merge.gitcmd import GitError, resolve_commit, run_git
from merge.globs import any_intersect, uncovered
from merge.integrate import full_ref, is_ancestor, merge_tree
from merge.overlap import Overlap, find_overlaps

NOW_ENV = "ORCHESTRATE_NOW"  # pins generated_at, for reproducible reports and golden tests
Json = dict[str, Any]


@dataclass(frozen=True)
class Resolution:
    """A conflict that went back to the subtask's agent and was resolved (SPEC 10)."""

    subtask_id: str
    round: int
    kind: str  # conflict, overlap (--overlap block) or check
    paths: tuple[str, ...]
    subtasks: tuple[str, ...]  # the other side


@dataclass(frozen=True)
class HandResolution:
    """A conflict the user fixed on the subtask's branch, merged by `orchestrate merge`."""

    commit: str  # the branch tip that merged
    kind: str  # conflict, overlap (--overlap block) or check
    paths: tuple[str, ...]  # what conflicted, when known

    def to_json(self) -> Json:
        return {"commit": self.commit, "kind": self.kind, "paths": list(self.paths)}


@dataclass(frozen=True)
class SubtaskRow:
    """What the plan says about one subtask (plan order)."""

    id: str
    phase: str
    status: str
    group: str | None = None  # the parallel phase's key; None in a sequential phase
    branch: str | None = None
    base: str | None = None
    head: str | None = None
    merge: str | None = None  # merged, conflict, pending
    merge_commit: str | None = None
    files_changed: int | None = None  # filled in by build_report
    no_changes: bool = False  # the agent succeeded without changing anything
    check: Json | None = None  # the failed check that left it out (merge `check_failed`)
    declared: tuple[str, ...] = ()  # files_to_modify + files_to_create (SPEC 11)
    undeclared: tuple[str, ...] | None = None  # changed, not declared; filled by build_report
    resolution: Resolution | None = None  # the round that resolved its conflict
    resolved_by_hand: HandResolution | None = None
    own_base: str | None = None  # what its own changes are measured from; by build_report


@dataclass(frozen=True)
class Side:
    subtask_id: str
    branch: str
    change: FileChange | None  # what this subtask did to the finding's paths


@dataclass(frozen=True)
class Finding:
    kind: Literal["conflict", "overlap", "check", "unrelated"]
    path: str
    detail: str  # content, add/add, modify/delete, ..., overlap; for overlaps: same lines, ...
    sides: tuple[Side, ...]  # in plan order
    subtask: str  # the subtask not merged (conflict), or the last one in plan order (overlap)
    paths: tuple[str, ...] = ()  # every path involved (renames, file/directory copies)
    message: str = ""
    merged: bool = False  # overlaps: every side is in the integration branch
    check: Json | None = None  # kind `check`: command, exit_code, commit, log, output
    sequential: bool = False  # overlaps: each side started from the earlier sides' work

    @property
    def subtasks(self) -> tuple[str, ...]:
        return tuple(s.subtask_id for s in self.sides)

    @property
    def branches(self) -> tuple[str, ...]:
        return tuple(s.branch for s in self.sides)


@dataclass(frozen=True)
class Prediction:
    """Two subtasks of one parallel phase whose declared files intersect."""

    group: str
    subtasks: tuple[str, str]
    declared: tuple[tuple[str, ...], tuple[str, ...]]

    def to_json(self) -> Json:
        return {"phase": self.group, "subtasks": list(self.subtasks),
                "declared": [list(d) for d in self.declared]}


@dataclass(frozen=True)
class ConflictReport:
    spec: str
    integration_branch: str
    base: str | None
    generated_at: str
    subtasks: tuple[SubtaskRow, ...]
    findings: tuple[Finding, ...]
    check: Json | None = None  # with a check configured: command, runs, flaky
    unrealised: tuple[Prediction, ...] = ()  # predicted overlaps that did not happen
    cost_usd: float | None = None  # what the spec's agents cost, all builds (SPEC 12)
    # the last build's sandbox: {"mode": "bwrap"|"none", "egress_refused": {subtask: count}},
    # and where subtasks ran without one: "without_sandbox" {subtask: why}, "text" (in words)
    sandbox: Json | None = None

    def conflicts(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in (words.CONFLICT, words.UNRELATED)]

    def overlaps(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == words.OVERLAP]

    def check_failures(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == words.CHECK]

    def resolutions(self) -> list[Resolution]:
        """Conflicts resolved by an agent, of the subtasks now merged."""
        return [r.resolution for r in self.subtasks if r.resolution and _is_merged(r)]

    def resolved_by_hand(self) -> list[SubtaskRow]:
        """The merged subtasks whose conflict the user resolved on their branch."""
        return [r for r in self.subtasks if r.resolved_by_hand and _is_merged(r)]

    def folded_overlaps(self, conflict: Finding) -> list[Finding]:
        """The overlaps reported with a conflict: the same file, a side in common (one entry
        per file in Markdown and annotations, not the same diffs twice; JSON keeps both)."""
        paths = set(conflict.paths) | {conflict.path}
        return [o for o in self.overlaps()
                if o.path in paths and set(o.subtasks) & set(conflict.subtasks)]

    def unfolded_overlaps(self) -> list[Finding]:
        """The overlaps that get an entry of their own."""
        folded = {id(o) for c in self.conflicts() for o in self.folded_overlaps(c)}
        return [o for o in self.overlaps() if id(o) not in folded]

    def resolution_of(self, finding: Finding) -> Resolution | None:
        """The agent's resolution round that resolved `finding`'s path, if one did."""
        return next((r for r in self.resolutions()
                     if r.subtask_id in finding.subtasks and finding.path in r.paths), None)

    def hand_resolution_of(self, finding: Finding) -> tuple[str, str] | None:
        """(subtask, commit) when a side of `finding` had its conflict on this path resolved
        by hand."""
        for row in self.resolved_by_hand():
            hand = row.resolved_by_hand
            if hand and row.id in finding.subtasks and (not hand.paths
                                                        or finding.path in hand.paths):
                return row.id, hand.commit
        return None

    def summary(self) -> dict[str, int]:
        statuses = [r.status for r in self.subtasks]
        merged = sum(1 for r in self.subtasks if r.merge == "merged" or r.status == "completed")
        counts = {"subtasks": len(self.subtasks), "merged": merged,
                  "conflicts": len(self.conflicts()), "overlaps": len(self.overlaps()),
                  "failed": statuses.count("failed"), "blocked": statuses.count("blocked")}
        if self.check is not None:
            counts.update(check_failed=len(self.check_failures()),
                          check_runs=int(self.check.get("runs") or 0),
                          check_runs_sequential=int(self.check.get("sequential_runs") or 0),
                          check_flaky=len(self.check.get("flaky") or ()))
        return counts

    def to_json(self) -> Json:
        cost = {} if self.cost_usd is None else {"cost_usd": self.cost_usd}
        found = {"spec": self.spec, "integration_branch": self.integration_branch,
                 "base": self.base, "generated_at": self.generated_at,
                 "summary": self.summary(), **cost,
                 "subtasks": [_row_json(r, self.findings) for r in self.subtasks],
                 "conflicts": [_finding_json(f) for f in self.findings],
                 "undeclared": [{"subtask": r.id, "paths": list(r.undeclared)}
                                for r in self.subtasks if r.undeclared],
                 "predicted_overlaps_not_happened": [p.to_json() for p in self.unrealised],
                 "resolved": [{"subtask": r.subtask_id, "round": r.round, "kind": r.kind,
                               "paths": list(r.paths), "subtasks": list(r.subtasks)}
                              for r in self.resolutions()],
                 "resolved_by_hand": [{"subtask": r.id, **r.resolved_by_hand.to_json()}
                                      for r in self.resolved_by_hand() if r.resolved_by_hand]}
        if self.check is not None:
            found["check"] = self.check
        if self.sandbox is not None:
            found["sandbox"] = self.sandbox
        return found


def report_time(now: str | None = None) -> str:
    return now or os.environ.get(NOW_ENV) or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(repo: Path, *, spec: str, integration_branch: str, base: str | None,
                 rows: Sequence[SubtaskRow], generated_at: str | None = None,
                 check: Json | None = None, cost_usd: float | None = None,
                 sandbox: Json | None = None) -> ConflictReport:
    tip = _tip(repo, integration_branch)
    rows = [replace(r, own_base=own_base(repo, r, tip)) for r in rows]
    changes = _all_changes(repo, rows)
    rows = tuple(_with_count(r, changes.get(r.id)) for r in rows)
    unrealised = tuple(_unrealised(rows, changes))
    overlaps = [o for group in _groups(rows, changes) for o in find_overlaps(group)]
    findings = [f for r in rows for f in _row_conflicts(repo, r, rows, changes, overlaps, tip)]
    findings += [_overlap_finding(repo, o, rows) for o in overlaps]
    findings += [_check_finding(r) for r in rows if _ejected_by_check(r)]
    return ConflictReport(spec, integration_branch, base, report_time(generated_at), rows,
                          tuple(findings), check=check, unrealised=unrealised,
                          cost_usd=cost_usd, sandbox=sandbox)


def _ejected_by_check(row: SubtaskRow) -> bool:
    return row.merge == "check_failed" and row.status == "conflict" and row.check is not None


def _check_finding(row: SubtaskRow) -> Finding:
    check = row.check or {}
    return Finding("check", "", "check_failed", (Side(row.id, row.branch or "", None),), row.id,
                   message=str(check.get("output") or ""), check=check)


def own_base(repo: Path, row: SubtaskRow, tip: str | None) -> str | None:
    """Where the subtask's own work starts. A branch the user fixed by merging the integration
    branch into it (the report's recipe) holds the other subtasks' work too: its own changes
    are measured from its merge-base with the integration branch as it was before the subtask
    was merged (`merge_commit^1`), or as it is now while unmerged. Other rows keep `base`
    (one git call saved per row: the agent's commits start there)."""
    if not row.head or not (row.resolved_by_hand or row.status == "conflict"):
        return row.base
    against = f"{row.merge_commit}^1" if row.merge_commit else tip
    if against is None:
        return row.base
    found = run_git(repo, "merge-base", row.head, against, check=False)
    return found.stdout.strip() or row.base if found.returncode == 0 else row.base


def _all_changes(repo: Path, rows: Sequence[SubtaskRow]) -> dict[str, BranchChanges]:
    pairs = {r.id: (r.own_base or r.base, r.head) for r in rows if r.base and r.head}
    try:
        found = branch_changes_many(repo, pairs.values())
    except GitError:  # some commit is gone: fall back to one pair at a time
        return {r.id: c for r in rows if (c := _changes(repo, r)) is not None}
    return {subtask_id: found[pair] for subtask_id, pair in pairs.items()}


def _changes(repo: Path, row: SubtaskRow) -> BranchChanges | None:
    if not (row.base and row.head):
        return None
    try:
        return branch_changes(repo, row.own_base or row.base, row.head)
    except GitError:
        return None  # the branch's commits are gone; the row still shows the plan's record


def _with_count(row: SubtaskRow, changes: BranchChanges | None) -> SubtaskRow:
    count = None if changes is None else len(changes.files)
    paths = _changed_paths(changes)
    undeclared = tuple(uncovered(row.declared, paths)) if row.declared and changes else None
    return replace(row, files_changed=count, undeclared=undeclared)


def _changed_paths(changes: BranchChanges | None) -> set[str]:
    return {p for c in (changes.files if changes else ()) for p in c.paths}


def _unrealised(rows: Sequence[SubtaskRow], changes: dict[str, BranchChanges]
                ) -> Iterator[Prediction]:
    """Predicted overlaps (SPEC 11) between finished subtasks whose changes share no path."""
    done = [r for r in rows if r.group is not None and r.declared and r.id in changes]
    for n, first in enumerate(done):
        for second in done[n + 1:]:
            if (first.group == second.group
                    and any_intersect(first.declared, second.declared)
                    and not _changed_paths(changes[first.id])
                    & _changed_paths(changes[second.id])):
                yield Prediction(str(first.group), (first.id, second.id),
                                 (first.declared, second.declared))


def _tip(repo: Path, branch: str) -> str | None:
    return resolve_commit(repo, full_ref(branch))


def _groups(rows: Sequence[SubtaskRow], changes: dict[str, BranchChanges]
            ) -> Iterator[list[tuple[str, BranchChanges]]]:
    groups: dict[str, list[tuple[str, BranchChanges]]] = {}
    for row in rows:
        if row.group is not None and row.id in changes and row.status not in ("failed",
                                                                              "blocked"):
            groups.setdefault(row.group, []).append((row.id, changes[row.id]))
    yield from groups.values()


def _row_conflicts(repo: Path, row: SubtaskRow, rows: Sequence[SubtaskRow],
                   changes: dict[str, BranchChanges], overlaps: list[Overlap],
                   tip: str | None) -> list[Finding]:
    if "conflict" not in (row.merge, row.status) or not (tip and row.head and row.branch):
        return []
    if row.merge == "check_failed":
        return []  # it merges; the check left it out (a `check` entry)
    if is_ancestor(repo, row.head, tip):
        return []  # merged by hand since
    merged = merge_tree(repo, tip, row.head)
    conflicts = (merged.conflicts if not merged.clean
                 else _blocking(repo, row, row.head, rows, overlaps))
    return [_conflict_finding(repo, c, row, rows, changes) for c in conflicts]


def _blocking(repo: Path, row: SubtaskRow, head: str, rows: Sequence[SubtaskRow],
              overlaps: list[Overlap]) -> list[Conflict]:
    """A conflict that git would merge cleanly was blocked by `--overlap block`: an earlier
    subtask of its group is merged and this branch does not contain its work."""
    merged = {r.id: r.head for r in rows if _is_merged(r) and r.head}
    found = []
    for overlap in overlaps:
        ids = overlap.subtask_ids
        earlier = [s for s in ids[:ids.index(row.id)] if s in merged] if row.id in ids else []
        others = [s for s in earlier if not is_ancestor(repo, merged[s], head)]
        if others:
            found.append(blocked_overlap(overlap.path, others))
    return found


def _conflict_finding(repo: Path, conflict: Conflict, row: SubtaskRow,
                      rows: Sequence[SubtaskRow], changes: dict[str, BranchChanges]) -> Finding:
    others = [r for r in rows if r.id != row.id and _is_merged(r)
              and _touches(changes.get(r.id), conflict.paths)
              and not (row.base and r.head and is_ancestor(repo, r.head, row.base))]
    involved = sorted([*others, row], key=rows.index)
    sides = tuple(_side(r, changes, conflict.paths) for r in involved)
    if conflict.kind == words.UNRELATED:
        return Finding(words.UNRELATED, conflict.path, conflict.kind, sides, row.id,
                       conflict.paths, conflict.message)
    return Finding(words.CONFLICT, conflict.path, conflict.kind, sides, row.id, conflict.paths,
                   conflict.message)


def _overlap_finding(repo: Path, overlap: Overlap, rows: Sequence[SubtaskRow]) -> Finding:
    by_id = {r.id: r for r in rows}
    sides = tuple(Side(s.subtask_id, by_id[s.subtask_id].branch or "", s.change)
                  for s in overlap.sides)
    merged = all(_is_merged(by_id[s]) for s in overlap.subtask_ids)
    return Finding("overlap", overlap.path, overlap.detail, sides, overlap.subtask_ids[-1],
                   (overlap.path,), merged=merged,
                   sequential=_sequential(repo, [by_id[s] for s in overlap.subtask_ids]))


def _sequential(repo: Path, rows: Sequence[SubtaskRow]) -> bool:
    """Whether each side's base already held every earlier side's work, as a later wave's
    subtasks do (SPEC 11): the edits were made one on top of the other."""
    for n, later in enumerate(rows[1:], 1):
        for earlier in rows[:n]:
            if not (later.base and earlier.head and is_ancestor(repo, earlier.head, later.base)):
                return False
    return True


def _side(row: SubtaskRow, changes: dict[str, BranchChanges], paths: Sequence[str]) -> Side:
    found = changes.get(row.id)
    change = next((c for p in paths if found and (c := found.touching(p))), None)
    return Side(row.id, row.branch or "", change)


def _touches(changes: BranchChanges | None, paths: Sequence[str]) -> bool:
    return changes is not None and any(changes.touching(p) for p in paths)


def _is_merged(row: SubtaskRow) -> bool:
    return row.merge == "merged" or row.status == "completed"


def _row_json(row: SubtaskRow, findings: Sequence[Finding]) -> Json:
    overlaps = [f.path for f in findings if f.kind == "overlap" and row.id in f.subtasks]
    return {"id": row.id, "phase": row.phase, "status": row.status, "branch": row.branch,
            "head": row.head, "files_changed": row.files_changed, "merge": row.merge,
            "merge_commit": row.merge_commit, "no_changes": row.no_changes,
            "overlaps": overlaps, "declared": list(row.declared),
            "undeclared": None if row.undeclared is None else list(row.undeclared),
            "resolved_round": row.resolution.round if row.resolution else None,
            "resolved_by_hand": row.resolved_by_hand.to_json() if row.resolved_by_hand
            else None,
            **({"check": row.check} if row.check else {})}


def _finding_json(finding: Finding) -> Json:
    hunks = [{"subtask": s.subtask_id, "branch": s.branch, "old_start": h.old_start,
              "old_lines": h.old_lines, "new_start": h.new_start, "new_lines": h.new_lines,
              "excerpt": list(h.excerpt)}
             for s in finding.sides if s.change for h in s.change.hunks]
    binary = any(s.change and s.change.binary for s in finding.sides)
    return {"kind": finding.kind, "path": finding.path, "subtasks": list(finding.subtasks),
            "branches": list(finding.branches), "detail": finding.detail, "hunks": hunks,
            "subtask": finding.subtask, "paths": list(finding.paths), "binary": binary,
            "merged": finding.merged if finding.kind == "overlap" else False,
            "sequential": finding.sequential,
            "message": finding.message, **({"check": finding.check} if finding.check else {})}
