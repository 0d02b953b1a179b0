"""integrate(): overlaps and the --overlap policy, idempotency, the compare-and-swap, and that
the user's checkout, index and worktrees are never touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from merge.gitcmd import GitError
from merge.integrate import integrate, merge_tree
from tests.conftest import commit_files, git
from tests.merge_helpers import (
    INTEGRATION,
    LINES,
    candidate,
    edit,
    findings,
    integrate_one,
    merge_onto,
    outcomes,
    ranges,
    report_json,
    show,
    start,
    tip,
)


def test_clean_overlap_in_separate_hunks_is_merged_and_flagged(repo: Path) -> None:
    base = start(repo, {"notes.txt": LINES})
    a = candidate(repo, base, "a", {"notes.txt": edit(LINES, 2, "two by a")})
    b = candidate(repo, base, "b", {"notes.txt": edit(LINES, 18, "eighteen by b"),
                                    "b-only.txt": "b\n"})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "merged"}
    assert [r.overlaps for r in results] == [("notes.txt",), ("notes.txt",)]
    merged = show(repo, "notes.txt") or ""
    assert "two by a" in merged
    assert "eighteen by b" in merged
    assert "line 2\n" not in merged
    report = report_json(repo, base, [a, b], results)
    assert findings(report, "conflict") == []
    [overlap] = findings(report, "overlap")
    assert (overlap["path"], overlap["subtasks"], overlap["detail"], overlap["merged"]) == (
        "notes.txt", ["a", "b"], "separate hunks", True)
    assert ranges(overlap) == {"a": [(2, 1, 2, 1)], "b": [(18, 1, 18, 1)]}
    assert [s["overlaps"] for s in report["subtasks"]] == [["notes.txt"], ["notes.txt"]]
    assert report["summary"]["overlaps"] == 1
    assert report["summary"]["merged"] == 2


def test_identical_additions_on_both_sides_merge_without_conflict(repo: Path) -> None:
    base = start(repo)
    a = candidate(repo, base, "a", {"shared.txt": "same\n", "a.txt": "a\n"})
    b = candidate(repo, base, "b", {"shared.txt": "same\n", "b.txt": "b\n"})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "merged"}
    assert show(repo, "shared.txt") == "same\n"
    assert show(repo, "b.txt") == "b\n"
    report = report_json(repo, base, [a, b], results)
    assert findings(report, "conflict") == []
    [overlap] = findings(report, "overlap")
    assert (overlap["path"], overlap["detail"]) == ("shared.txt", "identical")


def test_overlap_block_keeps_the_later_branch_out(repo: Path) -> None:
    base = start(repo, {"notes.txt": LINES})
    a = candidate(repo, base, "a", {"notes.txt": edit(LINES, 2, "two by a")})
    b = candidate(repo, base, "b", {"notes.txt": edit(LINES, 18, "eighteen by b")})
    c = candidate(repo, base, "c", {"c.txt": "c\n"})
    results = integrate(repo, INTEGRATION, [a, b, c], overlap="block")
    assert outcomes(results) == {"a": "merged", "b": "conflict", "c": "merged"}
    assert [(x.path, x.kind) for x in results[1].conflicts] == [("notes.txt", "overlap")]
    assert results[1].conflicted_paths == ("notes.txt",)
    assert "eighteen by b" not in (show(repo, "notes.txt") or "")
    assert show(repo, "c.txt") == "c\n"
    report = report_json(repo, base, [a, b, c], results)
    [conflict] = findings(report, "conflict")
    assert (conflict["path"], conflict["detail"], conflict["subtasks"], conflict["subtask"]) == (
        "notes.txt", "overlap", ["a", "b"], "b")
    assert ranges(conflict) == {"a": [(2, 1, 2, 1)], "b": [(18, 1, 18, 1)]}


def test_overlap_block_lets_a_branch_through_once_it_contains_the_other(repo: Path) -> None:
    base = start(repo, {"notes.txt": LINES})
    a = candidate(repo, base, "a", {"notes.txt": edit(LINES, 2, "two by a")})
    b = candidate(repo, base, "b", {"notes.txt": edit(LINES, 18, "eighteen by b")})
    integrate(repo, INTEGRATION, [a, b], overlap="block")
    both = edit(edit(LINES, 2, "two by a"), 18, "eighteen by b")
    fixed_head = commit_files(repo, b.head, {"notes.txt": both}, "merge integration",
                              branch=b.branch, parents=[tip(repo)])
    fixed = type(b)(b.subtask_id, b.branch, b.base, fixed_head, b.message, b.group)
    still_recorded_as_conflict = integrate(repo, INTEGRATION, [a, b], overlap="block")
    report = report_json(repo, base, [a, fixed], still_recorded_as_conflict)
    assert findings(report, "conflict") == []  # the branch now contains a's work
    results = integrate(repo, INTEGRATION, [a, fixed], overlap="block")
    assert outcomes(results) == {"a": "already_merged", "b": "merged"}
    assert show(repo, "notes.txt") == both


def test_a_second_integrate_of_the_same_branches_changes_nothing(repo: Path) -> None:
    base = start(repo, {"notes.txt": LINES})
    a = candidate(repo, base, "a", {"a.txt": "a\n"})
    b = candidate(repo, base, "b", {"b.txt": "b\n"})
    first = integrate_one(repo, INTEGRATION, a)
    second = integrate_one(repo, INTEGRATION, b)
    assert (first.outcome, second.outcome) == ("merged", "merged")
    assert git(repo, "rev-parse", f"{second.merge_commit}^1") == first.merge_commit
    commits = git(repo, "rev-list", "--count", INTEGRATION)
    again = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(again) == {"a": "already_merged", "b": "already_merged"}
    assert all(r.merge_commit == second.merge_commit for r in again)
    assert tip(repo) == second.merge_commit
    assert git(repo, "rev-list", "--count", INTEGRATION) == commits


def test_the_ref_moves_only_from_the_tip_the_merge_was_made_on(repo: Path) -> None:
    base = start(repo)
    a = candidate(repo, base, "a", {"a.txt": "a\n"})
    b = candidate(repo, base, "b", {"b.txt": "b\n"})
    moved = integrate_one(repo, INTEGRATION, a).merge_commit
    assert merge_onto(repo, f"refs/heads/{INTEGRATION}", base, b) is None  # stale tip
    assert tip(repo) == moved
    result = integrate_one(repo, INTEGRATION, b)  # reads the new tip and composes
    assert result.outcome == "merged"
    assert git(repo, "rev-parse", f"{result.merge_commit}^1") == moved
    assert show(repo, "a.txt") == "a\n"
    assert show(repo, "b.txt") == "b\n"


def test_the_merge_commit_has_the_no_ff_shape_and_message(repo: Path) -> None:
    base = start(repo)
    a = candidate(repo, base, "a", {"a.txt": "a\n"})
    [result] = integrate(repo, f"refs/heads/{INTEGRATION}", [a])
    parents = git(repo, "rev-list", "--parents", "-n1", INTEGRATION).split()
    assert parents == [result.merge_commit, base, a.head]
    assert git(repo, "log", "-1", "--format=%B", INTEGRATION) == "Merge a"


def test_integrate_never_touches_the_checkout_index_or_worktrees(repo: Path) -> None:
    (repo / "README.md").write_text("# edited, not committed\n")
    (repo / "untracked.txt").write_text("mine\n")
    git(repo, "add", "README.md")
    (repo / "src" / "app.py").write_text("unstaged edit\n")
    base = start(repo, {"notes.txt": LINES})
    a = candidate(repo, base, "a", {"notes.txt": edit(LINES, 5, "A")})
    b = candidate(repo, base, "b", {"notes.txt": edit(LINES, 5, "B")})
    c = candidate(repo, base, "c", {"README.md": "# c\n"})
    before = _checkout_state(repo)
    results = integrate(repo, INTEGRATION, [a, b, c])
    assert outcomes(results) == {"a": "merged", "b": "conflict", "c": "merged"}
    assert _checkout_state(repo) == before


def _checkout_state(repo: Path) -> tuple[str, str, str, str, bytes, str]:
    return (git(repo, "worktree", "list", "--porcelain"), git(repo, "status", "--porcelain"),
            git(repo, "rev-parse", "HEAD"), git(repo, "symbolic-ref", "HEAD"),
            (repo / ".git" / "index").read_bytes(), (repo / "src" / "app.py").read_text())


def test_merge_tree_of_an_unknown_commit_is_an_error_not_a_conflict(repo: Path) -> None:
    with pytest.raises(GitError, match="merge-tree"):
        merge_tree(repo, "main", "no-such-branch")
