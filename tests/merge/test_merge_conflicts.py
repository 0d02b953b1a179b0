"""integrate() on real repositories, one test per kind of conflict git 2.39 reports; each checks
the outcomes, what the integration branch holds, and the conflict report's entry."""

from __future__ import annotations

import subprocess
from pathlib import Path

from merge.integrate import integrate
from tests.conftest import git
from tests.merge_helpers import (
    INTEGRATION,
    LINES,
    candidate,
    edit,
    findings,
    outcomes,
    ranges,
    report_json,
    show,
    start,
    tip,
    tree,
)

BIG = "".join(f"record {i}: some text to make renames detectable\n" for i in range(1, 31))


def test_content_conflict_keeps_the_first_branch_and_reports_both_sides(repo: Path) -> None:
    base = start(repo, {"notes.txt": LINES})
    a = candidate(repo, base, "a", {"notes.txt": edit(LINES, 5, "five by a")})
    b = candidate(repo, base, "b", {"notes.txt": edit(LINES, 5, "five by b")})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "conflict"}
    assert results[1].conflicted_paths == ("notes.txt",)
    assert [(c.path, c.kind) for c in results[1].conflicts] == [("notes.txt", "content")]
    assert "five by a" in (show(repo, "notes.txt") or "")
    assert "five by b" not in (show(repo, "notes.txt") or "")
    assert tip(repo) == results[0].merge_commit
    report = report_json(repo, base, [a, b], results)
    [conflict] = findings(report, "conflict")
    assert (conflict["path"], conflict["detail"], conflict["subtasks"]) == (
        "notes.txt", "content", ["a", "b"])
    assert conflict["branches"] == [a.branch, b.branch]
    assert ranges(conflict) == {"a": [(5, 1, 5, 1)], "b": [(5, 1, 5, 1)]}
    [overlap] = findings(report, "overlap")
    assert (overlap["path"], overlap["detail"], overlap["merged"]) == (
        "notes.txt", "same lines", False)
    assert report["summary"] == {"subtasks": 2, "merged": 1, "conflicts": 1, "overlaps": 1,
                                 "failed": 0, "blocked": 0}


def test_add_add_conflict(repo: Path) -> None:
    base = start(repo)
    a = candidate(repo, base, "a", {"new.txt": "from a\n"})
    b = candidate(repo, base, "b", {"new.txt": "from b\n"})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "conflict"}
    assert [c.kind for c in results[1].conflicts] == ["add/add"]
    assert show(repo, "new.txt") == "from a\n"
    [conflict] = findings(report_json(repo, base, [a, b], results), "conflict")
    assert (conflict["path"], conflict["detail"], conflict["subtasks"]) == (
        "new.txt", "add/add", ["a", "b"])
    assert ranges(conflict) == {"a": [(0, 0, 1, 1)], "b": [(0, 0, 1, 1)]}


def test_modify_delete_conflict_keeps_the_modified_file(repo: Path) -> None:
    base = start(repo, {"old.txt": LINES})
    a = candidate(repo, base, "a", {"old.txt": edit(LINES, 3, "three")})
    b = candidate(repo, base, "b", {"old.txt": None})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "conflict"}
    assert [(c.path, c.kind) for c in results[1].conflicts] == [("old.txt", "modify/delete")]
    assert "three" in (show(repo, "old.txt") or "")
    [conflict] = findings(report_json(repo, base, [a, b], results), "conflict")
    assert (conflict["detail"], conflict["subtasks"]) == ("modify/delete", ["a", "b"])
    assert ranges(conflict) == {"a": [(3, 1, 3, 1)], "b": [(1, 20, 0, 0)]}


def test_delete_then_modify_is_the_same_conflict_the_other_way(repo: Path) -> None:
    base = start(repo, {"old.txt": LINES})
    a = candidate(repo, base, "a", {"old.txt": None})
    b = candidate(repo, base, "b", {"old.txt": edit(LINES, 3, "three")})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "conflict"}
    assert [c.kind for c in results[1].conflicts] == ["modify/delete"]
    assert "old.txt" not in tree(repo)


def test_rename_delete_conflict(repo: Path) -> None:
    base = start(repo, {"big.txt": BIG})
    a = candidate(repo, base, "a", {"big.txt": None, "moved.txt": BIG})
    b = candidate(repo, base, "b", {"big.txt": None})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "conflict"}
    [found] = results[1].conflicts
    assert found.kind == "rename/delete"
    assert set(found.paths) == {"big.txt", "moved.txt"}
    assert show(repo, "moved.txt") == BIG
    assert "big.txt" not in tree(repo)
    [conflict] = findings(report_json(repo, base, [a, b], results), "conflict")
    assert (conflict["detail"], conflict["subtasks"]) == ("rename/delete", ["a", "b"])
    assert ranges(conflict) == {"b": [(1, 30, 0, 0)]}  # a's rename changed no line


def test_rename_rename_conflict(repo: Path) -> None:
    base = start(repo, {"big.txt": BIG})
    a = candidate(repo, base, "a", {"big.txt": None, "by-a.txt": BIG})
    b = candidate(repo, base, "b", {"big.txt": None, "by-b.txt": BIG})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "conflict"}
    [found] = results[1].conflicts
    assert (found.path, found.kind) == ("big.txt", "rename/rename")
    assert set(found.paths) == {"big.txt", "by-a.txt", "by-b.txt"}
    assert "by-a.txt" in tree(repo)
    assert "by-b.txt" not in tree(repo)
    [conflict] = findings(report_json(repo, base, [a, b], results), "conflict")
    assert (conflict["path"], conflict["detail"], conflict["subtasks"]) == (
        "big.txt", "rename/rename", ["a", "b"])


def test_file_directory_conflict_is_reported_on_the_original_path(repo: Path) -> None:
    base = start(repo, {"config": "key = 1\n"})
    a = candidate(repo, base, "a", {"config": None, "config/main.toml": "key = 2\n"})
    b = candidate(repo, base, "b", {"config": "key = 3\n"})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "conflict"}
    [found] = results[1].conflicts
    assert (found.path, found.kind) == ("config", "file/directory")
    assert any(p.startswith("config~") for p in found.paths)
    assert tree(repo) == ["README.md", "config/main.toml", "src/app.py"]
    [conflict] = findings(report_json(repo, base, [a, b], results), "conflict")
    assert (conflict["path"], conflict["detail"], conflict["subtasks"]) == (
        "config", "file/directory", ["a", "b"])
    assert ranges(conflict) == {"a": [(1, 1, 0, 0)], "b": [(1, 1, 1, 1)]}


def test_binary_conflict(repo: Path) -> None:
    base = start(repo, {"logo.bin": b"\x00\x01base"})
    a = candidate(repo, base, "a", {"logo.bin": b"\x00\x02from a"})
    b = candidate(repo, base, "b", {"logo.bin": b"\x00\x03from b"})
    results = integrate(repo, INTEGRATION, [a, b])
    assert outcomes(results) == {"a": "merged", "b": "conflict"}
    assert [(c.path, c.kind) for c in results[1].conflicts] == [("logo.bin", "binary")]
    assert git_bytes(repo, f"{INTEGRATION}:logo.bin") == b"\x00\x02from a"
    report = report_json(repo, base, [a, b], results)
    [conflict] = findings(report, "conflict")
    assert (conflict["detail"], conflict["binary"], conflict["hunks"]) == ("binary", True, [])
    [overlap] = findings(report, "overlap")
    assert overlap["detail"] == "binary"


def test_a_conflicting_branch_does_not_stop_later_ones(repo: Path) -> None:
    base = start(repo, {"notes.txt": LINES})
    a = candidate(repo, base, "a", {"notes.txt": edit(LINES, 5, "A")})
    b = candidate(repo, base, "b", {"notes.txt": edit(LINES, 5, "B")})
    c = candidate(repo, base, "c", {"other.txt": "c\n"})
    results = integrate(repo, INTEGRATION, [a, b, c])
    assert outcomes(results) == {"a": "merged", "b": "conflict", "c": "merged"}
    assert show(repo, "other.txt") == "c\n"
    parents = git(repo, "rev-list", "--parents", "-n1", INTEGRATION).split()
    assert parents == [results[2].merge_commit, results[0].merge_commit, c.head]


def test_conflicts_with_an_earlier_sequential_phase_name_that_subtask(repo: Path) -> None:
    base = start(repo, {"notes.txt": LINES})
    first = candidate(repo, base, "first", {"notes.txt": edit(LINES, 9, "first")}, group=None)
    second = candidate(repo, base, "second", {"notes.txt": edit(LINES, 9, "second")},
                       group=None)
    results = integrate(repo, INTEGRATION, [first, second])
    assert outcomes(results) == {"first": "merged", "second": "conflict"}
    assert results[1].overlaps == ()  # overlaps are sought only within a parallel group
    report = report_json(repo, base, [first, second], results)
    [conflict] = findings(report, "conflict")
    assert conflict["subtasks"] == ["first", "second"]
    assert conflict["subtask"] == "second"
    assert findings(report, "overlap") == []


def git_bytes(repo: Path, rev: str) -> bytes:
    return subprocess.run(["git", "cat-file", "blob", rev], cwd=repo, capture_output=True,
                          check=True).stdout
