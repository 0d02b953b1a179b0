"""`orchestrate report`, `review` and `clean` run as the real program (in-process,
tests/cli_inprocess.py, where no terminal or second process is needed) on a repository whose
plan was written by hand with `orchestrate` records pointing at real branches."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import pytest

from orchestrator.plan.specs import resolve_spec
from orchestrator.plan.store import RunLock
from tests.cli_inprocess import run_cli_in_process
from tests.conftest import ORCHESTRATE, git, run_cli, write_plan
from tests.report_scenario import NOW, build_scenario
from tests.stage.test_reporting import GOLDEN

PINNED = {"ORCHESTRATE_NOW": NOW}
SUBTASK_BRANCHES = ["orchestrate/001-demo/api", "orchestrate/001-demo/docs",
                    "orchestrate/001-demo/lint", "orchestrate/001-demo/setup",
                    "orchestrate/001-demo/ui"]


@pytest.fixture
def scenario(repo: Path) -> Path:
    build_scenario(repo)
    return repo


def test_report_prints_each_format(scenario: Path) -> None:
    md = run_cli_in_process(scenario, "report", "001", env=PINNED, check=0).stdout
    assert md == (GOLDEN / "report.md").read_text()
    github = run_cli_in_process(scenario, "report", "001", "--format", "github", env=PINNED,
                                check=0)
    assert github.stdout == (GOLDEN / "report.github").read_text()
    data = json.loads(run_cli_in_process(scenario, "report", "001-demo", "--format", "json",
                              env=PINNED, check=0).stdout)
    assert data["generated_at"] == NOW
    assert [(c["kind"], c["path"], c["detail"]) for c in data["conflicts"]] == [
        ("conflict", "notes.txt", "content"), ("overlap", "docs/a|b, `c`: d.md",
                                               "separate hunks"),
        ("overlap", "notes.txt", "same lines")]


def test_report_does_not_write_or_change_anything(scenario: Path) -> None:
    plan = scenario / ".orchestrate/specs/001-demo/implementation_plan.json"
    before = (plan.read_bytes(), git(scenario, "for-each-ref"), git(scenario, "status",
                                                                       "--porcelain"))
    run_cli_in_process(scenario, "report", "001", check=0)
    assert (plan.read_bytes(), git(scenario, "for-each-ref"),
            git(scenario, "status", "--porcelain")) == before
    assert not (plan.parent / "conflict_report.md").exists()


def test_report_rejects_an_unknown_format_and_spec(scenario: Path) -> None:
    done = run_cli_in_process(scenario, "report", "001", "--format", "html", check=2)
    assert "--format" in done.stderr
    done = run_cli_in_process(scenario, "report", "999", check=2)
    assert "no spec folder named '999'" in done.stderr


def test_report_on_a_plan_that_never_ran(repo: Path) -> None:
    write_plan(repo, "002-fresh", {"phases": [{"phase": 1, "subtasks": [{"id": "x"}]}]})
    data = json.loads(run_cli_in_process(repo, "report", "002", "--format", "json", check=0).stdout)
    assert data["integration_branch"] == "orchestrate/002-fresh/integration"
    assert data["conflicts"] == []
    assert data["summary"]["subtasks"] == 1
    assert "No conflicts or overlaps." in run_cli_in_process(repo, "report", "002", check=0).stdout


def test_review_lists_commits_and_diffstat_per_subtask(scenario: Path) -> None:
    out = run_cli_in_process(scenario, "review", "001", check=0).stdout
    assert "integration branch orchestrate/001-demo/integration" in out
    assert "ui  conflict  merge=conflict" in out
    assert "ui: work" in out  # the commit subject
    assert "notes.txt | 2 +-" in out
    assert "docs/guide.md" in out
    assert "lint  failed\n  orchestrate/001-demo/lint" in out
    assert "(no commits)" in out  # lint's branch has none
    assert "release  blocked\n  orchestrate/001-demo/release: no branch yet" in out


def test_review_of_one_subtask_prints_its_diff_without_colour_when_piped(
        scenario: Path) -> None:
    out = run_cli_in_process(scenario, "review", "001", "ui", check=0).stdout
    assert out.startswith("diff --git a/notes.txt b/notes.txt")
    assert "-line 5\n+five by ui\n" in out
    assert "\x1b[" not in out


def test_review_of_one_subtask_is_coloured_on_a_terminal(scenario: Path) -> None:
    leader, follower = os.openpty()
    with os.fdopen(leader, "rb") as reader:
        done = subprocess.run([*ORCHESTRATE, "review", "001", "ui"], cwd=scenario,
                              stdout=follower, stderr=subprocess.PIPE, timeout=60, check=False)
        os.close(follower)
        assert done.returncode == 0, done.stderr
        out = _read_all(reader)
    assert b"\x1b[32mfive by ui\x1b[m" in out
    assert b"\x1b[31m-line 5" in out


def _read_all(reader: BinaryIO) -> bytes:
    chunks = []
    with contextlib.suppress(OSError):  # Linux reports the closed terminal as EIO
        while chunk := reader.read1(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_review_shows_the_branch_as_it_is_now(scenario: Path) -> None:
    tip = git(scenario, "rev-parse", "orchestrate/001-demo/ui")
    fixed = git(scenario, "commit-tree", f"{tip}^{{tree}}", "-p", tip, "-m", "ui: fix by hand")
    git(scenario, "update-ref", "refs/heads/orchestrate/001-demo/ui", fixed)
    assert "ui: fix by hand" in run_cli_in_process(scenario, "review", "001", check=0).stdout


def test_review_of_an_unknown_subtask_names_the_known_ones(scenario: Path) -> None:
    done = run_cli_in_process(scenario, "review", "001", "nope", check=2)
    assert "no subtask 'nope'" in done.stderr
    assert "setup, api, ui, docs, lint, release" in done.stderr


def test_review_and_report_do_not_import_trio(scenario: Path) -> None:
    code = ("import sys, orchestrator.cli.app, orchestrator.stage.conflict_report, "
            "orchestrator.face.review, "
            "orchestrator.workspace.clean; print('trio' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def _add_worktrees(repo: Path) -> dict[str, Path]:
    root = repo / ".orchestrate" / "worktrees"
    paths = {"ui": root / "001-demo" / "ui", "docs": root / "001-demo" / "docs",
             "pool": root / ".pool" / "001-demo--setup", "other": root / "002-other" / "x",
             "pool-other": root / ".pool" / "002-other--x",
             "pool-prefix": root / ".pool" / "001-demo-2--y"}
    git(repo, "worktree", "add", "-q", str(paths["ui"]), "orchestrate/001-demo/ui")
    git(repo, "worktree", "add", "-q", str(paths["docs"]), "orchestrate/001-demo/docs")
    git(repo, "worktree", "add", "-q", "--detach", str(paths["pool"]), "main")
    git(repo, "worktree", "add", "-q", "--detach", str(paths["other"]), "main")
    git(repo, "worktree", "add", "-q", "--detach", str(paths["pool-other"]), "main")
    git(repo, "worktree", "add", "-q", "--detach", str(paths["pool-prefix"]), "main")
    (root / ".pool" / "001-demo--gone").mkdir()  # a leftover git no longer knows
    (paths["ui"] / "notes.txt").write_text("uncommitted\n")  # dirty
    (paths["ui"] / "scratch.txt").write_text("untracked\n")
    git(repo, "worktree", "lock", "--reason", "in use", str(paths["docs"]))
    return paths


def _branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)",
               "refs/heads/orchestrate/001-demo/").splitlines()


def test_clean_removes_dirty_locked_and_pooled_worktrees_of_the_spec_only(
        scenario: Path) -> None:
    paths = _add_worktrees(scenario)
    head, status = git(scenario, "rev-parse", "HEAD"), git(scenario, "status", "--porcelain")
    done = run_cli_in_process(scenario, "clean", "001", check=0)
    assert "removed 3 worktrees, deleted 0 branches" in done.stdout
    assert not any(paths[k].exists() for k in ("ui", "docs", "pool"))
    assert paths["other"].is_dir()
    assert paths["pool-other"].is_dir()
    assert paths["pool-prefix"].is_dir()
    assert not (paths["pool"].parent / "001-demo--gone").exists()
    listed = git(scenario, "worktree", "list", "--porcelain")
    assert str(paths["ui"]) not in listed
    assert str(paths["other"]) in listed
    assert _branches(scenario) == sorted([*SUBTASK_BRANCHES,
                                          "orchestrate/001-demo/integration"])
    assert (git(scenario, "rev-parse", "HEAD"), git(scenario, "status", "--porcelain")) == (
        head, status)


def test_clean_branches_keeps_the_integration_branch_unless_all(scenario: Path) -> None:
    _add_worktrees(scenario)
    done = run_cli_in_process(scenario, "clean", "001", "--branches", check=0)
    assert "deleted branch orchestrate/001-demo/ui" in done.stdout
    assert _branches(scenario) == ["orchestrate/001-demo/integration"]
    run_cli_in_process(scenario, "clean", "001", "--all", check=0)
    assert _branches(scenario) == []
    assert git(scenario, "branch", "--show-current") == "main"


def test_clean_keeps_a_branch_checked_out_elsewhere(scenario: Path) -> None:
    elsewhere = scenario.parent / "mine"
    git(scenario, "worktree", "add", "-q", str(elsewhere), "orchestrate/001-demo/api")
    done = run_cli_in_process(scenario, "clean", "001", "--branches", check=1)
    assert f"kept branch orchestrate/001-demo/api: checked out in {elsewhere}" in done.stderr
    assert "orchestrate/001-demo/api" in _branches(scenario)
    assert "orchestrate/001-demo/ui" not in _branches(scenario)


def test_clean_refuses_while_a_build_holds_the_run_lock(scenario: Path) -> None:
    paths = _add_worktrees(scenario)
    with RunLock(resolve_spec(scenario, "001").folder).hold():
        done = run_cli(scenario, "clean", "001", check=3)  # the lock is held by this process
    assert "another build of this spec is running" in done.stderr
    assert paths["ui"].is_dir()
