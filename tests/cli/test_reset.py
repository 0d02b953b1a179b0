"""`orchestrate reset SPEC ID [--drop]` and `build --only ID[,ID...]`: one subtask back to
pending (its branch kept as .prev-N or dropped, its worktree removed) and run again alone.
Real builds (the spawned CLI, a shell agent), real git."""

from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path

import pytest

from orchestrator.failpoints import ENV
from tests.conftest import git, phase, plan_of, run_cli, write_plan

SPEC = "001-reset"
PREFIX = f"orchestrate/{SPEC}/"


def agent(flags: Path) -> str:
    """Writes <id>.txt, and fails while a file named after the subtask is in `flags`."""
    return (f"test ! -e {shlex.quote(str(flags))}/$ORCHESTRATE_SUBTASK_ID && "
            "echo $ORCHESTRATE_SUBTASK_ID >> ran && echo $ORCHESTRATE_SUBTASK_ID > "
            "$ORCHESTRATE_SUBTASK_ID.txt")


def statuses(plan: Path) -> dict[str, str]:
    return {s["id"]: s["status"] for p in json.loads(plan.read_text())["phases"]
            for s in p["subtasks"]}


def branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)",
               f"refs/heads/{PREFIX}").splitlines()


@pytest.mark.slow
def test_reset_keeps_the_branch_and_build_only_runs_just_that_subtask(repo: Path,
                                                                      tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "b").write_text("")
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    run_cli(repo, "build", SPEC, "--agent-command", agent(flags), "--keep-worktrees", check=1)
    assert statuses(plan) == {"a": "completed", "b": "failed"}
    worktree = repo / ".orchestrate" / "worktrees" / SPEC / "b"
    assert worktree.exists()
    old_tip = git(repo, "rev-parse", PREFIX + "b")

    done = run_cli(repo, "reset", SPEC, "b", check=0)
    assert f"kept its branch as {PREFIX}b.prev-1" in done.stdout
    assert not worktree.exists()
    assert git(repo, "rev-parse", PREFIX + "b.prev-1") == old_tip
    assert PREFIX + "b" not in branches(repo)
    assert statuses(plan) == {"a": "completed", "b": "pending"}
    record = json.loads(plan.read_text())["phases"][0]["subtasks"][1]["orchestrate"]
    assert "head" not in record
    assert "error" not in record

    (flags / "b").unlink()
    run_cli(repo, "build", SPEC, "--only", "b", "--agent-command", agent(flags), check=0)
    assert statuses(plan) == {"a": "completed", "b": "completed"}

    run_cli(repo, "reset", SPEC, "b", check=0)
    assert PREFIX + "b.prev-2" in branches(repo)
    dropped = run_cli(repo, "reset", SPEC, "b", "--drop", check=0)
    assert "deleted branch" not in dropped.stdout  # no branch left to drop after the reset
    run_cli(repo, "build", SPEC, "--only", "b", "--agent-command", agent(flags), check=0)
    run_cli(repo, "reset", SPEC, "b", "--drop", check=0)
    assert sorted(branches(repo)) == [PREFIX + "a", PREFIX + "b.prev-1", PREFIX + "b.prev-2",
                                      PREFIX + "integration"]


@pytest.mark.slow
def test_only_refuses_unknown_ids_and_unfinished_dependencies(repo: Path,
                                                              tmp_path: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a"]), phase(2, ["b"], depends_on=[1])))
    before = plan.read_text()
    unknown = run_cli(repo, "build", SPEC, "--only", "a,zz", "--agent-command", "true",
                      check=2)
    assert "option --only" in unknown.stderr
    assert "'zz'" in unknown.stderr
    waiting = run_cli(repo, "build", SPEC, "--only", "b", "--agent-command", "true", check=2)
    assert "a (pending)" in waiting.stderr
    assert plan.read_text() == before
    assert branches(repo) == []  # nothing created
    run_cli(repo, "reset", SPEC, "nope", check=2)


@pytest.mark.slow
def test_a_reset_killed_after_moving_the_branch_is_finished_by_the_next(repo: Path,
                                                                       tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    run_cli(repo, "build", SPEC, "--agent-command", agent(flags), check=0)
    crashed = run_cli(repo, "reset", SPEC, "a", env={ENV: "reset-branch-moved"})
    assert crashed.returncode == -signal.SIGKILL
    assert statuses(plan) == {"a": "completed"}
    run_cli(repo, "reset", SPEC, "a", check=0)
    assert statuses(plan) == {"a": "pending"}
    assert branches(repo) == [PREFIX + "a.prev-1", PREFIX + "integration"]
