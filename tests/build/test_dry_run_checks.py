"""`build --dry-run` runs the build's own checks (agent, repository, base, branch names), so a
dry run that passes is a build that starts; it names the base branch and commit, in text and
in `--json`. The spawned CLI on real repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git, phase, plan_of, run_cli, write_plan

pytestmark = pytest.mark.slow  # spawned builds, one per refusal

SPEC = "001-dry"
AGENT = ("--agent-command", "true")


def refused_alike(repo: Path, *args: str) -> str:
    """The real build and both dry runs refuse with exit 2 and the same message; nothing is
    created. Returns the message."""
    refs = git(repo, "for-each-ref") if (repo / ".git").exists() else ""
    real = run_cli(repo, "build", SPEC, *args, check=2)
    dry = run_cli(repo, "build", SPEC, "--dry-run", *args, check=2)
    dry_json = run_cli(repo, "build", SPEC, "--dry-run", "--json", *args, check=2)
    real_json = run_cli(repo, "build", SPEC, "--json", *args, check=2)
    assert dry.stderr == real.stderr
    assert dry_json.stderr == real_json.stderr
    assert dry.stdout == ""
    assert "Traceback" not in real.stderr + real_json.stderr
    assert git(repo, "for-each-ref") == refs
    assert not (repo / ".orchestrate" / "worktrees").exists()
    return real.stderr


@pytest.fixture
def planned(repo: Path) -> Path:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    return repo


def test_a_repository_without_commits_is_refused_like_the_build(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    assert "has no commits yet" in refused_alike(repo, *AGENT)


def test_a_bad_base_is_refused_like_the_build(planned: Path) -> None:
    assert "option --base: 'no-such-ref'" in refused_alike(planned, *AGENT, "--base",
                                                           "no-such-ref")


def test_a_branch_name_clash_is_refused_like_the_build(planned: Path) -> None:
    git(planned, "branch", "orchestrate")
    assert "branch 'orchestrate' exists" in refused_alike(planned, *AGENT)


def test_a_missing_agent_is_a_note_and_a_broken_one_is_refused_like_the_build(
        planned: Path) -> None:
    dry = run_cli(planned, "build", SPEC, "--dry-run", check=0)  # a dry run needs no agent
    assert "no agent configured" in dry.stderr
    assert "no agent configured" in run_cli(planned, "build", SPEC, check=2).stderr
    assert "`no-such-agent-program` is not on PATH" in refused_alike(
        planned, "--agent-command", "no-such-agent-program -p")


def test_the_dry_run_names_the_base_branch_and_commit(planned: Path) -> None:
    head = git(planned, "rev-parse", "main")
    text = run_cli(planned, "build", SPEC, "--dry-run", *AGENT, check=0).stdout
    assert (f"integration branch: orchestrate/{SPEC}/integration (would be created from main "
            f"at {head[:12]})") in text
    data = json.loads(run_cli(planned, "build", SPEC, "--dry-run", "--json", *AGENT,
                              check=0).stdout)
    assert (data["base_branch"], data["base_commit"], data["integration_branch_exists"]) == (
        "main", head, False)
    git(planned, "branch", "feature", head)
    data = json.loads(run_cli(planned, "build", SPEC, "--dry-run", "--json", *AGENT,
                              "--base", "feature", check=0).stdout)
    assert (data["base"], data["base_branch"]) == ("feature", "feature")
    run_cli(planned, "build", SPEC, *AGENT, check=0)
    tip = git(planned, "rev-parse", f"orchestrate/{SPEC}/integration")
    text = run_cli(planned, "build", SPEC, "--dry-run", *AGENT, check=0).stdout
    assert f"(exists, at {tip[:12]}; the build continues it)" in text
    data = json.loads(run_cli(planned, "build", SPEC, "--dry-run", "--json", *AGENT,
                              check=0).stdout)
    assert (data["integration_branch_exists"], data["base_commit"]) == (True, tip)
