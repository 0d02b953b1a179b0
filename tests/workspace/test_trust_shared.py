"""The shared .git (config, hooks, info) is fingerprinted around every attempt: what an agent
changed there is undone, fails the attempts that were running (retried as usual), and a build
killed while it checks or undoes is finished by the next one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.failpoints import SHARED_GIT_FAILPOINTS
from tests.conftest import git, phase, plan_of, run_cli, write_plan
from tests.fault_support import INTEGRATION, SPEC, checkout_state, merged_subtasks, subtasks
from tests.trust_support import AGENT, attack_env, attacked_build, disarm


def shared_files(repo: Path) -> dict[str, bytes]:
    common = repo / ".git"
    return {str(p.relative_to(common)): p.read_bytes()
            for root in ("config", "info", "hooks")
            for p in ([common / root] if root == "config" else (common / root).rglob("*"))
            if p.is_file()}


@pytest.mark.slow
def test_a_planted_exclude_is_undone_and_drops_nothing(repo: Path, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["plant-exclude"]), phase(2, ["later"])))
    checkout, before = checkout_state(repo), shared_files(repo)
    output = attacked_build(repo, tmp_path, check=0)
    found = subtasks(repo / ".orchestrate/specs" / SPEC / "implementation_plan.json")
    planted = found["plant-exclude"]["orchestrate"]
    assert planted["attempts"] == 2
    assert "changed the shared repository: info/exclude changed" in output
    assert found["later"]["orchestrate"]["attempts"] == 1
    # nothing silently dropped: the .py files of both subtasks are in the integration branch
    assert git(repo, "show", f"{INTEGRATION}:later.py") == "print('later')"
    assert git(repo, "show", f"{INTEGRATION}:plant-exclude.py") == "print('plant-exclude')"
    # as before, plus the line orchestrate adds for its own folder
    assert shared_files(repo) == before | {"info/exclude": before["info/exclude"]
                                           + b"/.orchestrate/\n"}
    assert checkout_state(repo) == checkout


@pytest.mark.slow
def test_a_planted_global_excludes_file_drops_nothing(repo: Path, tmp_path: Path) -> None:
    """The user's own excludes file is not orchestrate's to undo: its `git add` reads the
    file as it was when the build started."""
    ignore = Path(os.environ["HOME"]) / ".config" / "git" / "ignore"
    ignore.parent.mkdir(parents=True, exist_ok=True)
    ignore.write_text("*.log\n")  # the user's own, which keeps working
    write_plan(repo, SPEC, plan_of(phase(1, ["plant-ignore"]), phase(2, ["later"])))
    checkout = checkout_state(repo)
    attacked_build(repo, tmp_path, check=0)
    assert ignore.read_text() == "*.log\n*.py\n"  # what the agent did
    disarm(tmp_path)
    assert git(repo, "show", f"{INTEGRATION}:later.py") == "print('later')"
    assert git(repo, "show", f"{INTEGRATION}:plant-ignore.py") == "print('plant-ignore')"
    assert checkout_state(repo) == checkout


@pytest.mark.slow
@pytest.mark.parametrize("point", SHARED_GIT_FAILPOINTS)
def test_killed_while_checking_or_undoing_the_next_build_finishes(
        repo: Path, tmp_path: Path, point: str) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["plant-config-hooks"]),
                                               phase(2, ["later"])))
    checkout = checkout_state(repo)
    config = (repo / ".git" / "config").read_bytes()
    killed = run_cli(repo, "build", "001", "--agent-command", AGENT,
                     env={**attack_env(tmp_path), "ORCHESTRATE_FAILPOINT": point})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    attacked_build(repo, tmp_path, check=0)
    assert (repo / ".git" / "config").read_bytes() == config
    assert not [p for p in (repo / ".git" / "hooks").iterdir() if not p.name.endswith(".sample")]
    assert {s: v["status"] for s, v in subtasks(plan_path).items()} == {
        "plant-config-hooks": "completed", "later": "completed"}
    assert merged_subtasks(repo) == {"plant-config-hooks": 1, "later": 1}
    assert not (tmp_path / "SPY").exists()
    assert checkout_state(repo) == checkout
