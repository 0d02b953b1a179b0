"""The plan as shared state under stress: kill -9 of the whole build at random moments, then a
rerun that completes everything and merges each branch exactly once; and another program
updating the plan under its lock while a build runs loses nothing."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.plan.model import Plan
from orchestrator.plan.store import PlanStore
from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Build,
    Launch,
    Recorder,
    agent_command,
    alive,
    branch_files,
    kill_hard,
    merges_per_subtask,
    plan_path,
    processes_with_env,
    statuses,
    wait_until,
)
from tests.conftest import phase, plan_of, run_cli, write_plan

pytestmark = pytest.mark.slow  # kill -9 of real builds at random moments

IDS = ["p1", "p2", "p3", "p4", "s1", "s2", "q1", "q2"]


def crash(build: Build, recorder: Recorder) -> None:
    """SIGKILL the build, then every agent's process group, as a power cut would."""
    os.kill(build.pid, signal.SIGKILL)
    build.process.wait()
    time.sleep(0.3)  # an agent the build started just before dying has recorded itself by now
    for pgid in {e["pgid"] for e in recorder.starts()}:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    marker = f"ORCH_TEST_RECORD={recorder.path}"
    kill_hard(processes_with_env(marker))  # git commands the build had running, if any
    wait_until(lambda: not processes_with_env(marker), timeout=10, what="the killed processes")


def test_kill_9_at_random_moments_then_a_rerun_merges_everything_once(
        repo: Path, recorder: Recorder, launch: Launch) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, IDS[:4], parallel=True), phase(2, IDS[4:6]),
                                   phase(3, IDS[6:], parallel=True)))
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    command = agent_command("--sleep", "*=0.5")
    for round_ in range(5):
        build = launch(repo, SPEC, "--max-parallel", "2", "--agent-command", command)
        time.sleep(chance.uniform(0.2, 2.5))
        crash(build, recorder)
        json.loads(plan_path(repo).read_text())  # readable after every crash
        print(f"seed {seed} round {round_}: {statuses(repo)}")
    done = run_cli(repo, "build", SPEC, "--agent-command", command, env=recorder.env)
    assert done.returncode == 0, f"seed {seed}\n{done.stdout}\n{done.stderr}"
    assert statuses(repo) == dict.fromkeys(IDS, "completed"), f"seed {seed}"
    assert merges_per_subtask(repo) == Counter(dict.fromkeys(IDS, 1)), f"seed {seed}"
    assert {f"{i}.txt" for i in IDS} <= branch_files(repo, INTEGRATION)
    assert not [pid for pid in recorder.pids() if alive(pid)]


def test_another_writer_under_the_lock_loses_nothing(repo: Path, recorder: Recorder,
                                                     launch: Launch) -> None:
    ids = [f"t{i}" for i in range(10)]
    write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True)))
    build = launch(repo, SPEC, "--max-parallel", "2", "--agent-command",
                   agent_command("--sleep", "*=0.3"))
    wait_until(lambda: len(recorder.starts()) > 0, timeout=30, what="the first agent")
    store = PlanStore(plan_path(repo).parent)

    def bump(plan: Plan) -> tuple[str, ...]:
        plan.raw["external_counter"] = plan.raw.get("external_counter", 0) + 1
        return tuple(s.status for s in plan.subtasks())

    seen = []
    for _ in range(50):  # spread over ~1.5 s, while statuses change every ~0.35 s
        seen.append(store.update(bump))
        time.sleep(0.03)
    assert build.wait(timeout=60) == 0, build.text()
    plan = json.loads(plan_path(repo).read_text())
    assert plan["external_counter"] == 50
    assert statuses(repo) == dict.fromkeys(ids, "completed")
    assert merges_per_subtask(repo) == Counter(dict.fromkeys(ids, 1))
    assert len(set(seen)) >= 3, "the build wrote no statuses between our updates"
