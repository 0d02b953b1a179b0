"""Stopping agents: --timeout kills an agent's whole process group, Ctrl-C (SIGINT/SIGTERM) stops
a build within 10 s and leaves a resumable plan, and a second build of a spec is refused."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Launch,
    Recorder,
    agent_command,
    alive,
    branch_files,
    merges_per_subtask,
    plan_path,
    statuses,
    subtasks,
    wait_until,
)
from tests.conftest import phase, plan_of, run_cli, write_plan

pytestmark = pytest.mark.slow  # real builds stopped by signals and timeouts


@pytest.mark.parametrize("grandchild", ["plain", "ignore-term"])
def test_timeout_kills_the_agent_and_its_grandchild(repo: Path, recorder: Recorder,
                                                     grandchild: str) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["hang", "quick"], parallel=True)))
    started = time.monotonic()
    run_cli(repo, "build", SPEC, "--timeout", "2", "--retries", "0", "--agent-command",
            agent_command("--grandchild", f"hang={grandchild}", "--hang", "hang"),
            env=recorder.env, check=1)
    elapsed = time.monotonic() - started
    (child,) = recorder.events("child", "hang")
    (start,) = recorder.starts("hang")
    for pid in (start["pid"], child["child"]):
        assert not alive(pid), f"process {pid} outlived the timeout"
    assert elapsed < 20
    assert statuses(repo) == {"hang": "failed", "quick": "completed"}
    assert "timed out" in subtasks(repo)["hang"]["orchestrate"]["error"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_agent_and_leaves_a_resumable_plan(
        repo: Path, recorder: Recorder, launch: Launch, signum: int) -> None:
    ids = ["a", "b", "c", "d"]
    write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True), phase(2, ["e"])))
    build = launch(repo, SPEC, "--max-parallel", "3", "--agent-command",
                   agent_command("--grandchild", "*=ignore-term", "--ignore-term", "*",
                                 "--hang", "*"))
    wait_until(lambda: len(recorder.starts()) == 3 and len(recorder.events("child")) == 3,
               timeout=30, what="three agents and their grandchildren to start")
    build.process.send_signal(signum)
    try:
        build.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("the build did not stop within 10 s of the signal")
    assert build.process.returncode == 130, build.text()
    for pid in recorder.pids():
        assert not alive(pid), f"process {pid} outlived the build"
    assert statuses(repo) == dict.fromkeys([*ids, "e"], "pending")
    json.loads(plan_path(repo).read_text())
    # the next build starts the interrupted subtasks over, in their own (cleaned) worktrees
    interrupted = {e["id"]: e["cwd"] for e in recorder.starts()}
    for cwd in interrupted.values():
        Path(cwd, "half-done.txt").write_text("left by the interrupted agent\n")
    run_cli(repo, "build", SPEC, "--agent-command", agent_command(), env=recorder.env, check=0)
    assert merges_per_subtask(repo) == Counter(dict.fromkeys([*ids, "e"], 1))
    rerun = {e["id"]: e["cwd"] for e in recorder.starts()[len(interrupted):]}
    assert {i: rerun[i] for i in interrupted} == interrupted
    assert "half-done.txt" not in branch_files(repo, INTEGRATION)


def test_a_second_build_of_the_spec_is_refused_naming_the_first(
        repo: Path, recorder: Recorder, launch: Launch) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    first = launch(repo, SPEC, "--agent-command", agent_command("--hang", "a"))
    wait_until(lambda: len(recorder.starts()) == 1, timeout=30, what="the first agent")
    second = run_cli(repo, "build", SPEC, "--agent-command", agent_command(),
                     env=recorder.env, check=3)
    assert str(first.pid) in second.stderr
    assert len(recorder.starts()) == 1
    assert first.process.poll() is None
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(timeout=10) == 130, first.text()
