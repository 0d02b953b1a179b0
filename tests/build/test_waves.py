"""Scheduling around declared files (SPEC 11) through the real CLI and scripted agents:
subtasks declaring one file run in waves and edit it one after another; `together` runs them
at once (and they conflict); validate and --dry-run predict overlaps; the report names
undeclared edits and predictions that did not happen."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.failpoints import ENV as FAILPOINT_ENV
from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Recorder,
    agent_command,
    build,
    plan_path,
    statuses,
    subtasks,
)
from tests.conftest import commit_all, git, run_cli, write_plan

# These scenarios are about what the merge stage decides: no resolution rounds (SPEC 10)
# unless a test asks for them with --resolve agent.
# slow: real builds of waves
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("manual_resolution")]

SHARED = ["s1", "s2", "s3"]  # declare and append to shared.txt
FREE = ["o1", "o2"]  # declare nothing


def _subtask(subtask_id: str, **declared: list[str]) -> dict[str, Any]:
    return {"id": subtask_id, "description": f"Do {subtask_id}", "status": "pending", **declared}


def _phase(*members: dict[str, Any], parallel: bool = True) -> dict[str, Any]:
    return {"phase": 1, "name": "Work", "parallel_safe": parallel, "subtasks": list(members)}


def _shared_plan(repo: Path) -> Path:
    (repo / "shared.txt").write_text("start\n")
    commit_all(repo, "a file three subtasks edit")
    members = [_subtask(s, files_to_modify=["shared.txt"], files_to_create=[f"{s}.txt"])
               for s in SHARED[:1]]
    members += [_subtask(s) for s in FREE]
    members += [_subtask(s, files_to_modify=["shared.txt"], files_to_create=[f"{s}.txt"])
                for s in SHARED[1:]]
    return write_plan(repo, SPEC, {"phases": [_phase(*members)]})


def _agent_args(sleep: str = "0") -> tuple[str, ...]:
    """Each of SHARED appends a line to shared.txt; every agent records what it found there.
    A sleep makes agents that run at once overlap in time for certain."""
    appends = [arg for s in SHARED for arg in ("--append", f"{s}=shared.txt")]
    return ("--sleep", f"*={sleep}", *appends, "--show", "*=shared.txt")


def _interval(recorder: Recorder, subtask: str) -> tuple[float, float]:
    (start,) = recorder.starts(subtask)
    (end,) = recorder.events("end", subtask)
    return start["t"], end["t"]


def test_spread_turns_a_predicted_overlap_into_sequential_edits(
        repo: Path, recorder: Recorder) -> None:
    _shared_plan(repo)
    build(repo, recorder, *_agent_args("1"))
    assert set(statuses(repo).values()) == {"completed"}
    assert git(repo, "show", f"{INTEGRATION}:shared.txt").splitlines() == [
        "start", "edit by s1", "edit by s2", "edit by s3"]
    seen = {s: recorder.starts(s)[0]["files"]["shared.txt"] for s in SHARED}
    assert seen == {"s1": "start\n", "s2": "start\nedit by s1\n",
                    "s3": "start\nedit by s1\nedit by s2\n"}
    spans = [_interval(recorder, s) for s in SHARED]
    assert spans[0][1] <= spans[1][0], spans
    assert spans[1][1] <= spans[2][0], spans
    for free in FREE:  # the subtasks with nothing in common ran beside s1
        start, end = _interval(recorder, free)
        assert start < spans[0][1], (free, spans[0])
        assert spans[0][0] < end, (free, spans[0])
    report = json.loads((plan_path(repo).parent / "conflict_report.json").read_text())
    (overlap,) = [c for c in report["conflicts"] if c["path"] == "shared.txt"]
    assert overlap["kind"] == "overlap"  # still flagged, but made one after another
    assert overlap["subtasks"] == ["s1", "s2", "s3"]
    assert overlap["sequential"] is True
    markdown = (plan_path(repo).parent / "conflict_report.md").read_text()
    first_base = subtasks(repo)["s1"]["orchestrate"]["base"]
    assert f"git diff {first_base[:12]} {INTEGRATION} -- shared.txt" in markdown
    assert "one after another" in markdown
    recorded = subtasks(repo)
    assert {s: recorded[s]["orchestrate"]["wave"] for s in [*SHARED, *FREE]} == {
        "s1": 1, "o1": 1, "o2": 1, "s2": 2, "s3": 3}
    shown = json.loads(run_cli(repo, "status", SPEC, "--json", check=0).stdout)
    assert {s["id"]: s["wave"] for s in shown["phases"][0]["subtasks"]}["s3"] == 3
    assert "wave 2" in next(line for line in run_cli(repo, "status", SPEC, check=0)
                            .stdout.splitlines() if line.strip().startswith("s2 "))


def test_together_runs_them_at_once_and_they_conflict(repo: Path, recorder: Recorder) -> None:
    path = _shared_plan(repo)
    plan = json.loads(path.read_text())
    plan["phases"][0]["subtasks"][3]["orchestrate"] = {"wave": 2}  # from an earlier spread run
    path.write_text(json.dumps(plan, indent=2))
    done = run_cli(repo, "build", SPEC, "--agent-command", agent_command(*_agent_args()),
                   env={**recorder.env, "ORCHESTRATE_SCHEDULE": "together"}, check=1)
    assert statuses(repo) == {"s1": "completed", "o1": "completed", "o2": "completed",
                              "s2": "conflict", "s3": "conflict"}, done.stdout
    assert all(recorder.starts(s)[0]["files"]["shared.txt"] == "start\n" for s in SHARED)
    assert "wave" not in subtasks(repo)["s2"].get("orchestrate", {})
    report = json.loads((plan_path(repo).parent / "conflict_report.json").read_text())
    assert [c["sequential"] for c in report["conflicts"] if c["path"] == "shared.txt"] == [
        False, False, False]  # s2's and s3's conflicts and the overlap of all three


def _glob_plan(repo: Path) -> Path:
    (repo / "src" / "a").mkdir()
    (repo / "src" / "a" / "b.py").write_text("b = 1\n")
    commit_all(repo, "a nested module")
    return write_plan(repo, SPEC, {"phases": [_phase(
        _subtask("wide", files_to_modify=["src/**"]),
        _subtask("narrow", files_to_modify=["src/a/b.py"]),
        _subtask("elsewhere", files_to_create=["docs/new.md"]))]})


def test_a_glob_overlap_is_predicted_by_validate_and_separated_by_dry_run(repo: Path) -> None:
    path = _glob_plan(repo)
    before = path.read_bytes()
    done = run_cli(repo, "validate", SPEC, check=0)
    assert done.stdout.splitlines()[1:] == [
        "warning: predicted overlap: phase 1: wide and narrow both declare src/a/b.py"]
    data = json.loads(run_cli(repo, "validate", SPEC, "--json", check=0).stdout)
    assert [o["subtasks"] for o in data["predicted_overlaps"]] == [["wide", "narrow"]]
    assert data["predicted_overlaps"][0]["patterns"] == [["src/**", "src/a/b.py"]]
    dry = run_cli(repo, "build", SPEC, "--dry-run", "--agent-command", "true", check=0).stdout
    assert dry.index("wave 1:") < dry.index("wide") < dry.index("elsewhere") < dry.index(
        "wave 2:") < dry.index("narrow"), dry
    assert "predicted overlap: phase 1: wide and narrow" in dry
    schedule = json.loads(run_cli(repo, "build", SPEC, "--dry-run", "--json",
                                  "--agent-command", "true", check=0).stdout)
    assert {s["id"]: s["wave"] for s in schedule["phases"][0]["subtasks"]} == {
        "wide": 1, "narrow": 2, "elsewhere": 1}
    assert len(schedule["predicted_overlaps"]) == 1
    together = json.loads(run_cli(repo, "build", SPEC, "--dry-run", "--json", "--schedule",
                                  "together", "--agent-command", "true", check=0).stdout)
    assert together["phases"][0]["waves"] == 1
    assert path.read_bytes() == before
    assert git(repo, "for-each-ref", "refs/heads/orchestrate/") == ""


def test_a_bad_schedule_is_refused_naming_its_source(repo: Path) -> None:
    path = _glob_plan(repo)
    before = path.read_bytes()
    (repo / "orchestrate.toml").write_text('schedule = "sometimes"\n')
    done = run_cli(repo, "build", SPEC, "--agent-command", "true", check=2)
    assert "orchestrate.toml key `schedule`" in done.stderr
    assert "spread, together" in done.stderr
    assert path.read_bytes() == before
    assert git(repo, "for-each-ref", "refs/heads/orchestrate/") == ""
    (repo / "orchestrate.toml").write_text('schedule = "together"\n')
    dry = run_cli(repo, "build", SPEC, "--dry-run", "--agent-command", "true", check=0).stdout
    assert "[parallel, 1 wave]" in dry
    assert "schedule together" in dry


def test_no_merge_runs_only_the_first_wave(repo: Path, recorder: Recorder) -> None:
    _shared_plan(repo)
    build(repo, recorder, *_agent_args(), options=("--no-merge",))
    assert set(recorder.invocations()) == {"s1", "o1", "o2"}
    assert statuses(repo)["s2"] == "pending"
    build(repo, recorder, *_agent_args())  # resumes: merges wave 1, runs waves 2 and 3
    assert git(repo, "show", f"{INTEGRATION}:shared.txt").splitlines()[1:] == [
        "edit by s1", "edit by s2", "edit by s3"]
    assert recorder.starts("s2")[0]["files"]["shared.txt"] == "start\nedit by s1\n"


def test_the_report_names_undeclared_edits_and_predictions_that_did_not_happen(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, {"phases": [_phase(
        _subtask("sloppy", files_to_modify=["src/app.py"]),  # writes sloppy.txt instead
        _subtask("careful", files_to_create=["careful.txt", "notes.md"]),
        _subtask("cautious", files_to_create=["cautious.txt", "notes.md"]),
        _subtask("silent"))]})
    pinned = {**recorder.env, "ORCHESTRATE_NOW": "2026-01-02T03:04:05Z"}
    run_cli(repo, "build", SPEC, "--agent-command", agent_command(), env=pinned, check=0)
    folder = plan_path(repo).parent
    report = json.loads((folder / "conflict_report.json").read_text())
    assert report["undeclared"] == [{"subtask": "sloppy", "paths": ["sloppy.txt"]}]
    rows = {r["id"]: r for r in report["subtasks"]}
    assert rows["careful"]["undeclared"] == []
    assert rows["silent"]["undeclared"] is None  # it declared nothing
    assert [p["subtasks"] for p in report["predicted_overlaps_not_happened"]] == [
        ["careful", "cautious"]]
    markdown = (folder / "conflict_report.md").read_text()
    assert "### Undeclared edits" in markdown
    assert "- `sloppy`: `sloppy.txt`" in markdown
    assert "- `careful` and `cautious` (phase `1`)" in markdown
    assert markdown == run_cli(repo, "report", SPEC, env=pinned, check=0).stdout


def test_a_build_killed_between_two_waves_resumes_with_the_next_wave(
        repo: Path, recorder: Recorder) -> None:
    _shared_plan(repo)
    crashed = run_cli(repo, "build", SPEC, "--agent-command", agent_command(*_agent_args()),
                      env={**recorder.env, FAILPOINT_ENV: "report-written"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert statuses(repo)["s1"] == "completed"  # wave 1 merged, then the kill
    assert statuses(repo)["s2"] == "pending"
    build(repo, recorder, *_agent_args())
    assert recorder.invocations() == dict.fromkeys([*SHARED, *FREE], 1)
    assert git(repo, "show", f"{INTEGRATION}:shared.txt").splitlines()[1:] == [
        "edit by s1", "edit by s2", "edit by s3"]
    assert recorder.starts("s3")[0]["files"]["shared.txt"] == "start\nedit by s1\nedit by s2\n"


def test_overlap_block_does_not_block_an_edit_made_on_top_of_the_earlier_one(
        repo: Path, recorder: Recorder) -> None:
    _shared_plan(repo)
    build(repo, recorder, *_agent_args(), options=("--overlap", "block"))
    assert set(statuses(repo).values()) == {"completed"}
    assert subtasks(repo)["s3"]["orchestrate"]["overlaps"] == ["shared.txt"]
