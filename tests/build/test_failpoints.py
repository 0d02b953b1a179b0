"""A build killed (SIGKILL) at every named failpoint in turn loses nothing: the next build
finishes every subtask, merges each branch exactly once, and the plan is readable throughout.
The failpoints of resolution rounds need a conflict: tests/build/test_resolve.py crashes at
those."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.failpoints import (
    CHECK_FAILPOINTS,
    ENV,
    FAILPOINTS,
    OVERLAY_FAILPOINTS,
    PROBE_ROUND_FAILPOINTS,
    RESET_FAILPOINTS,
    RESOLUTION_FAILPOINTS,
    SHARED_GIT_FAILPOINTS,
    STASH_FAILPOINTS,
)
from tests.conftest import git, phase, plan_of, write_plan
from tests.fault_support import (
    SPEC,
    PlanReader,
    build,
    checkout_state,
    merged_subtasks,
    statuses,
    subtasks,
    tree_of,
)

pytestmark = pytest.mark.slow  # a killed build and a rerun per failpoint

ROOT = Path(__file__).resolve().parents[2]
CALL = re.compile(r"\b(?:failpoint|crash_if_named)\(\"([a-z-]+)\"\)")
# A parallel phase (one subtask fails its first attempt) then a sequential one.
PLAN = plan_of(phase(1, ["alpha", "flaky-beta"], parallel=True), phase(2, ["gamma"]))
IDS = ("alpha", "flaky-beta", "gamma")


def test_every_failpoint_in_the_code_is_registered_and_every_registered_one_is_used() -> None:
    used = [name for folder in ("orchestrator", "merge") for path in (ROOT / folder).rglob("*.py")
            for name in CALL.findall(path.read_text())]
    assert sorted(used) == sorted(FAILPOINTS)
    # the check's points need a failing batch: tests/stage/test_check.py crashes at each of them
    assert set(CHECK_FAILPOINTS) <= set(FAILPOINTS)


def test_an_unregistered_failpoint_is_refused() -> None:
    from orchestrator.failpoints import failpoint

    with pytest.raises(ValueError, match="unknown failpoint 'nowhere'"):
        failpoint("nowhere")


@pytest.mark.parametrize("name", [n for n in FAILPOINTS
                                  if n not in CHECK_FAILPOINTS + RESOLUTION_FAILPOINTS
                                  + PROBE_ROUND_FAILPOINTS + SHARED_GIT_FAILPOINTS
                                  + STASH_FAILPOINTS + RESET_FAILPOINTS + OVERLAY_FAILPOINTS])
def test_the_next_build_finishes_after_a_crash_at(repo: Path, name: str) -> None:
    plan_path = write_plan(repo, SPEC, PLAN)
    before = checkout_state(repo)
    # parking (worktree-detached) is what full-checkout worktrees do; overlays are removed
    kind = {"ORCHESTRATE_WORKSPACE": "worktree"} if name == "worktree-detached" else {}
    with PlanReader(plan_path) as reader:
        crashed = build(repo, env={ENV: name, **kind})
        assert crashed.returncode == -signal.SIGKILL, (
            f"failpoint {name} was never reached:\n{crashed.stdout}\n{crashed.stderr}")
        crashed_statuses = statuses(plan_path)
        build(repo, env=kind, check=0)
    assert reader.problems == []
    assert reader.reads > 10
    assert crashed_statuses != dict.fromkeys(IDS, "completed")
    assert statuses(plan_path) == dict.fromkeys(IDS, "completed")
    assert merged_subtasks(repo) == Counter(IDS)
    for subtask_id, record in subtasks(plan_path).items():
        message = git(repo, "log", "-1", "--format=%B", record["orchestrate"]["merge_commit"])
        assert f"Orchestrate-Subtask: {subtask_id}" in message
    assert {f"{i}.txt" for i in IDS} <= set(tree_of(repo))
    assert checkout_state(repo) == before


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_agents_left_running_by_a_killed_build_are_stopped_by_the_next(repo: Path) -> None:
    ids = ["sleeps", "after-sleeper"]
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True)))
    crashed = build(repo, env={ENV: "agent-finished"})  # the second finishes, sleeps runs on
    assert crashed.returncode == -signal.SIGKILL
    orphan = int((Path(os.environ["HOME"]) / "sleeper.pid").read_text())
    assert _running(orphan)
    resumed = build(repo, env={"ROGUE_TAME": "1"}, check=0)
    assert "stopped 1 agent process group(s) left running by an earlier build" in resumed.stdout
    deadline = time.monotonic() + 10
    while _running(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(orphan)
    assert statuses(plan_path) == dict.fromkeys(ids, "completed")
    assert merged_subtasks(repo) == Counter(ids)
