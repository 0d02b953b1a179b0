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


@pytest.mark.slow
def test_a_hook_planted_in_the_users_own_hooks_path_is_undone(repo: Path, tmp_path: Path) -> None:
    """`core.hooksPath`'s folder is fingerprinted too (read as the user set it, not as the
    `-c core.hooksPath=/dev/null` of orchestrate's own git)."""
    hooks = tmp_path / "my-hooks"
    hooks.mkdir()
    (hooks / "pre-push").write_text("#!/bin/sh\nexit 0\n")
    git(repo, "config", "core.hooksPath", str(hooks))
    agent = tmp_path / "agent.sh"
    agent.write_text('echo work > "$ORCHESTRATE_SUBTASK_ID.txt"\n'
                     '[ "$ORCHESTRATE_ATTEMPT" = 1 ] || exit 0\n'
                     f"printf '#!/bin/sh\\ntouch {tmp_path}/SPY\\n' > {hooks}/post-commit\n")
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["plant"])))
    done = run_cli(repo, "build", "001", "--agent-command", f"sh {agent}", check=0)
    assert f"changed the shared repository: {hooks}/post-commit added" in done.stdout
    assert subtasks(plan_path)["plant"]["orchestrate"]["attempts"] == 2
    assert sorted(p.name for p in hooks.iterdir()) == ["pre-push"]
