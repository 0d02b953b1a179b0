"""What the user sees around the core flow: failure lines that diagnose themselves, the dirty
checkout note, next steps, `status` as a table, `review` of failed and blocked subtasks, help
texts, completion, the one error style. The real program runs as a child process throughout."""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path

import click
import pytest

from tests.buildkit import SPEC, Recorder, build, statuses
from tests.cli.test_startup import _imported
from tests.conftest import git, phase, plan_of, run_cli, write_plan
from tests.terminal_support import run_in_terminal

LONG_ID = "subtask-1-1-add-user-model-and-migration"


@pytest.fixture
def failed_build(repo: Path, recorder: Recorder) -> Path:
    """A build in which `bad` failed (twice) and `after`, which depends on it, is blocked."""
    write_plan(repo, SPEC, plan_of(phase(1, [LONG_ID, "bad"], parallel=True),
                                   phase(2, ["after"])))
    build(repo, recorder, "--fail", "bad", check=1)
    assert statuses(repo) == {LONG_ID: "completed", "bad": "failed", "after": "blocked"}
    return repo


def _spec_dir(repo: Path) -> Path:
    return repo / ".orchestrate" / "specs" / SPEC


# Failures that diagnose themselves


@pytest.mark.slow
def test_the_failure_line_shows_output_tail_log_and_worktree(repo: Path,
                                                             recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["good", "bad"], parallel=True)))
    out = build(repo, recorder, "--fail", "bad", check=1)
    lines = out.splitlines()
    failed = lines.index("[bad] failed: agent command exited with code 1")
    detail = lines[failed + 1:failed + 6]
    assert "    | BOOM bad: told to fail" in detail
    assert f"    log: {_spec_dir(repo) / 'logs' / 'bad.log'}" in detail
    worktree = repo / ".orchestrate" / "worktrees" / SPEC / "bad"
    assert any(line.startswith(f"    worktree: {worktree} ") for line in detail)
    assert worktree.is_dir()


@pytest.mark.slow
def test_the_output_tail_is_shown_without_control_sequences(repo: Path,
                                                            recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["bad"])))
    out = build(repo, recorder, "--print", "bad=\x1b[2J\x1b[Hscreen cleared\x07!", "--fail",
                "bad", options=("--retries", "0"), check=1)
    assert "    | screen cleared!" in out.splitlines()
    assert "\x1b" not in out
    assert "\x07" not in out


@pytest.mark.slow
def test_json_failure_events_carry_log_and_worktree(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["bad"])))
    out = build(repo, recorder, "--fail", "bad", options=("--json", "--retries", "0"), check=1)
    events = [json.loads(line) for line in out.splitlines()]
    failed = next(e for e in events if e["kind"] == "subtask_failed")
    assert failed["data"]["log"] == str(_spec_dir(repo) / "logs" / "bad.log")
    assert failed["data"]["worktree"].endswith(f"worktrees/{SPEC}/bad")
    assert events[-1]["kind"] == "build_finished"
    assert any("--retry-failed" in step for step in events[-1]["data"]["next"])


@pytest.mark.slow
def test_status_shows_error_log_worktree_and_blocking_cause(failed_build: Path) -> None:
    out = run_cli(failed_build, "status", SPEC, check=0).stdout
    lines = out.splitlines()
    row = next(n for n, line in enumerate(lines) if line.startswith("  bad "))
    notes = [line.strip() for line in lines[row + 1:row + 4]]
    assert notes[0] == "error: agent command exited with code 1"
    assert notes[1] == f"log: .orchestrate/specs/{SPEC}/logs/bad.log"
    assert notes[2] == f"worktree: .orchestrate/worktrees/{SPEC}/bad"
    after = next(n for n, line in enumerate(lines) if line.startswith("  after "))
    assert lines[after + 1].strip().startswith("cause: phase 2 (Phase 2) depends on unfinished "
                                               "subtasks: bad (failed)")
    assert f"next: `orchestrate build {SPEC} --retry-failed`" in out


@pytest.mark.slow
def test_review_of_a_failed_subtask_explains_it(failed_build: Path) -> None:
    done = run_cli(failed_build, "review", SPEC, "bad", check=0)
    lines = done.stdout.splitlines()
    assert lines[0] == "bad failed after 2 attempts: agent command exited with code 1"
    assert f"  log: {_spec_dir(failed_build) / 'logs' / 'bad.log'}" in lines
    assert any(line.startswith("  worktree: ") and f"worktrees/{SPEC}/bad" in line
               for line in lines)


@pytest.mark.slow
def test_review_of_a_blocked_subtask_names_the_cause(failed_build: Path) -> None:
    done = run_cli(failed_build, "review", SPEC, "after", check=2)
    assert "is blocked" in done.stderr
    assert "bad (failed)" in done.stderr
    assert "first" not in done.stderr


# Build start and end


@pytest.mark.slow
def test_a_dirty_checkout_gets_one_note(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    (repo / "README.md").write_text("# changed\n")
    (repo / "scratch.txt").write_text("mine\n")
    (repo / "notes.txt").write_text("mine too\n")
    status_before = git(repo, "status", "--porcelain", "--", ".", ":!.orchestrate")
    head = git(repo, "rev-parse", "HEAD")
    out = build(repo, recorder)
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: your checkout has 1 uncommitted change and 2 untracked files; "
                     f"agents start from main at {head[:12]} without them"]
    assert git(repo, "status", "--porcelain", "--", ".", ":!.orchestrate") == status_before


@pytest.mark.slow
def test_a_clean_checkout_gets_no_note(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    out = build(repo, recorder)
    assert not [line for line in out.splitlines() if line.startswith("note: ")]


@pytest.mark.slow
def test_the_final_line_has_the_total_time_and_next_steps(repo: Path,
                                                          recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    lines = build(repo, recorder).splitlines()
    assert re.fullmatch(r"done in \d+\.\ds: 2 completed; cost n/a; sandbox: none", lines[-3])
    assert lines[-2] == (f"    next: all done: `orchestrate review {SPEC}`, then `orchestrate "
                         f"pr {SPEC}` (or merge the integration branch yourself)")
    assert re.fullmatch(r"    integration branch orchestrate/001-demo/integration at "
                        r"[0-9a-f]{12}", lines[-1])
    status = run_cli(repo, "status", SPEC, check=0).stdout
    assert status.splitlines()[-1] == lines[-2].strip()


@pytest.mark.slow
def test_merge_ends_with_the_next_step(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    out = build(repo, recorder, options=("--no-merge",))
    assert f"next: committed work waits to be merged: `orchestrate merge {SPEC}`" in out
    merged = run_cli(repo, "merge", SPEC, check=0).stdout.splitlines()
    assert merged[-2] == "merged 1, conflicts 0"
    assert merged[-1].strip().startswith(f"next: all done: `orchestrate review {SPEC}`")


@pytest.mark.slow
def test_after_a_conflict_the_next_step_is_the_report(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["one", "two"], parallel=True)))
    out = build(repo, recorder, "--append", "*=README.md", options=("--resolve", "manual"),
                check=1)
    assert statuses(repo) == {"one": "completed", "two": "conflict"}
    step = (f"next: conflicts: `orchestrate report {SPEC}` shows them and how to resolve each "
            f"one; then `orchestrate merge {SPEC}`")
    assert f"    {step}" in out.splitlines()
    status = run_cli(repo, "status", SPEC, check=0).stdout.splitlines()
    assert step in status
    row = next(n for n, line in enumerate(status) if line.startswith("  two "))
    assert status[row + 1].strip().startswith("error: merge conflict in README.md")
    assert f"worktree: .orchestrate/worktrees/{SPEC}/two" in [s.strip() for s in status]


# status as a table


@pytest.mark.slow
def test_status_is_a_table_that_fits_the_width(repo: Path) -> None:
    plan = plan_of(phase(1, [LONG_ID, "b"], parallel=True))
    plan["phases"][0]["subtasks"][0]["description"] = "Add the user model " * 10
    write_plan(repo, SPEC, plan)
    wide = run_cli(repo, "status", SPEC, check=0).stdout.splitlines()
    header = next(line for line in wide if "SUBTASK" in line)
    assert header.split() == ["SUBTASK", "STATUS", "MERGE", "TIME", "DESCRIPTION"]
    row = next(line for line in wide if LONG_ID in line)
    assert row.index("pending") == header.index("STATUS")
    assert "=" not in row
    for columns in (60, 100):
        lines = run_cli(repo, "status", SPEC, env={"COLUMNS": str(columns)},
                        check=0).stdout.splitlines()
        assert max(len(line) for line in lines) <= columns
        header = next(line for line in lines if "SUBTASK" in line)
        rows = [line for line in lines if line.startswith(("  subtask-", "  b "))]
        assert len(rows) == 2
        assert all(line[header.index("STATUS"):].startswith("pending") for line in rows)
    assert LONG_ID in next(line for line in lines if line.startswith("  subtask-"))
    narrow = run_cli(repo, "status", SPEC, env={"COLUMNS": "80"}, check=0).stdout.splitlines()
    row = next(n for n, line in enumerate(narrow) if line.startswith(f"  {LONG_ID}  "))
    assert narrow[row + 1].startswith("      Add the user model Add the user model")
    assert max(len(line) for line in narrow) <= 80


@pytest.mark.slow
def test_status_colours_on_a_terminal_unless_no_color(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    coloured = run_in_terminal(repo, "status", SPEC, columns=80, rows=24, env={})
    assert coloured.returncode == 0
    assert b"\x1b[" in coloured.raw
    plain = run_in_terminal(repo, "status", SPEC, columns=80, rows=24, env={"NO_COLOR": "1"})
    assert b"\x1b[" not in plain.raw
    assert "SUBTASK" in plain.text()
    assert b"\x1b[" not in run_cli(repo, "status", SPEC, check=0).stdout.encode()


@pytest.mark.slow
def test_status_notes_a_running_build(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    lock = _spec_dir(repo) / ".orchestrate-run.lock"
    lock.write_text(f"{os.getpid()}\n")
    assert "is running" not in run_cli(repo, "status", SPEC, check=0).stdout
    with lock.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        out = run_cli(repo, "status", SPEC, check=0).stdout
    assert f"a build of this spec is running (pid {os.getpid()})" in out
    assert "next:" not in out
    assert "is running" not in run_cli(repo, "status", SPEC, check=0).stdout


@pytest.mark.slow
def test_status_json_keeps_its_fields(failed_build: Path) -> None:
    data = json.loads(run_cli(failed_build, "status", SPEC, "--json", check=0).stdout)
    row = data["phases"][0]["subtasks"][1]
    assert {"id", "status", "branch", "merge", "started_at", "completed_at", "duration_s",
            "attempts", "error"} <= set(row)
    assert row["status"] == "failed"


# Help, completion, errors


def test_every_option_of_every_command_has_help() -> None:
    from orchestrator.cli.app import cli

    missing = [f"{name} {param.name}" for name, command in cli.commands.items()
               for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert missing == []
    assert all(command.short_help or len(command.get_short_help_str(60)) < 60
               for command in cli.commands.values())


def test_help_names_exit_codes_config_and_completion(repo: Path) -> None:
    out = run_cli(repo, "--help", env={"COLUMNS": "80"}, check=0).stdout
    assert "Exit codes: 0 every subtask completed" in out
    assert "orchestrate.toml" in out
    assert "_ORCHESTRATE_COMPLETE=bash_source orchestrate" in out
    assert "..." not in out.split("Commands:")[1].split("Exit codes")[0]
    assert "Exit codes:" in run_cli(repo, "build", "--help", check=0).stdout


def test_help_imports_neither_filelock_nor_rich(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    for args in (["--help"], ["build", "--help"], ["status", SPEC]):
        code, modules = _imported(repo, args)
        assert code == 0
        assert not [m for m in modules if m.split(".")[0] in ("rich", "filelock")], args


def _complete(repo: Path, *words: str) -> list[str]:
    env = {"_ORCHESTRATE_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(words),
           "COMP_CWORD": str(len(words) - 1)}
    out = run_cli(repo, env=env, check=0).stdout
    return [line.partition(",")[2] for line in out.splitlines() if line]


@pytest.mark.slow
def test_completion_of_spec_names_and_subtask_ids(repo: Path) -> None:
    write_plan(repo, "001-user-auth", plan_of(phase(1, ["add-model", "add-api"])))
    write_plan(repo, "002-billing", plan_of(phase(1, ["invoice"])), root=".auto-claude/specs")
    assert _complete(repo, "orchestrate", "status", "") == ["001-user-auth", "002-billing"]
    assert _complete(repo, "orchestrate", "build", "00") == ["001-user-auth", "002-billing"]
    assert _complete(repo, "orchestrate", "review", "002") == ["002-billing"]
    assert _complete(repo, "orchestrate", "review", "001", "add-") == ["add-model", "add-api"]
    assert _complete(repo, "orchestrate", "review", "nope", "") == []
    elsewhere = repo.parent
    assert _complete(elsewhere, "orchestrate", "--repo", str(repo), "status", "001") == [
        "001-user-auth"]


def test_repo_after_the_command_gets_a_helpful_message(repo: Path) -> None:
    done = run_cli(repo, "status", "001", "--repo", str(repo), check=2)
    assert done.stderr.startswith("orchestrate: error: option --repo belongs to `orchestrate` "
                                  "itself, before the command")
    assert f"Write: orchestrate --repo {repo} status 001" in done.stderr


def test_usage_errors_look_like_the_projects_own(repo: Path) -> None:
    for args, words in ((["status"], "missing argument 'SPEC'"),
                        (["status", "001", "--jsn"], "no such option"),
                        (["build", "001", "--max-parallel", "x"], "'x' is not a valid integer"),
                        (["frobnicate"], "no such command")):
        done = run_cli(repo, *args, check=2)
        first, *rest = done.stderr.splitlines()
        assert first.startswith("orchestrate: error: "), done.stderr
        assert words.lower() in first.lower()
        assert "Error:" not in done.stderr
        assert rest[-1].startswith("See `orchestrate")


@pytest.mark.slow
def test_counts_are_singular_when_one(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    assert run_cli(repo, "validate", SPEC, check=0).stdout.strip() == (
        f"{SPEC}: valid plan, 1 phase (0 parallel), 1 subtask")
    build(repo, recorder, "--fail", "a", options=("--retries", "0"), check=1)
    done = run_cli(repo, "clean", SPEC, "--branches", check=0)
    assert done.stdout.splitlines()[-1] == f"{SPEC}: removed 1 worktree, deleted 1 branch"
