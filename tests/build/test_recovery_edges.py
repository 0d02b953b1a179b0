"""Three edges of recovery: a commit made just before a crash is adopted, not redone; what setup
and verification commands leave running is stopped; SIGTERM during start-up exits 130."""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from orchestrator.failpoints import ENV
from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Launch,
    Recorder,
    agent_command,
    alive,
    merges_per_subtask,
    orchestrate_branches,
    plan_path,
    statuses,
    subtasks,
    wait_until,
    worktree_paths,
)
from tests.conftest import git, phase, plan_of, run_cli, write_plan

pytestmark = pytest.mark.slow  # real builds killed and resumed


def test_a_commit_made_just_before_a_crash_is_merged_without_running_the_agent_again(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"]), phase(2, ["b", "c"], parallel=True)))
    command = agent_command()
    crashed = run_cli(repo, "build", SPEC, "--agent-command", command,
                      env={**recorder.env, ENV: "work-committed"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    record = subtasks(repo)["a"]
    assert record["status"] == "in_progress"
    assert "head" not in record["orchestrate"]  # the status write never happened
    commit = git(repo, "rev-parse", f"orchestrate/{SPEC}/a")
    assert commit != record["orchestrate"]["base"]
    assert "Orchestrate-Subtask: a" in git(repo, "log", "-1", "--format=%B", commit)

    resumed = run_cli(repo, "build", SPEC, "--agent-command", command, env=recorder.env,
                      check=0)
    assert "[a] recovered the commit" in resumed.stdout
    assert recorder.invocations() == {"a": 1, "b": 1, "c": 1}, resumed.stdout
    assert statuses(repo) == dict.fromkeys(["a", "b", "c"], "completed")
    assert merges_per_subtask(repo) == {"a": 1, "b": 1, "c": 1}
    adopted = subtasks(repo)["a"]["orchestrate"]
    assert adopted["head"] == commit
    assert git(repo, "rev-parse", f"{adopted['merge_commit']}^2") == commit
    assert git(repo, "show", f"{INTEGRATION}:a.txt") == "work of a"


DAEMON = """\
import json, os, subprocess, sys
name = sys.argv[1]
daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"],
                          start_new_session=True)
seen = {k: v for k, v in os.environ.items() if k.startswith("ORCHESTRATE_")}
with open(os.path.join(os.environ["HOME"], name + ".json"), "w") as out:
    json.dump({"pid": daemon.pid, "env": seen}, out)
"""


def test_daemons_left_by_setup_and_verification_commands_are_stopped(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    (repo / "orchestrate.toml").write_text(
        f"setup = [{json.dumps(f'{sys.executable} {script} setup')}]\n")
    plan = plan_of(phase(1, ["a"]))
    plan["phases"][0]["subtasks"][0]["verification"] = {
        "type": "command", "run": f"{sys.executable} {script} verification"}
    write_plan(repo, SPEC, plan)
    run_cli(repo, "build", SPEC, "--agent-command", agent_command(), env=recorder.env, check=0)
    worktree = str(repo / ".orchestrate" / "worktrees" / SPEC / "a")
    home = Path(os.environ["HOME"])
    for name in ("setup", "verification"):
        started = json.loads((home / f"{name}.json").read_text())
        assert started["env"]["ORCHESTRATE_WORKTREE"] == worktree
        assert started["env"]["ORCHESTRATE_SUBTASK_ID"] == "a"
        assert started["env"]["ORCHESTRATE_BRANCH"] == f"orchestrate/{SPEC}/a"
        wait_until(lambda pid=started["pid"]: not alive(pid), timeout=10,
                   what=f"the daemon of the {name} command to be stopped")
    assert statuses(repo) == {"a": "completed"}


def test_sigterm_during_start_up_exits_130_with_nothing_created(
        repo: Path, recorder: Recorder, launch: Launch, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    plan_before = plan_path(repo).read_bytes()
    # The build's first git command reads the repository's configuration, which includes a
    # FIFO: it waits there, in start-up, until the test lets it go.
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    config = repo / ".git" / "config"
    original = config.read_text()
    config.write_text(f"{original}[include]\n\tpath = {fifo}\n")
    writer = None
    try:
        build = launch(repo, SPEC, "--agent-command", agent_command())
        deadline = time.monotonic() + 30
        while writer is None:
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # no reader yet
                    raise
                assert time.monotonic() < deadline, "the build never read its git config"
                assert build.process.poll() is None, build.text()
                time.sleep(0.02)
        build.process.send_signal(signal.SIGTERM)
        code = build.wait(timeout=30)
    finally:
        config.write_text(original)
        if writer is not None:
            os.close(writer)
    assert code == 130, build.text()
    assert "interrupted" in build.text()
    assert orchestrate_branches(repo) == []
    assert worktree_paths(repo) == [str(repo)]
    assert not (repo / ".orchestrate" / "worktrees").exists()
    assert plan_path(repo).read_bytes() == plan_before
    assert recorder.starts() == []
