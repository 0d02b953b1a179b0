"""Building blocks for merge-stage tests: subtask branches made with real commits from one base,
integration results turned into report rows, and reads of what a ref contains."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from merge.gitcmd import rev_parse
from merge.integrate import (
    CAS_RETRIES,
    Candidate,
    IntegrationRace,
    MergeResult,
    full_ref,
    is_ancestor,
    merge_commit_onto,
    move_ref,
)
from merge.report import SubtaskRow, build_report
from tests.conftest import commit_files, git

SPEC = "001-demo"
INTEGRATION = f"orchestrate/{SPEC}/integration"
LINES = "".join(f"line {i}\n" for i in range(1, 21))


def start(repo: Path, files: dict[str, str | bytes | None] | None = None) -> str:
    """A base commit on top of main with `files`, and the integration branch pointing at it."""
    base = commit_files(repo, "main", files or {}, "base")
    git(repo, "update-ref", f"refs/heads/{INTEGRATION}", base)
    return base


def candidate(repo: Path, base: str, subtask_id: str, files: dict[str, str | bytes | None],
              group: str | None = "1") -> Candidate:
    branch = f"orchestrate/{SPEC}/{subtask_id}"
    head = commit_files(repo, base, files, f"{subtask_id}: work", branch=branch)
    return Candidate(subtask_id, branch, base, head, f"Merge {subtask_id}\n", group)


def edit(text: str, line: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line - 1] = new + "\n"
    return "".join(lines)


def show(repo: Path, path: str, ref: str = INTEGRATION) -> str | None:
    done = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=repo, capture_output=True,
                          text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def tree(repo: Path, ref: str = INTEGRATION) -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", ref).splitlines()


def tip(repo: Path, ref: str = INTEGRATION) -> str:
    return git(repo, "rev-parse", ref)


def outcomes(results: Sequence[MergeResult]) -> dict[str, str]:
    return {r.subtask_id: r.outcome for r in results}


def rows(candidates: Sequence[Candidate], results: Sequence[MergeResult]) -> list[SubtaskRow]:
    """Report rows as the build engine would record them after `integrate`."""
    by_id = {r.subtask_id: r for r in results}
    found = []
    for c in candidates:
        result = by_id.get(c.subtask_id)
        merged = result is not None and result.outcome != "conflict"
        found.append(SubtaskRow(
            id=c.subtask_id, phase=c.group or "1", group=c.group,
            status="completed" if merged else ("conflict" if result else "pending"),
            branch=c.branch, base=c.base, head=c.head,
            merge=("merged" if merged else "conflict") if result else "pending",
            merge_commit=result.merge_commit if result else None))
    return found


def report_json(repo: Path, base: str, candidates: Sequence[Candidate],
                results: Sequence[MergeResult]) -> dict[str, Any]:
    report = build_report(repo, spec=SPEC, integration_branch=INTEGRATION, base=base,
                          rows=rows(candidates, results), generated_at="2026-01-02T03:04:05Z")
    return report.to_json()


def findings(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in report["conflicts"] if f["kind"] == kind]


def ranges(finding: dict[str, Any]) -> dict[str, list[tuple[int, int, int, int]]]:
    """Each side's hunks as (old_start, old_lines, new_start, new_lines), by subtask."""
    found: dict[str, list[tuple[int, int, int, int]]] = {}
    for h in finding["hunks"]:
        found.setdefault(h["subtask"], []).append(
            (h["old_start"], h["old_lines"], h["new_start"], h["new_lines"]))
    return found


def integrate_one(repo: Path, integration_ref: str, candidate: Candidate) -> MergeResult:
    """Merge one candidate, retrying when another writer moves the ref under us (the
    one-at-a-time path the tests compose by hand; the build integrates whole batches)."""
    ref = full_ref(integration_ref)
    for _ in range(CAS_RETRIES):
        result = merge_onto(repo, ref, rev_parse(repo, ref), candidate)
        if result is not None:
            return result
    raise IntegrationRace(f"{ref} kept moving while merging {candidate.branch}; "
                          f"gave up after {CAS_RETRIES} attempts")


def merge_onto(repo: Path, ref: str, tip: str, candidate: Candidate) -> MergeResult | None:
    """Merge `candidate` onto `tip` and move `ref` from `tip` to the merge commit; None,
    changing nothing, when `ref` no longer points at `tip` (the compare-and-swap failed)."""
    if is_ancestor(repo, candidate.head, tip):
        return MergeResult(candidate.subtask_id, "already_merged", merge_commit=tip)
    result = merge_commit_onto(repo, tip, candidate)
    if result.outcome == "merged" and result.merge_commit and not move_ref(
            repo, ref, result.merge_commit, tip, f"merge {candidate.branch}"):
        return None
    return result
