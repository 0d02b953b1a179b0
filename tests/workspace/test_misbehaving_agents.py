"""Agents that misbehave (tests/agents/rogue.py), each next to a well-behaved sibling in a
parallel phase: the rogue ends with a clear status and error, the sibling is merged, and the
user's checkout is untouched."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, phase, plan_of, run_cli, write_plan
from tests.fault_support import (
    INTEGRATION,
    SPEC,
    build,
    checkout_state,
    error_of,
    merged_subtasks,
    statuses,
    subtasks,
    tree_of,
)

pytestmark = pytest.mark.slow  # real builds with rogue agent processes

TAME = {"ROGUE_TAME": "1"}


def run_beside_sibling(repo: Path, rogue: str, *args: str, check: int) -> Path:
    """Build `rogue` and a good `sibling` in one parallel phase; return the plan's path."""
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, [rogue, "sibling"], parallel=True)))
    (repo / "notes.txt").write_text("the user's uncommitted work\n")
    before = checkout_state(repo)
    build(repo, *args, check=check)
    assert statuses(plan_path)["sibling"] == "completed"
    assert tree_of(repo)["sibling.txt"] == "100644 blob"
    assert checkout_state(repo) == before
    return plan_path


def meta(plan_path: Path, subtask: str) -> dict[str, Any]:
    record: dict[str, Any] = subtasks(plan_path)[subtask]["orchestrate"]
    return record


def branch_log(repo: Path, plan_path: Path, subtask: str) -> list[str]:
    base, branch = meta(plan_path, subtask)["base"], f"orchestrate/{SPEC}/{subtask}"
    return git(repo, "log", "--format=%s", f"{base}..{branch}").splitlines()


def test_commits_the_agent_made_itself_are_kept(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "commits-itself", check=0)
    assert statuses(plan_path)["commits-itself"] == "completed"
    assert branch_log(repo, plan_path, "commits-itself") == [
        "commits-itself: Do commits-itself", "agent: its own commit"]
    assert {"own.txt", "left.txt"} <= set(tree_of(repo))
    assert merged_subtasks(repo) == {"commits-itself": 1, "sibling": 1}


def test_an_agent_that_switches_branch_fails_the_attempt(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "switches-branch", "--retries", "0", check=1)
    assert statuses(plan_path)["switches-branch"] == "failed"
    assert error_of(plan_path, "switches-branch") == (
        f"the agent left the worktree on elsewhere instead of orchestrate/{SPEC}/switches-branch")
    assert "switches-branch.txt" not in tree_of(repo)
    assert merged_subtasks(repo) == {"sibling": 1}


def test_a_detached_head_is_put_back_for_the_retry_which_fails_again(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "detaches-head", check=1)
    assert statuses(plan_path)["detaches-head"] == "failed"
    assert meta(plan_path, "detaches-head")["attempts"] == 2
    assert error_of(plan_path, "detaches-head") == (
        f"the agent left the worktree on a detached HEAD instead of "
        f"orchestrate/{SPEC}/detaches-head")
    log = (plan_path.parent / "logs" / "detaches-head.log").read_text()
    assert "attempt 2 of detaches-head" in log
    assert merged_subtasks(repo) == {"sibling": 1}


def test_a_deleted_dotgit_file_ends_the_subtask_and_git_cannot_reach_the_users_repo(
        repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "deletes-dotgit", check=1)
    assert statuses(plan_path)["deletes-dotgit"] == "failed"
    assert error_of(plan_path, "deletes-dotgit") == (
        "the agent removed the worktree's .git file; no further attempt in a damaged worktree")
    assert meta(plan_path, "deletes-dotgit")["attempts"] == 1
    assert "after.txt" not in tree_of(repo)
    build(repo, "--retry-failed", env=TAME, check=0)
    assert statuses(plan_path)["deletes-dotgit"] == "completed"
    assert "deletes-dotgit.txt" in tree_of(repo)


def test_a_corrupted_dotgit_file_ends_the_subtask_and_a_later_build_repairs_it(
        repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "corrupts-dotgit", check=1)
    assert statuses(plan_path)["corrupts-dotgit"] == "failed"
    error = error_of(plan_path, "corrupts-dotgit")
    assert error.startswith("the worktree is no longer a git worktree (its .git file was "
                            "damaged): fatal: invalid gitfile format")
    assert error.endswith("; no further attempt in a damaged worktree")
    build(repo, "--retry-failed", env=TAME, check=0)
    assert statuses(plan_path)["corrupts-dotgit"] == "completed"
    assert merged_subtasks(repo) == {"corrupts-dotgit": 1, "sibling": 1}


def test_an_agent_that_deletes_its_worktree_fails_and_a_later_build_recreates_it(
        repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "deletes-worktree", check=1)
    assert statuses(plan_path)["deletes-worktree"] == "failed"
    assert error_of(plan_path, "deletes-worktree") == (
        "the agent deleted its worktree; no further attempt in a damaged worktree")
    build(repo, "--retry-failed", env=TAME, check=0)
    assert "deletes-worktree.txt" in tree_of(repo)


def test_a_stale_index_lock_does_not_stop_the_commit(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "leaves-index-lock", check=0)
    assert statuses(plan_path)["leaves-index-lock"] == "completed"
    assert "leaves-index-lock.txt" in tree_of(repo)


def test_files_under_orchestrate_and_auto_claude_are_never_committed(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "writes-private", check=0)
    assert statuses(plan_path)["writes-private"] == "completed"
    branch_tree = tree_of(repo, f"orchestrate/{SPEC}/writes-private")
    assert "writes-private.txt" in branch_tree
    assert not [p for p in branch_tree if p.startswith((".orchestrate", ".auto-claude"))]
    worktree = repo / ".orchestrate" / "worktrees"
    assert not (worktree / SPEC / "writes-private").exists()  # parked for reuse after merging


def test_a_nested_repository_is_refused_naming_its_path(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "nested-repo", "--retries", "0", check=1)
    assert statuses(plan_path)["nested-repo"] == "failed"
    error = error_of(plan_path, "nested-repo")
    assert error.startswith("the agent left nested git repositories, which would be committed "
                            "as links to commits that exist nowhere else: 'vendor/lib/'")
    branch = f"orchestrate/{SPEC}/nested-repo"
    assert git(repo, "rev-parse", branch) == meta(plan_path, "nested-repo")["base"]
    assert not [e for e in tree_of(repo).values() if e.startswith("160000")]


def test_symlinks_modes_binaries_and_odd_names_are_committed_as_they_are(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "odd-files", check=0)
    assert statuses(plan_path)["odd-files"] == "completed"
    tree = tree_of(repo)
    assert tree["readme-link"] == "120000 blob"
    assert git(repo, "cat-file", "blob", f"{INTEGRATION}:readme-link") == "README.md"
    assert tree["src/app.py"] == "100755 blob"
    blob = subprocess.run(["git", "cat-file", "blob", f"{INTEGRATION}:blob.bin"], cwd=repo,
                          capture_output=True, check=True).stdout
    assert blob == bytes(range(256)) * 4
    assert tree["dir with space/naïve ü|`x` ```.txt"] == "100644 blob"


def test_ten_thousand_new_files_are_all_committed(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "many-files", check=0)
    assert statuses(plan_path)["many-files"] == "completed"
    many = [p for p in tree_of(repo) if p.startswith("many/")]
    assert len(many) == 10_000
    assert "many/d19/f09999.txt" in many


def test_a_flood_of_output_is_logged_head_and_tail_only(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "floods", check=0)
    assert statuses(plan_path)["floods"] == "completed"
    log = (plan_path.parent / "logs" / "floods.log").read_bytes()
    assert len(log) < 6 * 1024 * 1024
    assert b"FLOOD-START" in log[:1000]
    assert log.rstrip().endswith(b"FLOOD-END")
    assert b"bytes of output omitted here]" in log


def test_invalid_utf8_output_is_logged_as_is(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "invalid-utf8", check=0)
    assert statuses(plan_path)["invalid-utf8"] == "completed"
    log = (plan_path.parent / "logs" / "invalid-utf8.log").read_bytes()
    assert b"bad bytes: \xff\xfe\x80\xc3(\n" in log
    assert b"more: \xed\xa0\x80 \x00 end\n" in log
    assert "invalid-utf8" in run_cli(repo, "status", "001", check=0).stdout


def test_an_agent_that_changes_nothing_completes_flagged_no_changes(repo: Path) -> None:
    plan_path = run_beside_sibling(repo, "no-op", check=0)
    assert statuses(plan_path)["no-op"] == "completed"
    record = meta(plan_path, "no-op")
    assert record["no_changes"] is True
    assert git(repo, "rev-parse", f"orchestrate/{SPEC}/no-op") == record["base"]
    assert merged_subtasks(repo) == {"sibling": 1}
    status = run_cli(repo, "status", "001", check=0).stdout
    assert "(no changes)" in next(line for line in status.splitlines() if "no-op" in line)
    report = run_cli(repo, "report", "001", check=0).stdout
    row = "| `no-op` | `1` | completed | `orchestrate/001-demo/no-op` | 0 | merged (no changes) |"
    assert row in report.splitlines()
    data = json.loads(run_cli(repo, "report", "001", "--format", "json", check=0).stdout)
    assert {row["id"]: row["no_changes"] for row in data["subtasks"]} == {
        "no-op": True, "sibling": False}


def test_a_process_that_escapes_the_agents_group_is_stopped_with_the_attempt(
        repo: Path) -> None:
    started = time.monotonic()
    plan_path = run_beside_sibling(repo, "escapes", check=0)
    assert time.monotonic() - started < 20  # not held up by the process holding the output
    assert statuses(plan_path)["escapes"] == "completed"
    escaped = int((Path(os.environ["HOME"]) / "escaped.pid").read_text())
    deadline = time.monotonic() + 10
    while _running(escaped) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(escaped)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
