"""A build killed (SIGKILL) at every named failpoint in turn loses nothing: the next build
finishes every subtask, merges each branch exactly once, and the plan is readable throughout."""

from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.failpoints import ENV, FAILPOINTS
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

ROOT = Path(__file__).parent.parent
CALL = re.compile(r"\b(?:failpoint|crash_if_named)\(\"([a-z-]+)\"\)")
# A parallel phase (one subtask fails its first attempt) then a sequential one.
PLAN = plan_of(phase(1, ["alpha", "flaky-beta"], parallel=True), phase(2, ["gamma"]))
IDS = ("alpha", "flaky-beta", "gamma")


def test_every_failpoint_in_the_code_is_registered_and_every_registered_one_is_used() -> None:
    used = [name for folder in ("orchestrator", "merge") for path in (ROOT / folder).rglob("*.py")
            for name in CALL.findall(path.read_text())]
    assert sorted(used) == sorted(FAILPOINTS)


def test_an_unregistered_failpoint_is_refused() -> None:
    from orchestrator.failpoints import failpoint

    with pytest.raises(ValueError, match="unknown failpoint 'nowhere'"):
        failpoint("nowhere")


@pytest.mark.parametrize("name", FAILPOINTS)
def test_the_next_build_finishes_after_a_crash_at(repo: Path, name: str) -> None:
    plan_path = write_plan(repo, SPEC, PLAN)
    before = checkout_state(repo)
    with PlanReader(plan_path) as reader:
        crashed = build(repo, env={ENV: name})
        assert crashed.returncode == -signal.SIGKILL, (
            f"failpoint {name} was never reached:\n{crashed.stdout}\n{crashed.stderr}")
        crashed_statuses = statuses(plan_path)
        build(repo, check=0)
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
