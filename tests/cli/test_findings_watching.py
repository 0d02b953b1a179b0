"""One test per finding of a new user's walk through a build (each failed before its fix):
what the build says and does when the check fails on the base, the order subtasks start in,
the summary at the end, and the words of status, report and init. Real builds (the spawned
CLI, small shell agents), real git."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from orchestrator.failpoints import ENV
from tests.conftest import git, phase, plan_of, run_cli, write_plan

SPEC = "001-find"
INTEGRATION = f"orchestrate/{SPEC}/integration"
WRITE = "echo $ORCHESTRATE_SUBTASK_ID > $ORCHESTRATE_SUBTASK_ID.txt"


@pytest.mark.slow
def test_a_check_failing_on_the_base_starts_no_agent(repo: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b", "c"], parallel=True)))
    check = "echo 'FAILED tests/test_app.py::test_boot - boom'; exit 1"
    done = run_cli(repo, "build", SPEC, "--check", check, "--agent-command",
                   f"touch {started}; {WRITE}", check=1)
    assert not started.exists()  # no (paid) agent ran
    message = done.stderr
    assert re.search(rf"check fails on {INTEGRATION} at [0-9a-f]{{12}}", message)
    assert "FAILED tests/test_app.py::test_boot - boom" in message  # the check's last lines
    log = re.search(r"log: (\S+check-[0-9a-f]{12}\.log)", message)
    assert log
    assert Path(log.group(1)).exists()
    assert f"orchestrate build {SPEC}" in message  # not a bare `orchestrate merge`, which fails
    statuses = {s["id"]: s["status"] for p in json.loads(plan.read_text())["phases"]
                for s in p["subtasks"]}
    assert set(statuses.values()) == {"pending"}


@pytest.mark.slow
def test_check_lines_name_subtasks_and_the_summary_says_what_happened(repo: Path) -> None:
    """The build's output named commits only and ended `done in 10.7s: 7 completed` although
    a subtask was ejected by the check; now check and bisection lines name the subtasks a
    commit holds and the summary has a line per subtask that is not completed."""
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b", "c"], parallel=True)))
    check = "test ! -e b.txt || { echo 'FAILED tests/test_b.py::test_b - b broke it'; exit 1; }"
    out = run_cli(repo, "build", SPEC, "--check", check, "--resolve", "manual",
                  "--agent-command", WRITE, check=1).stdout.splitlines()
    checks = [line for line in out if line.startswith(("check", "bisect", "the check"))]
    assert checks
    assert all("the integration branch" in line for line in checks), checks
    assert any("a, b, c on the integration branch" in line for line in checks)
    headline = next(line for line in out if line.startswith("done in "))
    assert ": 2 completed, 1 conflict; " in headline
    assert re.search(r"; \d+ check runs; ", headline)
    assert "; sandbox: none" in headline
    (culprit,) = [line.strip() for line in out if line.startswith("    b conflict: ")]
    assert "FAILED tests/test_b.py::test_b - b broke it" in culprit
    assert f"orchestrate reset {SPEC} b" in culprit
    assert re.fullmatch(rf"    integration branch {INTEGRATION} at [0-9a-f]{{12}}", out[-1])
    status = run_cli(repo, "status", SPEC, check=0).stdout
    (row,) = [line for line in status.splitlines() if line.split()[:1] == ["b"]]
    assert "ejected" in row  # not `check_failed` cut to `check_fa`
    assert "check_f" not in row


def test_validate_json_prints_an_object_for_an_invalid_plan(repo: Path) -> None:
    plan = plan_of(phase(1, ["a"]))
    plan["phases"][0]["subtasks"][0]["status"] = "bogus"
    write_plan(repo, SPEC, plan)
    done = run_cli(repo, "validate", SPEC, "--json", check=2)
    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert any("bogus" in problem for problem in report["problems"])


def test_the_dry_run_init_suggests_needs_no_agent(repo: Path) -> None:
    said = run_cli(repo, "init", "002-new", check=0).stdout
    assert "`orchestrate build 002-new --dry-run`" in said
    done = run_cli(repo, "build", "002-new", "--dry-run", check=0)
    assert "phase" in done.stdout.lower()


@pytest.mark.slow
def test_a_subtask_without_a_description_is_warned_of_and_not_committed_as_id_id(
        repo: Path) -> None:
    plan = plan_of(phase(1, ["a"]))
    del plan["phases"][0]["subtasks"][0]["description"]
    write_plan(repo, SPEC, plan)
    said = run_cli(repo, "validate", SPEC, check=0).stdout
    assert "warning: subtask a (phase 1 (Phase 1)) has no description" in said
    run_cli(repo, "build", SPEC, "--agent-command", WRITE, check=0)
    subject = git(repo, "log", "-1", "--format=%s", f"orchestrate/{SPEC}/a")
    assert subject != "a: a"
    assert "no description" in subject


@pytest.mark.slow
def test_a_check_timeout_is_said_as_a_timeout_not_exit_124(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    done = run_cli(repo, "build", SPEC, "--check", "sleep 5", "--check-timeout", "0.3",
                   "--check-retries", "0", "--agent-command", WRITE, check=1)
    assert "timed out after 0.3 s (check_timeout)" in done.stderr
    assert "exit 124" not in done.stderr + done.stdout


@pytest.mark.slow
def test_status_after_clean_all_does_not_say_all_done(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    run_cli(repo, "build", SPEC, "--agent-command", WRITE, check=0)
    run_cli(repo, "clean", SPEC, "--all", check=0)
    status = run_cli(repo, "status", SPEC, check=0).stdout
    (row,) = [line for line in status.splitlines() if line.split()[:1] == ["a"]]
    assert row.split()[1:3] == ["stale", "missing"]  # not `stale  merged`
    assert "all done" not in status
    assert f"`orchestrate build {SPEC}`" in status


@pytest.mark.slow
def test_status_after_a_killed_build_says_the_subtask_was_stopped(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    crashed = run_cli(repo, "build", SPEC, "--agent-command", WRITE,
                      env={ENV: "subtask-started"})
    assert crashed.returncode == -signal.SIGKILL
    status = run_cli(repo, "status", SPEC, check=0).stdout
    (row,) = [line for line in status.splitlines() if line.split()[:1] == ["a"]]
    assert row.split()[1:4] == ["in", "progress", "stopped"]


@pytest.mark.slow
def test_a_check_round_names_what_the_agent_edited(repo: Path) -> None:
    """A resolution round for a check failure said `nothing to edit` although the agent edited
    files, and the JSON report had `"paths": [""]` for it."""
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    agent = ('if [ "$ORCHESTRATE_SUBTASK_ID" = b ] && [ -z "$ORCHESTRATE_RESOLVING" ]; '
             'then echo bad > b.txt; else echo ok > "$ORCHESTRATE_SUBTASK_ID.txt"; fi')
    out = run_cli(repo, "build", SPEC, "--check", "! grep -qs bad b.txt",
                  "--agent-command", agent, check=0).stdout
    assert "[b] resolved by agent in round 1: the check's failure (edited b.txt)" in out
    report = json.loads(run_cli(repo, "report", SPEC, "--format", "json", check=0).stdout)
    (resolved,) = report["resolved"]
    assert resolved["paths"] == ["b.txt"]


@pytest.mark.slow
def test_github_annotations_say_an_agent_resolved_the_conflict(repo: Path) -> None:
    """`--format github` said a conflict the agent resolved had `merged cleanly`."""
    from tests.buildkit import agent_command

    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    run_cli(repo, "build", SPEC, "--agent-command", agent_command(
        "--append", "a=shared.txt", "--append", "b=shared.txt", "--resolve", "b=both"),
        env={"ORCH_TEST_RECORD": str(repo.parent / "record.jsonl")}, check=0)
    annotations = run_cli(repo, "report", SPEC, "--format", "github", check=0).stdout
    (line,) = [a for a in annotations.splitlines() if "shared.txt" in a]
    assert "merged cleanly" not in line
    assert "resolved by agent in round 1 (b)" in line


@pytest.mark.slow
def test_the_report_for_a_pull_request_has_no_local_absolute_path(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    run_cli(repo, "build", SPEC, "--check", "test ! -e b.txt", "--resolve", "manual",
            "--agent-command", WRITE, check=1)
    markdown = run_cli(repo, "report", SPEC, check=0).stdout
    assert "check-" in markdown  # the check failure is there, with its log
    assert str(repo) not in markdown
    assert re.search(r"`logs/check-[0-9a-f]{12}\.log`", markdown)


@pytest.mark.slow
def test_overlaps_after_a_fix_by_hand_are_the_subtasks_own(repo: Path, tmp_path: Path) -> None:
    """A conflict fixed by hand (the integration branch merged into the subtask's branch) was
    charged with overlaps on every file the other subtasks changed."""
    from tests.buildkit import agent_command

    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    run_cli(repo, "build", SPEC, "--resolve", "manual", "--agent-command", agent_command(
        "--append", "a=shared.txt", "--append", "b=shared.txt"),
        env={"ORCH_TEST_RECORD": str(tmp_path / "record.jsonl")}, check=1)
    worktree = repo / ".orchestrate" / "worktrees" / SPEC / "b"
    merged = subprocess.run(["git", "merge", "-q", "--no-edit", INTEGRATION], cwd=worktree,
                            capture_output=True, check=False)
    assert merged.returncode == 1  # the conflict the report describes
    (worktree / "shared.txt").write_text("edit by a\nedit by b\n")
    git(worktree, "add", "shared.txt")
    git(worktree, "commit", "-q", "--no-edit")
    run_cli(repo, "merge", SPEC, check=0)
    record = json.loads(plan.read_text())["phases"][0]["subtasks"][1]["orchestrate"]
    assert record["overlaps"] == ["shared.txt"]  # not a.txt, which only a changed
