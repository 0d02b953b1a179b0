"""What the user keeps and sees around a build: the checkout stays byte-identical, --dry-run
creates nothing, a missing agent is exit 2, --json is one object per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Recorder,
    agent_command,
    orchestrate_branches,
    plan_path,
    statuses,
    worktree_paths,
)
from tests.conftest import git, phase, plan_of, run_cli, write_plan


def checkout_snapshot(repo: Path) -> dict[str, Any]:
    """Everything of the user's checkout a build must not touch (read without refreshing it)."""
    files = {str(p.relative_to(repo)): p.read_bytes() for p in sorted(repo.rglob("*"))
             if p.is_file() and p.relative_to(repo).parts[0] not in (".git", ".orchestrate")}
    return {"status": git(repo, "--no-optional-locks", "status", "--porcelain=v2", "--branch",
                          "--untracked-files=all"),
            "head": git(repo, "rev-parse", "HEAD"),
            "branch": git(repo, "symbolic-ref", "HEAD"),
            "index": (repo / ".git" / "index").read_bytes(),
            "stash": git(repo, "stash", "list"),
            "files": files}


@pytest.mark.slow
def test_the_users_checkout_is_untouched(repo: Path, recorder: Recorder) -> None:
    (repo / ".git" / "info" / "exclude").write_text("/.orchestrate/\n")
    (repo / "src" / "app.py").write_text("staged edit\n")
    git(repo, "add", "src/app.py")
    (repo / "src" / "app.py").write_text("staged edit\nthen an unstaged one\n")
    (repo / "README.md").write_text("# my uncommitted notes\n")
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "scratch").mkdir()
    (repo / "scratch" / "deep.txt").write_text("untracked too\n")
    (repo / ".env").write_text("SECRET=1\n")
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["c"])))
    before = checkout_snapshot(repo)
    run_cli(repo, "build", SPEC, "--agent-command",
            agent_command("--append", "a=README.md,src/app.py",
                          "--append", "c=README.md"), env=recorder.env, check=0)
    assert statuses(repo) == dict.fromkeys("abc", "completed")
    assert "edit by a" in git(repo, "show", f"{INTEGRATION}:README.md")
    assert checkout_snapshot(repo) == before


def test_dry_run_creates_nothing(repo: Path, recorder: Recorder) -> None:
    path = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["c"])))
    plan_bytes = path.read_bytes()
    exclude = (repo / ".git" / "info" / "exclude").read_bytes()
    refs = git(repo, "for-each-ref")
    done = run_cli(repo, "build", SPEC, "--dry-run", "--agent-command", agent_command(),
                   env=recorder.env, check=0)
    assert f"orchestrate/{SPEC}/a" in done.stdout
    assert f"orchestrate/{SPEC}/c" in done.stdout
    assert path.read_bytes() == plan_bytes
    assert git(repo, "for-each-ref") == refs
    assert orchestrate_branches(repo) == []
    assert worktree_paths(repo) == [str(repo)]
    assert not (repo / ".orchestrate" / "worktrees").exists()
    assert not (path.parent / "logs").exists()
    assert (repo / ".git" / "info" / "exclude").read_bytes() == exclude
    assert recorder.events() == []


def test_no_agent_configured_is_exit_2_saying_how(repo: Path, recorder: Recorder) -> None:
    path = write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    plan_bytes = path.read_bytes()
    done = run_cli(repo, "build", SPEC, env=recorder.env, check=2)
    assert "--agent-command" in done.stderr
    assert "ANTHROPIC_API_KEY" in done.stderr
    assert path.read_bytes() == plan_bytes
    assert orchestrate_branches(repo) == []
    assert worktree_paths(repo) == [str(repo)]


@pytest.mark.slow
def test_json_prints_one_object_per_event(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["c"])))
    done = run_cli(repo, "build", SPEC, "--json", "--agent-command", agent_command(),
                   env=recorder.env, check=0)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(isinstance(e, dict) for e in events)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "build_started"
    assert kinds[-1] == "build_finished"
    for subtask_id in "abc":
        mine = [e["kind"] for e in events if e.get("subtask") == subtask_id]
        assert mine == ["subtask_started", "subtask_committed", "subtask_merged"]
    assert plan_path(repo).exists()
