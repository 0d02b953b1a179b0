"""Running `build` again resumes (SPEC 3): completed work is skipped, committed work is merged
without its agent, failed work waits for --retry-failed, blocked work runs once unblocked."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Recorder,
    branch_files,
    build,
    merges_per_subtask,
    statuses,
    subtasks,
)
from tests.conftest import git, phase, plan_of, run_cli, write_plan

pytestmark = pytest.mark.slow  # several real builds per test


def test_completed_subtasks_are_not_run_again(repo: Path, recorder: Recorder) -> None:
    plan = plan_of(phase(1, ["a", "b", "done"], parallel=True), phase(2, ["c"]))
    plan["phases"][0]["subtasks"][2]["status"] = "completed"
    write_plan(repo, SPEC, plan)
    build(repo, recorder)
    assert recorder.invocations() == Counter(a=1, b=1, c=1)
    tip = git(repo, "rev-parse", INTEGRATION)
    build(repo, recorder)
    assert recorder.invocations() == Counter(a=1, b=1, c=1)
    assert git(repo, "rev-parse", INTEGRATION) == tip
    assert statuses(repo) == dict.fromkeys(["a", "b", "done", "c"], "completed")


def test_no_merge_then_merge_integrates_without_the_agents(repo: Path,
                                                           recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["c"])))
    base = git(repo, "rev-parse", "main")
    build(repo, recorder, options=("--no-merge",))
    assert git(repo, "rev-parse", INTEGRATION) == base
    assert statuses(repo) == {"a": "in_progress", "b": "in_progress", "c": "pending"}
    for subtask_id in "ab":
        meta = subtasks(repo)[subtask_id]["orchestrate"]
        assert meta["merge"] == "pending"
        assert meta["head"] == git(repo, "rev-parse", f"orchestrate/{SPEC}/{subtask_id}")
    run_cli(repo, "merge", SPEC, check=0)
    assert statuses(repo) == {"a": "completed", "b": "completed", "c": "pending"}
    assert merges_per_subtask(repo) == Counter(a=1, b=1)
    build(repo, recorder)
    assert statuses(repo) == dict.fromkeys("abc", "completed")
    assert recorder.invocations() == Counter(a=1, b=1, c=1)
    assert merges_per_subtask(repo) == Counter(a=1, b=1, c=1)


def test_the_next_build_merges_committed_work_without_rerunning_it(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    build(repo, recorder, options=("--no-merge",))
    build(repo, recorder)
    assert recorder.invocations() == Counter(a=1, b=1)
    assert statuses(repo) == {"a": "completed", "b": "completed"}
    assert merges_per_subtask(repo) == Counter(a=1, b=1)


def test_a_branch_merged_outside_is_completed_without_merging_again(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    build(repo, recorder, options=("--no-merge",))
    branch = f"orchestrate/{SPEC}/a"
    tip = git(repo, "rev-parse", INTEGRATION)
    merged = git(repo, "commit-tree", f"{branch}^{{tree}}", "-p", tip, "-p", branch,
                 input="merged by hand\n")
    git(repo, "update-ref", f"refs/heads/{INTEGRATION}", merged, tip)
    build(repo, recorder)
    assert statuses(repo) == {"a": "completed"}
    assert recorder.invocations() == Counter(a=1)
    assert git(repo, "rev-parse", INTEGRATION) == merged
    assert merges_per_subtask(repo) == Counter()


def test_failed_subtasks_run_again_only_with_retry_failed(repo: Path, recorder: Recorder,
                                                          tmp_path: Path) -> None:
    broken = tmp_path / "x-is-broken"
    broken.touch()
    write_plan(repo, SPEC, plan_of(phase(1, ["x", "y"], parallel=True), phase(2, ["z"])))
    agent = ("--fail-while", f"x={broken}")
    build(repo, recorder, *agent, options=("--retries", "0"), check=1)
    assert statuses(repo) == {"x": "failed", "y": "completed", "z": "blocked"}
    build(repo, recorder, *agent, options=("--retries", "0"), check=1)
    assert recorder.invocations() == Counter(x=1, y=1)
    assert statuses(repo) == {"x": "failed", "y": "completed", "z": "blocked"}
    broken.unlink()
    build(repo, recorder, *agent, options=("--retries", "0"), check=1)
    assert recorder.invocations() == Counter(x=1, y=1)
    build(repo, recorder, *agent, options=("--retries", "0", "--retry-failed"))
    assert recorder.invocations() == Counter(x=2, y=1, z=1)
    assert statuses(repo) == dict.fromkeys("xyz", "completed")
    assert merges_per_subtask(repo) == Counter(x=1, y=1, z=1)


def test_a_conflict_fixed_by_hand_unblocks_the_next_phase(repo: Path,
                                                         recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["z"])))
    build(repo, recorder, "--append", "a=shared.txt", "--append", "b=shared.txt",
          options=("--resolve", "manual"), check=1)
    assert statuses(repo) == {"a": "completed", "b": "conflict", "z": "blocked"}
    assert subtasks(repo)["b"]["orchestrate"]["merge"] == "conflict"
    # the user resolves b on its branch, in b's worktree, by merging the integration branch
    worktree = repo / ".orchestrate" / "worktrees" / SPEC / "b"
    conflicted = subprocess.run(["git", "merge", "-q", INTEGRATION], cwd=worktree,
                                capture_output=True, check=False)
    assert conflicted.returncode == 1
    (worktree / "shared.txt").write_text("edit by a\nedit by b\n")
    git(worktree, "commit", "-qam", "resolve shared.txt")
    run_cli(repo, "merge", SPEC, check=0)
    assert statuses(repo) == {"a": "completed", "b": "completed", "z": "blocked"}
    build(repo, recorder)
    assert statuses(repo) == dict.fromkeys("abz", "completed")
    assert recorder.invocations() == Counter(a=1, b=1, z=1)
    assert git(repo, "show", f"{INTEGRATION}:shared.txt") == "edit by a\nedit by b"
    assert {"a.txt", "b.txt", "z.txt"} <= branch_files(repo, INTEGRATION)


def test_overlaps_with_siblings_merged_in_an_earlier_run_are_flagged(repo: Path,
                                                                    recorder: Recorder,
                                                                    tmp_path: Path) -> None:
    flag = tmp_path / "b-is-not-ready"
    flag.write_text("")
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    agent = ("--append", "*=shared.txt", "--fail-while", f"b={flag}")
    build(repo, recorder, *agent, check=1)
    assert statuses(repo) == {"a": "completed", "b": "failed"}
    flag.unlink()
    build(repo, recorder, *agent, options=("--retry-failed",))
    assert statuses(repo) == {"a": "completed", "b": "completed"}
    assert subtasks(repo)["b"]["orchestrate"]["overlaps"] == ["shared.txt"]
