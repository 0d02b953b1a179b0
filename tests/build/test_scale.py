"""200 subtasks in one parallel phase, 20 agents at once: correct results, no leaked file
descriptors or processes, and a bounded number of plan writes per subtask."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import pytest

from orchestrator.build.run import run_build
from orchestrator.face.progress import sink_for
from orchestrator.plan.specs import resolve_spec
from orchestrator.settings import load_settings
from tests.conftest import git, phase, plan_of, read_json, write_plan

pytestmark = pytest.mark.slow  # 200 subtasks, 20 agents at once

SUBTASKS = 200
AGENT = 'printf "%s\\n" "$ORCHESTRATE_SUBTASK_ID" > "out/$ORCHESTRATE_SUBTASK_ID.txt"'


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def child_processes() -> set[str]:
    children: set[str] = set()
    for task in os.listdir("/proc/self/task"):
        children |= set(Path(f"/proc/self/task/{task}/children").read_text().split())
    return children


def test_two_hundred_subtasks_twenty_at_once(repo: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    (repo / "out").mkdir()
    (repo / "out" / ".keep").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "out folder")
    ids = [f"t{n:03d}" for n in range(SUBTASKS)]
    write_plan(repo, "001-scale", plan_of(phase(1, ids, parallel=True)))
    spec = resolve_spec(repo, "001")
    settings = load_settings(repo, {"agent_command": AGENT, "max_parallel": 20, "json": True})
    fds_before, children_before = open_fds(), child_processes()

    assert run_build(spec, settings, open_sink=partial(sink_for, as_json=settings.json)) == 0

    assert open_fds() == fds_before
    assert child_processes() == children_before
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finished = events[-1]
    assert finished["kind"] == "build_finished"
    assert finished["data"]["counts"] == {"completed": SUBTASKS}
    assert finished["data"]["plan_writes"] <= 3 * SUBTASKS + 5
    plan = read_json(spec.plan_path)
    assert {s["status"] for s in plan["phases"][0]["subtasks"]} == {"completed"}
    tree = git(repo, "ls-tree", "--name-only", "orchestrate/001-scale/integration", "out/")
    assert tree.split() == ["out/.keep", *[f"out/{i}.txt" for i in ids]]
    content = git(repo, "show", "orchestrate/001-scale/integration:out/t123.txt")
    assert content == "t123"
    merges = git(repo, "log", "--merges", "--format=%H", "orchestrate/001-scale/integration")
    assert len(merges.split()) == SUBTASKS
