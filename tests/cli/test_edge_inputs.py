"""Odd but possible inputs: each refused with exit 2 and a clear message, changing nothing."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import git, phase, plan_of, run_cli, write_plan


def test_a_lone_surrogate_is_refused_not_crashed_on(repo: Path) -> None:
    text = '{"phases": [{"phase": 1, "subtasks": [{"id": "a", "description": "\\ud800"}]}]}'
    path = write_plan(repo, "001-odd", text)
    done = run_cli(repo, "validate", "001", check=2)
    assert "unpaired UTF-16 surrogate" in done.stderr
    assert "Traceback" not in done.stderr
    assert path.read_text() == text


def test_a_spec_folder_that_cannot_name_a_branch_is_refused_before_anything(repo: Path) -> None:
    path = write_plan(repo, "001 with spaces", plan_of(phase(1, ["a"])))
    before = path.read_bytes()
    done = run_cli(repo, "build", "001 with spaces", "--agent-command", "true", check=2)
    assert "cannot be part of a git branch name" in done.stderr
    assert git(repo, "branch", "--list", "orchestrate/*") == ""
    assert not (repo / ".orchestrate" / "worktrees").exists()
    assert path.read_bytes() == before


def test_outside_a_repository_the_message_names_the_current_directory(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "list", check=2)
    assert "the current directory" in done.stderr
    assert "not inside a git repository" in done.stderr


def test_a_duration_that_is_not_a_number_does_not_break_status(repo: Path) -> None:
    plan = plan_of(phase(1, ["a"]))
    plan["phases"][0]["subtasks"][0]["orchestrate"] = {"duration_s": "slow"}
    write_plan(repo, "001-odd", plan)
    done = run_cli(repo, "status", "001", check=0)
    assert "a " in done.stdout
