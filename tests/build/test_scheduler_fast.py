"""The scheduler and the runner with an in-process fake agent (tests/inprocess.py): phase
order, the one limit on agents at once, blocking after a failure, retries with feedback.
Real git and a real plan file; no spawned CLI, so each test takes a second or two."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.workspace.placement import Workshop
from tests.conftest import git, phase, plan_of, write_plan
from tests.inprocess import FakeAgent, FakePlacement, build_in_process

SPEC = "001-fast"
INTEGRATION = f"orchestrate/{SPEC}/integration"


@pytest.fixture(autouse=True)
def _plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")


def statuses(plan: Path) -> dict[str, str]:
    data = json.loads(plan.read_text())
    return {s["id"]: s["status"] for p in data["phases"] for s in p["subtasks"]}


def integrated_files(repo: Path) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", INTEGRATION).splitlines())


def test_phases_run_in_order_and_everything_is_integrated(repo: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True),
                                          phase(2, ["c"], depends_on=[1])))
    agent = FakeAgent()
    assert build_in_process(repo, SPEC, agent, max_parallel=2) == 0
    first = [a for a in agent.attempts if a.subtask_id in ("a", "b")]
    (second,) = agent.of("c")
    assert max(a.ended for a in first) <= second.started
    assert statuses(plan) == {"a": "completed", "b": "completed", "c": "completed"}
    assert {"a.txt", "b.txt", "c.txt"} <= integrated_files(repo)


@pytest.mark.parametrize("limit", [1, 2])
def test_one_limit_on_agents_at_once(repo: Path, limit: int) -> None:
    ids = [f"s{i}" for i in range(5)]
    write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True)))
    agent = FakeAgent(work_s=0.1, together=limit)
    assert build_in_process(repo, SPEC, agent, max_parallel=limit) == 0
    assert agent.peak == limit  # reached, never passed
    assert {a.subtask_id for a in agent.attempts} == set(ids)


def test_a_failure_blocks_the_phases_that_depend_on_it(repo: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["bad", "good"], parallel=True),
                                          phase(2, ["later"], depends_on=[1])))
    agent = FakeAgent(script={"bad": ["fail", "fail"]})
    assert build_in_process(repo, SPEC, agent, max_parallel=2, retries=1) == 1
    assert statuses(plan) == {"bad": "failed", "good": "completed", "later": "blocked"}
    assert agent.of("later") == []
    assert "bad.txt" not in integrated_files(repo)


def test_a_retry_gets_the_failed_attempts_feedback(repo: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["flaky"])))
    agent = FakeAgent(script={"flaky": ["fail", "write"]})
    assert build_in_process(repo, SPEC, agent, retries=1) == 0
    first, second = agent.of("flaky")
    assert (first.number, second.number) == (1, 2)
    assert "previous attempt failed" not in first.prompt
    assert "flaky broke on attempt 1" in second.prompt
    assert "traceback: it broke" in second.prompt
    assert statuses(plan) == {"flaky": "completed"}
    assert git(repo, "show", f"{INTEGRATION}:flaky.txt") == "flaky attempt 2"


def test_no_retry_left_fails_the_subtask(repo: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["once"])))
    agent = FakeAgent(script={"once": ["fail", "write"]})
    assert build_in_process(repo, SPEC, agent, retries=0) == 1
    assert len(agent.of("once")) == 1
    assert statuses(plan) == {"once": "failed"}


def test_subtasks_start_in_plan_order(repo: Path) -> None:
    """Within a wave, agents start in the order of the plan (which also decides what gets done
    before --budget runs out or Ctrl-C), whatever order trio wakes the tasks in."""
    ids = [f"s{i}" for i in range(8)]
    plan = write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True)))
    agent = FakeAgent(work_s=0.02)
    assert build_in_process(repo, SPEC, agent, max_parallel=2) == 0
    events = [json.loads(line) for line in
              (plan.parent / "logs" / "events.jsonl").read_text().splitlines()]
    assert [e["subtask"] for e in events if e["kind"] == "subtask_started"] == ids


def test_a_placement_that_is_not_the_repository_builds_the_same(repo: Path,
                                                                  tmp_path: Path) -> None:
    """The driver reaches workspaces only through the placement: with one that clones the
    repository elsewhere, every subtask is still committed, handed back and merged, and no
    worktree of the user's repository is made."""
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["c"])))
    clones = tmp_path / "clones"
    clones.mkdir()
    made: list[FakePlacement] = []

    def placement(shop: Workshop) -> FakePlacement:
        made.append(FakePlacement(shop, clones))
        return made[0]

    assert build_in_process(repo, SPEC, FakeAgent(), placement=placement) == 0
    assert statuses(repo / ".orchestrate/specs" / SPEC / "implementation_plan.json") == {
        "a": "completed", "b": "completed", "c": "completed"}
    assert {"a.txt", "b.txt", "c.txt"} <= integrated_files(repo)
    assert sorted(p.name for p in clones.iterdir()) == ["a", "b", "c"]
    assert ".orchestrate/worktrees" not in git(repo, "worktree", "list")
    for sid in "abc":
        assert [call for call, who in made[0].calls if who == sid] == [
            "workspace", "set_up", "attempt", "hand_back", "release"]
