"""Conflicts go back to the agent (SPEC 10): resolution rounds on real repositories with the
scripted command agent (tests/agents/agent.py, `--resolve ID=MODE`), Ctrl-C and kill -9 in a
round, and every resolution failpoint."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orchestrator.failpoints import ENV, RESOLUTION_FAILPOINTS
from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Launch,
    Recorder,
    agent_command,
    build,
    statuses,
    subtasks,
    wait_until,
)
from tests.conftest import claude_env, git, phase, plan_of, read_json, run_cli, write_plan
from tests.fake_anthropic import FakeAnthropic, bash, editor, reply

pytestmark = pytest.mark.slow  # real builds with resolution rounds, kills at every failpoint

BRANCH_B = f"orchestrate/{SPEC}/b"
CONFLICT = ("--append", "a=shared.txt", "--append", "b=shared.txt", "--append", "c=shared.txt")


def conflicting_pair(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["z"])))


def integrated(repo: Path) -> Counter[str]:
    """Merge commits of the integration branch itself per subtask (a resolution's merge commit
    on a subtask branch carries the subtask's trailers too, and is reachable from it)."""
    bodies = git(repo, "log", "--merges", "--first-parent", "--format=%B%x00", INTEGRATION)
    return Counter(line.removeprefix("Orchestrate-Subtask:").strip()
                   for body in bodies.split("\0") for line in body.splitlines()
                   if line.startswith("Orchestrate-Subtask:"))


def rounds(recorder: Recorder, subtask: str = "b") -> list[dict[str, Any]]:
    return [e for e in recorder.starts(subtask) if e.get("resolving")]


def worktree_of(repo: Path, subtask: str = "b") -> Path:
    return repo / ".orchestrate" / "worktrees" / SPEC / subtask


def merge_in_progress(worktree: Path) -> bool:
    done = subprocess.run(["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=worktree,
                          capture_output=True, check=False)
    return done.returncode == 0


def test_a_same_line_conflict_is_resolved_by_the_agent_in_round_one(
        repo: Path, recorder: Recorder) -> None:
    conflicting_pair(repo)
    build(repo, recorder, *CONFLICT, "--resolve", "b=both")
    assert statuses(repo) == dict.fromkeys("abz", "completed")
    shared = git(repo, "show", f"{INTEGRATION}:shared.txt").splitlines()
    assert sorted(shared) == ["edit by a", "edit by b"]
    assert integrated(repo) == Counter(a=1, b=1, z=1)
    # the resolution is a merge commit on b's own branch, with its trailer
    record = subtasks(repo)["b"]["orchestrate"]
    resolution = git(repo, "log", "-1", "--format=%P%n%B", f"{BRANCH_B}").splitlines()
    first_parent, merged = resolution[0].split()
    assert git(repo, "merge-base", "--is-ancestor", merged, INTEGRATION) == ""
    assert "Orchestrate-Resolution: 1" in resolution
    assert "Orchestrate-Subtask: b" in resolution
    assert git(repo, "show", f"{first_parent}:shared.txt") == "edit by b"
    assert git(repo, "show", f"{merged}:shared.txt") == "edit by a"
    assert (record["resolutions"], "resolving" in record) == (1, False)
    # the agent got one round, with a prompt naming the path and the other side
    (round_one,) = rounds(recorder)
    assert round_one["resolving"] == "1"
    assert round_one["branch"] == f"refs/heads/{BRANCH_B}"
    assert "shared.txt" in round_one["prompt"]
    assert "- a: Do a" in round_one["prompt"]
    assert "+edit by a" in round_one["prompt"]
    assert "+edit by b" in round_one["prompt"]
    assert recorder.invocations() == Counter(a=1, b=2, z=1)
    report = read_json(repo / ".orchestrate" / "specs" / SPEC / "conflict_report.json")
    assert report["resolved"] == [{"subtask": "b", "round": 1, "kind": "conflict",
                                   "paths": ["shared.txt"], "subtasks": ["a"]}]
    markdown = (repo / ".orchestrate" / "specs" / SPEC / "conflict_report.md").read_text()
    assert "resolved by agent in round 1" in markdown


def test_markers_left_exhaust_the_rounds_and_the_subtask_stays_in_conflict(
        repo: Path, recorder: Recorder) -> None:
    conflicting_pair(repo)
    build(repo, recorder, *CONFLICT, "--resolve", "b=leave", check=1)
    assert statuses(repo) == {"a": "completed", "b": "conflict", "z": "blocked"}
    record = subtasks(repo)["b"]["orchestrate"]
    assert record["resolutions"] == 2
    assert record["error"].startswith("resolution round 2 of 2 failed: conflict markers left "
                                      "in shared.txt")
    assert [r["resolving"] for r in rounds(recorder)] == ["1", "2"]
    # the integration branch never got b; b's branch and worktree are as before the rounds
    assert integrated(repo) == Counter(a=1)
    assert git(repo, "show", f"{INTEGRATION}:shared.txt") == "edit by a"
    assert git(repo, "rev-parse", BRANCH_B) == record["head"]
    assert git(repo, "rev-list", "--count", "--merges", BRANCH_B) == "0"
    worktree = worktree_of(repo)
    assert not merge_in_progress(worktree)
    assert git(worktree, "symbolic-ref", "HEAD") == f"refs/heads/{BRANCH_B}"
    assert git(worktree, "status", "--porcelain") == ""


def test_a_conflict_in_a_sequential_phase_is_resolved_before_the_next_subtask(
        repo: Path, recorder: Recorder) -> None:
    # two independent sequential phases run at the same time from the same head
    write_plan(repo, SPEC, plan_of(phase(1, ["a"]), phase(2, ["b", "c"], depends_on=[])))
    build(repo, recorder, "--append", "a=shared.txt", "--append", "b=shared.txt",
          "--sleep", "a=1", "--sleep", "b=1", "--resolve", "*=both")
    assert statuses(repo) == dict.fromkeys("abc", "completed")
    records = subtasks(repo)
    assert sum(records[i]["orchestrate"].get("resolutions", 0) for i in "ab") == 1
    assert sorted(git(repo, "show", f"{INTEGRATION}:shared.txt").splitlines()) == [
        "edit by a", "edit by b"]
    assert integrated(repo) == Counter(a=1, b=1, c=1)


def test_used_up_rounds_wait_for_retry_failed_which_gives_fresh_ones(
        repo: Path, recorder: Recorder) -> None:
    conflicting_pair(repo)
    build(repo, recorder, *CONFLICT, "--resolve", "b=leave", check=1)
    assert len(rounds(recorder)) == 2
    status = run_cli(repo, "status", SPEC, check=0).stdout
    assert "resolution rounds: 2" in [line.strip() for line in status.splitlines()]
    build(repo, recorder, *CONFLICT, "--resolve", "b=both", check=1)
    assert len(rounds(recorder)) == 2  # no round without --retry-failed
    build(repo, recorder, *CONFLICT, "--resolve", "b=both", options=("--retry-failed",))
    assert [r["resolving"] for r in rounds(recorder)] == ["1", "2", "3"]
    assert statuses(repo) == dict.fromkeys("abz", "completed")
    assert "Orchestrate-Resolution: 3" in git(repo, "log", "-1", "--format=%B", BRANCH_B)


def test_an_agent_that_commits_or_aborts_the_merge_fails_its_round(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b", "c"], parallel=True)))
    build(repo, recorder, *CONFLICT, "--resolve", "b=commit", "--resolve", "c=abort",
          options=("--resolve-attempts", "1"), check=1)
    assert statuses(repo) == {"a": "completed", "b": "conflict", "c": "conflict"}
    errors = {i: subtasks(repo)[i]["orchestrate"]["error"] for i in "bc"}
    assert "the agent committed during the resolution round" in errors["b"]
    assert "the agent aborted the merge" in errors["c"]
    record = subtasks(repo)["b"]["orchestrate"]
    assert git(repo, "rev-parse", BRANCH_B) == record["head"]  # its commit is undone
    assert integrated(repo) == Counter(a=1)


def test_resolve_manual_runs_no_round(repo: Path, recorder: Recorder) -> None:
    conflicting_pair(repo)
    build(repo, recorder, *CONFLICT, "--resolve", "b=both", options=("--resolve", "manual"),
          check=1)
    assert statuses(repo) == {"a": "completed", "b": "conflict", "z": "blocked"}
    assert rounds(recorder) == []
    assert recorder.invocations() == Counter(a=1, b=1)
    assert "resolutions" not in subtasks(repo)["b"]["orchestrate"]
    assert git(worktree_of(repo), "symbolic-ref", "HEAD") == f"refs/heads/{BRANCH_B}"


def test_an_overlap_blocked_by_overlap_block_is_resolved_by_merging_the_head(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    build(repo, recorder, "--append", "*=src/app.py", "--resolve", "b=both",
          options=("--overlap", "block", "--resolve-attempts", "1"))
    assert statuses(repo) == {"a": "completed", "b": "completed"}
    (round_one,) = rounds(recorder)
    assert "src/app.py" in round_one["prompt"]
    assert "Orchestrate-Resolution: 1" in git(repo, "log", "-1", "--format=%B", BRANCH_B)


def test_ctrl_c_in_a_round_aborts_the_merge_and_returns_to_conflict(
        repo: Path, recorder: Recorder, launch: Launch) -> None:
    conflicting_pair(repo)
    running = launch(repo, SPEC, "--agent-command",
                     agent_command(*CONFLICT, "--resolve", "b=hang"))
    wait_until(lambda: bool(rounds(recorder)), timeout=60, what="a resolution round")
    worktree = worktree_of(repo)
    assert merge_in_progress(worktree)
    running.process.send_signal(signal.SIGINT)
    try:
        running.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("the build did not stop within 10 s of Ctrl-C")
    assert running.process.returncode == 130, running.text()
    assert statuses(repo) == {"a": "completed", "b": "conflict", "z": "pending"}
    record = subtasks(repo)["b"]["orchestrate"]
    assert "resolving" not in record
    assert record["resolutions"] == 0
    assert not merge_in_progress(worktree)
    assert git(worktree, "status", "--porcelain") == ""
    # the next build resumes the rounds b has left, without --retry-failed
    build(repo, recorder, *CONFLICT, "--resolve", "b=both")
    assert statuses(repo) == dict.fromkeys("abz", "completed")


def test_kill_9_in_a_round_then_the_next_build_resumes_it(
        repo: Path, recorder: Recorder, launch: Launch) -> None:
    conflicting_pair(repo)
    running = launch(repo, SPEC, "--agent-command",
                     agent_command(*CONFLICT, "--resolve", "b=hang"))
    wait_until(lambda: bool(rounds(recorder)), timeout=60, what="a resolution round")
    running.process.kill()
    running.process.wait(timeout=10)
    assert statuses(repo)["b"] == "in_progress"
    assert subtasks(repo)["b"]["orchestrate"]["resolving"] == 1
    assert merge_in_progress(worktree_of(repo))
    out = build(repo, recorder, *CONFLICT, "--resolve", "b=both")
    assert "stopped 1 agent process group(s)" in out
    assert statuses(repo) == dict.fromkeys("abz", "completed")
    assert [r["resolving"] for r in rounds(recorder)] == ["1", "1"]
    assert subtasks(repo)["b"]["orchestrate"]["resolutions"] == 1
    assert integrated(repo) == Counter(a=1, b=1, z=1)


@pytest.mark.parametrize("name", RESOLUTION_FAILPOINTS)
def test_a_crash_at_each_resolution_failpoint_loses_nothing(
        repo: Path, recorder: Recorder, name: str) -> None:
    conflicting_pair(repo)
    mode = "leave" if name == "resolution-failed-recorded" else "both"
    done = run_cli(repo, "build", SPEC, "--agent-command",
                   agent_command(*CONFLICT, "--resolve", f"b={mode}"),
                   env={**recorder.env, ENV: name})
    assert done.returncode == -signal.SIGKILL, f"{name} was never reached:\n{done.stdout}"
    build(repo, recorder, *CONFLICT, "--resolve", "b=both")
    assert statuses(repo) == dict.fromkeys("abz", "completed")
    assert integrated(repo) == Counter(a=1, b=1, z=1)
    assert sorted(git(repo, "show", f"{INTEGRATION}:shared.txt").splitlines()) == [
        "edit by a", "edit by b"]
    assert not worktree_of(repo).exists() or not merge_in_progress(worktree_of(repo))


def test_the_claude_agent_resolves_the_conflict_with_its_editor(
        repo: Path, fake_api: FakeAnthropic) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-alpha", "sub-beta"], parallel=True)))
    for name in ("alpha", "beta"):
        fake_api.script(f"sub-{name}", [
            reply(editor("create", path="shared.txt", file_text=f"{name}\n")), reply("Done.")])
    block = f"<<<<<<< HEAD\nbeta\n=======\nalpha\n>>>>>>> {INTEGRATION}\n"
    marker = "into subtask sub-beta (round 1"
    fake_api.script(marker, [
        reply("Looking at the conflict.", editor("view", path="shared.txt"),
              bash("git status --short")),
        reply(editor("str_replace", path="shared.txt", old_str=block, new_str="alpha\nbeta\n")),
        reply("Kept both lines."),
    ])
    run_cli(repo, "build", SPEC, "--agent", "claude", env=claude_env(fake_api), check=0)
    assert fake_api.problems == []
    viewed, status, replaced = fake_api.tool_results(marker)
    assert "<<<<<<< HEAD" in viewed["content"]
    assert "AA shared.txt" in status["content"]
    assert not replaced["is_error"]
    assert git(repo, "show", f"{INTEGRATION}:shared.txt") == "alpha\nbeta"
    (first, *_) = fake_api.bodies(marker)
    assert "middle of a merge" in first["system"][0]["text"]
    assert "shared.txt (add/add): conflicts with sub-alpha" in str(first["messages"][0])
    beta = subtasks(repo)["sub-beta"]
    assert (beta["status"], beta["orchestrate"]["resolutions"]) == ("completed", 1)
    alpha = subtasks(repo)["sub-alpha"]  # two turns; beta had two, then three in its round
    assert (beta["orchestrate"]["usage"]["output_tokens"]
            > alpha["orchestrate"]["usage"]["output_tokens"] > 0)
    message = git(repo, "log", "-1", "--format=%B", f"orchestrate/{SPEC}/sub-beta")
    assert "Orchestrate-Resolution: 1" in message
    assert "Orchestrate-Agent: claude (claude-sonnet-5-5)" in message


def test_a_bad_resolve_setting_is_refused_before_anything_happens(repo: Path) -> None:
    path = write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    before = path.read_bytes()
    (repo / "orchestrate.toml").write_text('resolve = "sometimes"\n')
    done = run_cli(repo, "build", SPEC, "--agent-command", agent_command(), check=2)
    assert "orchestrate.toml key `resolve` must be one of agent, manual" in done.stderr
    (repo / "orchestrate.toml").write_text("resolve_attempts = -1\n")
    done = run_cli(repo, "build", SPEC, "--agent-command", agent_command(), check=2)
    assert "`resolve_attempts` must not be negative" in done.stderr
    assert path.read_bytes() == before
    assert git(repo, "branch", "--list", "orchestrate/*") == ""
