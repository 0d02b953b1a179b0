"""`orchestrate pr` (SPEC 13) against a fake `gh` on PATH and a local bare repository as
`origin`: what is pushed, what `gh` is asked, and what is refused before anything is pushed."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.buildkit import INTEGRATION, SPEC, Recorder, agent_command, build, plan_path
from tests.conftest import commit_files, git, phase, plan_of, read_json, run_cli, write_plan

pytestmark = pytest.mark.slow  # real builds and pushes to a bare remote

FAKE_GH = Path(__file__).resolve().parent / "fakes" / "gh.py"
NOW = "2026-01-02T03:04:05Z"


class FakeGitHub:
    def __init__(self, tmp_path: Path, remote: Path) -> None:
        self.bin = tmp_path / "gh-bin"
        self.bin.mkdir()
        self.state = tmp_path / "gh-state.json"
        gh = self.bin / "gh"
        gh.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE_GH} \"$@\"\n")
        gh.chmod(gh.stat().st_mode | stat.S_IXUSR)
        self.env = {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
                    "FAKE_GH_STATE": str(self.state), "FAKE_GH_REMOTE": str(remote)}

    def data(self) -> dict[str, Any]:
        return read_json(self.state) if self.state.exists() else {"pulls": [], "calls": []}

    def calls(self, *prefix: str) -> list[list[str]]:
        return [c["argv"] for c in self.data()["calls"] if c["argv"][:len(prefix)] == list(prefix)]

    def log_out(self) -> None:
        self.state.write_text(json.dumps({"authenticated": False, "pulls": [], "calls": []}))


@pytest.fixture
def origin(tmp_path: Path, repo: Path) -> Path:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    return bare


@pytest.fixture
def github(tmp_path: Path, origin: Path) -> FakeGitHub:
    return FakeGitHub(tmp_path, origin)


def pr(repo: Path, github: FakeGitHub, *args: str, check: int | None = 0) -> Any:
    return run_cli(repo, "pr", SPEC, *args, env=github.env, check=check)


def remote_tip(origin: Path, branch: str = INTEGRATION) -> str | None:
    done = git(origin, "for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}")
    return done or None


@pytest.fixture(autouse=True)
def pinned_report_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report the build writes and the body `pr` renders carry the same timestamp."""
    monkeypatch.setenv("ORCHESTRATE_NOW", NOW)


def built(repo: Path, recorder: Recorder, ids: list[str], *agent_args: str,
          check: int = 0) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True), feature="User login"))
    build(repo, recorder, *agent_args, check=check)


def test_first_pr_pushes_and_creates_with_the_report_as_body(
        repo: Path, recorder: Recorder, origin: Path, github: FakeGitHub) -> None:
    built(repo, recorder, ["a", "b"])
    done = pr(repo, github)
    assert remote_tip(origin) == git(repo, "rev-parse", INTEGRATION)
    [pull] = github.data()["pulls"]
    report = (plan_path(repo).parent / "conflict_report.md").read_text()
    assert pull["body"] == report
    assert (pull["head"], pull["base"], pull["title"]) == (INTEGRATION, "main", "User login")
    assert pull["draft"] is False
    assert f"opened pull request {pull['url']}" in done.stdout
    assert github.calls("auth", "status")  # checked before the push


def test_a_second_pr_after_another_merge_edits_the_same_pull_request(
        repo: Path, recorder: Recorder, origin: Path, github: FakeGitHub) -> None:
    built(repo, recorder, ["a", "b"])
    pr(repo, github)
    plan = read_json(plan_path(repo))
    plan["phases"].append(phase(2, ["c"]))
    plan_path(repo).write_text(json.dumps(plan, indent=2) + "\n")
    build(repo, recorder)
    done = pr(repo, github)
    [pull] = github.data()["pulls"]
    assert len(github.calls("pr", "create")) == 1
    [edit] = github.calls("pr", "edit")
    assert edit[:3] == ["pr", "edit", "1"]
    assert pull["body"] == (plan_path(repo).parent / "conflict_report.md").read_text()
    assert "| `c` |" in pull["body"]
    assert remote_tip(origin) == git(repo, "rev-parse", INTEGRATION)
    assert "force" not in done.stdout
    assert f"updated pull request {pull['url']}" in done.stdout


def test_require_clean_with_an_unfinished_subtask_pushes_nothing(
        repo: Path, recorder: Recorder, origin: Path, github: FakeGitHub) -> None:
    built(repo, recorder, ["a", "b"], "--fail", "b", check=1)
    done = pr(repo, github, "--require-clean", check=1)
    assert "b (failed)" in done.stderr
    assert "nothing was pushed" in done.stderr
    assert remote_tip(origin) is None
    assert not github.calls("pr")


def test_no_gh_on_path_is_exit_2_saying_what_to_do(
        repo: Path, recorder: Recorder, origin: Path, github: FakeGitHub) -> None:
    built(repo, recorder, ["a"])
    env = {**github.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"}
    if any((Path(p) / "gh").exists() for p in env["PATH"].split(os.pathsep)):
        pytest.skip("a real gh is installed in /usr/bin or /bin")
    done = run_cli(repo, "pr", SPEC, env=env, check=2)
    assert "`gh` (GitHub CLI) is not on PATH" in done.stderr
    assert "gh auth login" in done.stderr
    assert "Traceback" not in done.stderr
    assert remote_tip(origin) is None


def test_gh_not_logged_in_is_exit_2(repo: Path, recorder: Recorder, origin: Path,
                                     github: FakeGitHub) -> None:
    built(repo, recorder, ["a"])
    github.log_out()
    done = pr(repo, github, check=2)
    assert "not logged in" in done.stderr
    assert "gh auth login" in done.stderr
    assert remote_tip(origin) is None
    assert not github.calls("pr")


def test_no_such_remote_is_exit_2_naming_it(repo: Path, recorder: Recorder, origin: Path,
                                             github: FakeGitHub) -> None:
    built(repo, recorder, ["a"])
    done = pr(repo, github, "--remote", "upstream", check=2)
    assert "no remote named 'upstream'" in done.stderr
    assert "git remote add upstream URL" in done.stderr
    assert not github.calls()


def test_draft_title_and_base_reach_gh(repo: Path, recorder: Recorder, origin: Path,
                                       github: FakeGitHub) -> None:
    built(repo, recorder, ["a"])
    git(repo, "branch", "release", "main")
    pr(repo, github, "--draft", "--title", "Login, take two", "--base", "release")
    [create] = github.calls("pr", "create")
    assert "--draft" in create
    assert create[create.index("--title") + 1] == "Login, take two"
    assert create[create.index("--base") + 1] == "release"
    [pull] = github.data()["pulls"]
    assert pull["draft"] is True
    assert pull["title"] == "Login, take two"


def test_a_remote_branch_that_is_not_an_ancestor_is_replaced_with_a_lease(
        repo: Path, recorder: Recorder, origin: Path, github: FakeGitHub) -> None:
    built(repo, recorder, ["a"])
    stray = commit_files(repo, git(repo, "rev-parse", "main"), {"stray.txt": "x\n"}, "stray")
    git(repo, "push", "-q", "origin", f"{stray}:refs/heads/{INTEGRATION}")
    done = pr(repo, github)
    assert "--force-with-lease" in done.stdout
    assert remote_tip(origin) == git(repo, "rev-parse", INTEGRATION)


def test_pr_before_any_build_is_exit_2(repo: Path, origin: Path, github: FakeGitHub) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    done = pr(repo, github, check=2)
    assert "no integration branch" in done.stderr
    assert f"orchestrate build {SPEC}" in done.stderr
    assert not github.calls()


def test_a_build_with_merged_work_names_orchestrate_pr(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    partly = build(repo, recorder, "--fail", "b", check=1)
    assert f"`orchestrate pr {SPEC}` opens (or updates) a pull request" in partly
    done = build(repo, recorder, options=("--retry-failed",))
    assert f"then `orchestrate pr {SPEC}`" in done
    nothing = tmp_spec_without_work(repo, recorder)
    assert "orchestrate pr" not in nothing


def tmp_spec_without_work(repo: Path, recorder: Recorder) -> str:
    """A build whose only subtask failed: nothing merged, so no pull request to suggest."""
    write_plan(repo, "002-other", plan_of(phase(1, ["x"])))
    return run_cli(repo, "build", "002", "--agent-command", agent_command("--fail", "x"),
                   env=recorder.env, check=1).stdout


def test_pr_pushes_with_the_users_hooks_and_none_an_agent_planted(
        repo: Path, tmp_path: Path, origin: Path, github: FakeGitHub) -> None:
    """The attacker points core.hooksPath (in the user's global config) at hooks of its own,
    pre-push included: `pr`'s push runs the user's hooks as they were before the build."""
    from tests.trust_support import attacked_build, disarm

    # the remote is a repository on this machine: its own receiving end must not read the
    # global config the agent wrote to (a real remote never reads it)
    git(origin, "config", "core.hooksPath", os.devnull)
    mine = tmp_path / "pre-push-ran"
    hook = repo / ".git" / "hooks" / "pre-push"
    hook.write_text(f"#!/bin/sh\ntouch '{mine}'\n")
    hook.chmod(0o755)
    write_plan(repo, SPEC, plan_of(phase(1, ["plant-hooks"])))
    attacked_build(repo, tmp_path, check=0)
    assert "attack" in git(repo, "config", "--global", "core.hooksPath")  # still planted
    done = pr(repo, github)
    assert "Traceback" not in done.stdout + done.stderr
    assert remote_tip(origin) == git(repo, "rev-parse", INTEGRATION)
    assert mine.exists(), "the user's own pre-push hook did not run"
    assert not (tmp_path / "SPY").exists(), (tmp_path / "SPY").read_text()
    disarm(tmp_path)
