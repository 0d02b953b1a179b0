"""`orchestrate init NAME`: a starter spec that validates and builds, and never overwrites."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.buildkit import Recorder, agent_command, statuses
from tests.conftest import read_json, run_cli

NAME = "001-user-login"


@pytest.mark.slow
def test_init_then_validate_then_build_the_starter_plan(repo: Path, recorder: Recorder) -> None:
    done = run_cli(repo, "init", NAME, check=0)
    folder = repo / ".orchestrate" / "specs" / NAME
    assert f"orchestrate validate {NAME}" in done.stdout
    assert (folder / "spec.md").read_text().startswith("# User login\n")
    assert read_json(folder / "implementation_plan.json")["feature"] == "User login"
    assert "3 subtasks" in run_cli(repo, "validate", "001", check=0).stdout
    run_cli(repo, "build", "001", "--agent-command", agent_command(), env=recorder.env,
            check=0)
    assert statuses(repo, NAME) == dict.fromkeys(["first-piece", "second-piece", "wire-up"],
                                                 "completed")


def test_init_refuses_to_overwrite_an_existing_spec(repo: Path) -> None:
    folder = repo / ".auto-claude" / "specs" / NAME
    folder.mkdir(parents=True)
    (folder / "implementation_plan.json").write_text("{}\n")
    done = run_cli(repo, "init", NAME, check=2)
    assert ".auto-claude/specs/001-user-login already exists" in done.stderr
    assert (folder / "implementation_plan.json").read_text() == "{}\n"
    assert not (repo / ".orchestrate" / "specs" / NAME).exists()


def test_init_refuses_a_name_that_cannot_be_a_branch_name(repo: Path) -> None:
    done = run_cli(repo, "init", "two words", check=2)
    assert "cannot be part of a git branch name" in done.stderr
    assert not (repo / ".orchestrate").exists()
