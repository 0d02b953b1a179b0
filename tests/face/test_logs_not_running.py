"""`orchestrate logs SPEC ID -f` on a subtask the running build will not run (completed,
failed without --retry-failed, waiting for such a one, not among --only) prints its log and
ends at once, saying why on stderr (exit 0: SPEC's `-f` ending by itself); with no build
running it says that. The build is the real spawned CLI, held running by a command agent that
waits for a file; the earlier subtasks were built in this process."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

from tests.conftest import ORCHESTRATE, phase, plan_of, write_plan
from tests.inprocess import FakeAgent, build_in_process
from tests.watchdog import kill_tree

SPEC = "001-follow"
DEADLINE_S = 60.0
AT_ONCE_S = 30.0  # a follower that waited for the build would wait for ever: the agent waits


def logs_f(repo: Path, subtask: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ORCHESTRATE, "logs", SPEC, subtask, "-f"], cwd=repo, text=True,
                          capture_output=True, timeout=AT_ONCE_S, check=False)


def started(events: Path, subtask: str) -> bool:
    return events.exists() and any(
        json.loads(line)["kind"] == "subtask_started" and json.loads(line)["subtask"] == subtask
        for line in events.read_text().splitlines())


def wait_started(build: subprocess.Popen[bytes], events: Path, subtask: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not started(events, subtask):
        assert build.poll() is None, f"the build ended before {subtask} started"
        assert time.monotonic() < deadline, f"{subtask} never started"
        time.sleep(0.05)


def test_logs_f_on_a_subtask_this_build_will_not_run_ends_at_once_saying_why(
        repo: Path, tmp_path: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["done", "broke", "slow"], parallel=True),
                                          phase(2, ["after"], depends_on=[1])))
    assert build_in_process(repo, SPEC, FakeAgent(script={"broke": ["fail"]}), retries=0,
                            only="done,broke") == 1
    go, events = tmp_path / "go", plan.parent / "logs" / "events.jsonl"
    agent = (f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.05; done; "
             'echo work > "$ORCHESTRATE_SUBTASK_ID.txt"')
    build = subprocess.Popen([*ORCHESTRATE, "build", SPEC, "--agent-command", agent],
                             cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             process_group=0)
    try:
        wait_started(build, events, "slow")
        done = logs_f(repo, "done")
        assert done.returncode == 0, done.stderr
        assert "attempt 1 of done" in done.stdout  # its log so far
        assert done.stderr == "done is completed; not running in this build\n"
        broke = logs_f(repo, "broke")
        assert broke.returncode == 0, broke.stderr
        assert "attempt 1 of broke" in broke.stdout
        assert broke.stderr == ("broke is failed (the running build has no --retry-failed); "
                                "not running in this build\n")
        after = logs_f(repo, "after")
        assert after.returncode == 0, after.stderr
        assert after.stderr == ("after is pending and waits for broke (failed), which does not "
                                "run in this build either; not running in this build\n")
        go.write_text("")
        assert build.wait(timeout=DEADLINE_S) == 1  # broke failed, after blocked
    finally:
        if build.poll() is None:
            kill_tree(build.pid)
            build.wait()
    ended = logs_f(repo, "slow")
    assert ended.returncode == 0
    assert ended.stderr == f"slow is completed; no build of {SPEC} is running\n"


def test_a_subtask_outside_the_running_builds_only_is_not_followed(
        repo: Path, tmp_path: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    go, events = tmp_path / "go", plan.parent / "logs" / "events.jsonl"
    build = subprocess.Popen([*ORCHESTRATE, "build", SPEC, "--only", "a", "--agent-command",
                              f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.05; done; "
                              "echo work > a.txt"], cwd=repo, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, process_group=0)
    try:
        wait_started(build, events, "a")
        other = logs_f(repo, "b")
        assert other.returncode == 0, other.stderr
        assert other.stdout == ""
        assert other.stderr == "b is pending and not among its --only a; not running in this " \
            "build\n"
        go.write_text("")
        assert build.wait(timeout=DEADLINE_S) == 0
    finally:
        if build.poll() is None:
            kill_tree(build.pid)
            build.wait()
