"""Refs an agent moved: an integration branch moved or deleted during a build stops the merge
stage (exit 1, naming the commits), and no injected commit is ever adopted silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git, phase, plan_of, run_cli, write_plan
from tests.fault_support import INTEGRATION, SPEC, checkout_state, statuses, subtasks
from tests.test_trust_git import attacked_build


@pytest.mark.slow
def test_a_commit_injected_onto_the_integration_branch_stops_the_merge_stage(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["inject", "sibling"], parallel=True)))
    base = git(repo, "rev-parse", "main")
    checkout = checkout_state(repo)
    output = attacked_build(repo, tmp_path, check=1)
    injected = git(repo, "rev-parse", INTEGRATION)
    assert f"moved outside orchestrate during the run ({base} -> {injected})" in output
    assert git(repo, "log", "--format=%s", INTEGRATION) == "injected by an agent\ninitial"
    assert "completed" not in statuses(plan_path).values()
    assert checkout_state(repo) == checkout


@pytest.mark.slow
def test_an_integration_branch_deleted_mid_build_is_a_clear_error(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["unbranch", "sibling"], parallel=True)))
    base = git(repo, "rev-parse", "main")
    output = attacked_build(repo, tmp_path, check=1)
    assert f"was deleted outside orchestrate during the run (it was at {base})" in output
    assert "completed" not in statuses(plan_path).values()
    git(repo, "branch", INTEGRATION, base)  # as the message says
    merged = run_cli(repo, "merge", "001", check=0)
    assert "internal error" not in merged.stdout + merged.stderr
    assert set(statuses(plan_path).values()) == {"completed"}


@pytest.mark.slow
def test_a_branch_with_unrelated_history_is_a_conflict_of_kind_unrelated(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["orphan", "sibling"], parallel=True)))
    attacked_build(repo, tmp_path, check=1)
    assert statuses(plan_path) == {"orphan": "conflict", "sibling": "completed"}
    assert subtasks(plan_path)["orphan"]["orchestrate"]["merge"] == "conflict"
    report = json.loads((plan_path.parent / "conflict_report.json").read_text())
    assert [c["kind"] for c in report["conflicts"] if "orphan" in c["subtasks"]] == ["unrelated"]
    for command in (["merge", "001"], ["report", "001"], ["status", "001"]):
        done = run_cli(repo, *command)
        assert done.returncode in (0, 1), done.stderr
        assert "internal error" not in done.stdout + done.stderr
    attacked_build(repo, tmp_path, "--retry-failed", "--resolve", "manual", check=1)
    assert statuses(plan_path)["orphan"] == "conflict"
