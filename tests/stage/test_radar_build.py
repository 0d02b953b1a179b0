"""The conflict radar end to end: the real `orchestrate build` with command agents (real
processes) editing real worktrees while the radar sweeps them."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, phase, plan_of, read_json, run_cli, write_plan

AGENT = Path(__file__).resolve().parents[1] / "agents" / "radar_agent.py"
SPEC = "001-demo"
FAST = ("--radar-interval", "0.2", "--json", "--resolve", "manual")

pytestmark = pytest.mark.slow


def agent_command(*args: str) -> str:
    return shlex.join([sys.executable, str(AGENT), *args])


def events(stdout: str, kind: str | None = None) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [e for e in found if kind is None or e["kind"] == kind]


def first_index(found: list[dict[str, Any]], kind: str, subtask: str) -> int:
    return next(n for n, e in enumerate(found) if e["kind"] == kind and e["subtask"] == subtask)


def radar_of(plan_path: Path) -> dict[str, Any]:
    plan = read_json(plan_path)
    return {s["id"]: s.get("orchestrate", {}).get("radar") for p in plan["phases"]
            for s in p["subtasks"]}


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


def build(repo: Path, marks: Path, plan_path: Path, *agent_args: str, radar: str,
          check: int) -> list[dict[str, Any]]:
    done = run_cli(repo, "build", SPEC, *FAST, "--radar", radar,
                   "--agent-command", agent_command(*agent_args),
                   env={"RADAR_MARKS": str(marks), "RADAR_PLAN": str(plan_path)}, check=check)
    return events(done.stdout)


def test_neighbouring_edits_are_announced_once_before_either_agent_finishes(
        repo: Path, marks: Path) -> None:
    """s1 edits line 3, s2 edits line 4 later; s3 edits another file. Each agent waits until
    the plan records what the radar saw (at most 60 s), and s1 edits again after that."""
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["s1", "s2", "s3"], parallel=True)))
    found = build(repo, marks, plan_path,
                  "--edit", "s1=src/app.py:3", "--edit", "s3=README.md:1",
                  "--after", "s2=s1-edited", "--pause", "0.6", "--edit", "s2=src/app.py:4",
                  "--mark", "s1=s1-edited", "--hear", "s1", "--hear", "s2",
                  "--after", "s3=s1-edited", "--then-edit", "s1=src/app.py:2",
                  radar="show", check=1)
    predicted = [e for e in found if e["kind"] == "overlap_predicted"]
    assert [e["data"] for e in predicted] == [{
        "subtasks": ["s1", "s2"], "path": "src/app.py",
        "ranges": {"s1": [[3, 3]], "s2": [[4, 4]]}, "overlapping": True}]
    announced = found.index(predicted[0])
    assert announced < first_index(found, "subtask_committed", "s1")
    assert announced < first_index(found, "subtask_committed", "s2")
    assert radar_of(plan_path) == {
        "s1": [{"with": "s2", "path": "src/app.py", "overlapping": True}],
        "s2": [{"with": "s1", "path": "src/app.py", "overlapping": True}], "s3": None}
    report = read_json(plan_path.parent / "conflict_report.json")
    assert report["radar"] == [{"subtasks": ["s1", "s2"], "path": "src/app.py",
                                "overlapping": True, "outcome": "conflict"}]
    assert "Predicted by the radar" in (plan_path.parent / "conflict_report.md").read_text()


def test_tell_appends_to_each_command_agents_radar_file(repo: Path, marks: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["s1", "s2"], parallel=True)))
    build(repo, marks, plan_path, "--edit", "s1=src/app.py:3", "--mark", "s1=s1-edited",
          "--after", "s2=s1-edited", "--edit", "s2=src/app.py:12", "--hear", "*",
          radar="tell", check=0)
    heard = (marks / "s1.heard").read_text()
    assert "subtask s2 is also changing src/app.py" in heard
    assert "Do s2" in heard  # the other subtask's description
    assert "your lines there: 3; theirs: 12" in heard
    assert "subtask s1 is also changing src/app.py" in (marks / "s2.heard").read_text()
    radar_file = plan_path.parent / "logs" / "s1.radar"
    assert radar_file.read_text() == heard
    assert not radar_file.is_relative_to(repo / ".orchestrate" / "worktrees")
    report = read_json(plan_path.parent / "conflict_report.json")
    assert report["radar"] == [{"subtasks": ["s1", "s2"], "path": "src/app.py",
                                "overlapping": False, "outcome": "overlap"}]
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_agents_looping_git_status_and_add_never_meet_a_lock(repo: Path, marks: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["s1", "s2", "s3"], parallel=True)))
    build(repo, marks, plan_path, "--edit", "*=src/app.py:5", "--git-loop", "*=2.5",
          radar="show", check=1)
    for subtask in ("s1", "s2", "s3"):
        steps = [json.loads(line) for line in (marks / f"{subtask}.steps").read_text().splitlines()]
        assert [s["step"] for s in steps] == ["start", "edit", "git-loop", "end"], steps
        assert steps[2]["rounds"] > 5
