"""A merge stage that leaves more conflicting subtasks than the worktree pool holds: the build
still exits right after its summary (the watchdog in tests/watchdog.py fails a hang), and every
conflicting subtask has its worktree, on its branch, where the report says it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.buildkit import (
    MANUAL_RESOLVE,
    SPEC,
    Recorder,
    agent_command,
    plan_path,
    statuses,
    subtasks,
)
from tests.conftest import git, phase, plan_of, read_json, run_cli, write_plan

pytestmark = pytest.mark.slow  # a real build with many conflicts

MAX_PARALLEL = 1
POOL = 2 * MAX_PARALLEL  # the build's pool limit
IDS = [f"c{n}" for n in range(3 * POOL + 1)]  # the first merges, 3 x POOL conflict


def _check_worktrees(repo: Path, conflicting: list[str]) -> None:
    markdown = (plan_path(repo).parent / "conflict_report.md").read_text()
    for subtask_id in conflicting:
        branch = f"orchestrate/{SPEC}/{subtask_id}"
        reported = f".orchestrate/worktrees/{SPEC}/{subtask_id}"
        assert f"cd {reported}\n" in markdown
        recorded = subtasks(repo)[subtask_id]["orchestrate"]["worktree"]
        assert Path(recorded) == repo / reported
        worktree = repo / reported
        assert git(worktree, "symbolic-ref", "HEAD") == f"refs/heads/{branch}"
        assert git(worktree, "rev-parse", "HEAD") == git(repo, "rev-parse", branch)
        assert git(worktree, "status", "--porcelain") == ""
        assert f"edit by {subtask_id}" in (worktree / "src" / "app.py").read_text()


def test_three_times_the_pool_in_conflict_and_the_build_still_exits(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, IDS, parallel=True)))
    options = ("--max-parallel", str(MAX_PARALLEL))
    env = {**recorder.env, **MANUAL_RESOLVE}
    out = run_cli(repo, "build", SPEC, *options, "--agent-command",
                  agent_command("--append", "*=src/app.py"), env=env, check=1).stdout
    assert summary(out).endswith(f": 1 completed, {3 * POOL} conflict")
    assert statuses(repo) == {"c0": "completed", **dict.fromkeys(IDS[1:], "conflict")}
    report = read_json(plan_path(repo).parent / "conflict_report.json")
    conflicting = sorted({s for c in report["conflicts"] if c["kind"] == "conflict"
                          for s in c["subtasks"]} - {"c0"})
    assert conflicting == sorted(IDS[1:])
    _check_worktrees(repo, conflicting)

    again = run_cli(repo, "build", SPEC, *options, "--agent-command", agent_command(),
                    env=env, check=1).stdout
    assert summary(again).endswith(f": 1 completed, {3 * POOL} conflict")
    assert len(recorder.starts()) == len(IDS)  # conflicts are not retried without a flag
    _check_worktrees(repo, conflicting)


def summary(out: str) -> str:
    """The build's last event, its summary (`done in <time>: <counts>; <branch> at <sha>`),
    which only its indented next-step lines follow."""
    lines = out.splitlines()
    last = max(n for n, line in enumerate(lines) if line.startswith("done in "))
    assert all(line.startswith("    ") for line in lines[last + 1:]), lines[last:]
    return lines[last].split(";")[0]
