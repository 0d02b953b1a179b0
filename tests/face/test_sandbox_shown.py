"""Where attempts ran without the build's sandbox (with `--runner ray`, `auto` decides on each
worker): `status`, `status --json` and every format of the report say so, from the plan as a
build recorded it."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.build.run_summary import RunFacts, headline
from orchestrator.plan.parse import load_plan
from orchestrator.plan.sandbox_note import sandbox_text
from tests.buildkit import SPEC
from tests.cli_inprocess import run_cli_in_process
from tests.conftest import git, phase, plan_of, write_plan

NO_BWRAP = "`bwrap` is not on PATH on node 0123456789ab (worker-2)"
SHOWN = f"bwrap (s2, s3 ran without a sandbox: {NO_BWRAP})"


def recorded(repo: Path) -> Path:
    """A plan as a Ray build left it: the build had bwrap, s2 and s3 ran on a worker without."""
    plan = plan_of(phase(1, ["s1", "s2", "s3"], parallel=True),
                   orchestrate={"integration_branch": f"orchestrate/{SPEC}/integration",
                                "base": git(repo, "rev-parse", "HEAD"), "sandbox": "bwrap"})
    for subtask in plan["phases"][0]["subtasks"]:
        ran_without = subtask["id"] != "s1"
        subtask["orchestrate"] = {"sandbox": "none" if ran_without else "bwrap",
                                  **({"sandbox_reason": NO_BWRAP} if ran_without else {})}
    return write_plan(repo, SPEC, plan)


def test_status_says_which_subtasks_ran_without_the_builds_sandbox(repo: Path) -> None:
    recorded(repo)
    text = run_cli_in_process(repo, "status", SPEC, env={"COLUMNS": "300"}, check=0).stdout
    assert f"sandbox: {SHOWN}" in text.replace("\n  ", " ")
    data = json.loads(run_cli_in_process(repo, "status", SPEC, "--json", check=0).stdout)
    assert data["sandbox"] == "bwrap"
    assert data["sandbox_text"] == SHOWN
    rows = {row["id"]: row for row in data["phases"][0]["subtasks"]}
    assert rows["s2"]["sandbox"] == "none"
    assert rows["s2"]["sandbox_reason"] == NO_BWRAP
    assert rows["s1"]["sandbox"] == "bwrap"
    assert "sandbox_reason" not in rows["s1"]


def test_every_report_format_says_it(repo: Path) -> None:
    recorded(repo)
    data = json.loads(run_cli_in_process(repo, "report", SPEC, "--format", "json",
                                         check=0).stdout)
    assert data["sandbox"] == {"mode": "bwrap", "egress_refused": {}, "text": SHOWN,
                               "without_sandbox": {"s2": NO_BWRAP, "s3": NO_BWRAP}}
    markdown = run_cli_in_process(repo, "report", SPEC, check=0).stdout
    assert f"Sandbox: {SHOWN}." in markdown
    github = run_cli_in_process(repo, "report", SPEC, "--format", "github", check=0).stdout
    assert "::warning title=Sandbox::sandbox: bwrap (s2, s3 ran without a sandbox" in github


def test_the_summary_line_says_it_and_a_uniform_build_says_only_its_mode(repo: Path) -> None:
    path = recorded(repo)
    facts = RunFacts(elapsed_s=1.0, integration_branch="i", tip="0" * 40,
                     sandbox=sandbox_text(load_plan(path)) or "")
    assert headline({"completed": 3}, facts, None).endswith(f"; sandbox: {SHOWN}")
    plan = json.loads(path.read_text())
    for subtask in plan["phases"][0]["subtasks"]:
        subtask["orchestrate"] = {"sandbox": "bwrap"}
    path.write_text(json.dumps(plan))
    assert sandbox_text(load_plan(path)) == "bwrap"
    github = run_cli_in_process(repo, "report", SPEC, "--format", "github", check=0).stdout
    assert "::notice title=Sandbox::sandbox: bwrap\n" in github
