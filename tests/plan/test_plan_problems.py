"""`validate` lists every problem of a plan at once (a phase without `subtasks` does not hide
the others), points users at something they have (not the SPEC), and an empty plan is refused
by `validate` and `build` alike (exit 2, nothing created). The spawned CLI on real repos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, run_cli, write_plan

SPEC = "001-plan"


def repo_state(repo: Path) -> tuple[str, str, bool]:
    return (git(repo, "for-each-ref"), git(repo, "worktree", "list", "--porcelain"),
            (repo / ".orchestrate" / "worktrees").exists())


def test_a_phase_without_subtasks_does_not_hide_the_other_problems(repo: Path) -> None:
    plan = {"phases": [
        {"phase": 1, "name": "no list"},
        {"phase": 2, "subtasks": [{"id": "a"}, {"id": "a"}, {"id": "bad id"}]},
        {"phase": 3, "depends_on": [9], "subtasks": [{"id": "c", "status": "weird"}]},
    ]}
    path = write_plan(repo, SPEC, plan)
    before = path.read_bytes()
    err = run_cli(repo, "validate", SPEC, check=2).stderr
    assert "phase 1: missing field `subtasks`" in err
    assert "subtask 'a': duplicate subtask id" in err
    assert "subtask 'bad id': field `id` cannot be used in a git branch name" in err
    assert "subtask 'c': field `status` has unknown value 'weird'" in err
    assert "phase 3: field `depends_on` names unknown phase 9" in err
    assert "Traceback" not in err
    assert path.read_bytes() == before
    assert run_cli(repo, "build", SPEC, "--agent-command", "true", check=2).stderr == err


def test_a_phase_named_by_depends_on_stays_known_when_its_subtasks_are_missing(
        repo: Path) -> None:
    write_plan(repo, SPEC, {"phases": [{"phase": 1}, {"phase": 2, "depends_on": [1],
                                                      "subtasks": [{"id": "a"}]}]})
    err = run_cli(repo, "validate", SPEC, check=2).stderr
    assert "missing field `subtasks`" in err
    assert "unknown phase" not in err


def test_errors_point_at_init_and_the_readme_not_the_spec(repo: Path) -> None:
    write_plan(repo, SPEC, "[1, 2]\n")
    err = run_cli(repo, "validate", SPEC, check=2).stderr
    assert "SPEC" not in err
    assert "`orchestrate init NAME`" in err
    assert 'README\'s "Use" section' in err


@pytest.mark.slow
@pytest.mark.parametrize("plan", [{"phases": []},
                                  {"phases": [{"phase": 1, "subtasks": []},
                                              {"phase": 2, "chunks": []}]}])
def test_an_empty_plan_is_refused_by_validate_and_build(repo: Path, plan: dict[str, Any]
                                                        ) -> None:
    path = write_plan(repo, SPEC, plan)
    before, state = path.read_bytes(), repo_state(repo)
    err = run_cli(repo, "validate", SPEC, check=2).stderr
    assert "nothing to build" in err
    assert "`orchestrate init NAME`" in err
    assert "Traceback" not in err
    for extra in ((), ("--dry-run",), ("--dry-run", "--json")):
        done = run_cli(repo, "build", SPEC, "--agent-command", "true", *extra, check=2)
        assert "nothing to build" in done.stderr
        assert done.stdout == ""
    assert path.read_bytes() == before
    assert repo_state(repo) == state  # no integration branch, no worktree
    assert not (path.parent / "logs").exists()
