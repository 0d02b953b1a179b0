"""`refs/stash` is shared by every worktree: one agent's `git stash` and another's
`git stash pop` would move the first one's work into the second's commit. A stash written
while attempts run fails them (even when a push and a pop leave the stash as it was), the
worktree that may hold another's work is reset before its retry, and what was taken out of
the stash is stored in it again: nothing is committed under the wrong subtask, nothing lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.failpoints import STASH_FAILPOINTS
from tests.conftest import git, phase, plan_of, run_cli, write_plan
from tests.fault_support import INTEGRATION, SPEC, checkout_state, merged_subtasks, subtasks

# The stashing agent pushes its work once the popping one runs, and waits for the pop; the
# popping agent pops whatever is on top of the stash. On later attempts (or with TAME set) both
# just work.
AGENT = r"""
set -e
me=$ORCHESTRATE_SUBTASK_ID
echo "work of $me" > "$me-work.txt"
[ "$ORCHESTRATE_ATTEMPT" = 1 ] && [ -z "$TAME" ] || exit 0
wait_for() {
  i=0; while [ ! -e "$MARKS/$1" ]; do i=$((i+1)); [ $i -lt 200 ] || exit 3; sleep 0.05; done
}
case "$me" in
  stasher) wait_for popper-running; git stash push -q -u -m "$me's work"
           touch "$MARKS/stashed"; wait_for popped ;;
  popper) touch "$MARKS/popper-running"; wait_for stashed
          git stash pop -q; touch "$MARKS/popped" ;;
  user-popper) git stash pop -q ;;
  pusher) git stash push -q -u -m "$me's work" ;;
esac
"""


def agent_env(tmp_path: Path) -> tuple[str, dict[str, str]]:
    script = tmp_path / "agent.sh"
    script.write_text(AGENT)
    marks = tmp_path / "marks"
    marks.mkdir()
    return f"sh {script}", {"MARKS": str(marks)}


def stash_build(repo: Path, tmp_path: Path, *subtask_ids: str, check: int) -> str:
    agent, env = agent_env(tmp_path)
    write_plan(repo, SPEC, plan_of(phase(1, list(subtask_ids), parallel=True)))
    done = run_cli(repo, "build", "001", "--agent-command", agent, "--max-parallel", "2",
                   env=env, check=check)
    output = done.stdout + done.stderr
    assert "internal error" not in output, output
    assert "Traceback" not in output, output
    return output


def committed_by(repo: Path, path: str) -> set[str]:
    """The subtasks whose commits on the integration branch added `path`."""
    log = git(repo, "log", "--no-merges", "--format=%(trailers:key=Orchestrate-Subtask,"
              "valueonly)", "--diff-filter=A", INTEGRATION, "--", path)
    return {line for line in log.splitlines() if line}


def stash_subjects(repo: Path) -> list[str]:
    return git(repo, "stash", "list", "--format=%gs").splitlines()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self"), reason="the kernel's reports need Linux")
def test_a_stash_pushed_by_one_agent_and_popped_by_another_is_caught(
        repo: Path, tmp_path: Path) -> None:
    """The push and the pop both happen between two checks: the stash looks unchanged."""
    checkout = checkout_state(repo)
    output = stash_build(repo, tmp_path, "stasher", "popper", check=0)
    found = subtasks(repo / ".orchestrate/specs" / SPEC / "implementation_plan.json")
    for subtask in ("stasher", "popper"):
        assert found[subtask]["orchestrate"]["attempts"] == 2, output
    assert "refs/stash changed: the stash is shared by every worktree" in output
    assert "its worktree was reset to" in output
    # the stasher's work is committed under its own name only, the popper's under its own
    assert committed_by(repo, "stasher-work.txt") == {"stasher"}
    assert committed_by(repo, "popper-work.txt") == {"popper"}
    assert merged_subtasks(repo) == {"stasher": 1, "popper": 1}
    # and what the first attempt stashed is not lost: it is in the stash again
    assert stash_subjects(repo) == [f"On orchestrate/{SPEC}/stasher: stasher's work"]
    kept = git(repo, "stash", "show", "--include-untracked", "--name-only", "stash@{0}")
    assert kept.splitlines() == ["stasher-work.txt"]
    assert checkout_state(repo) == checkout


@pytest.mark.slow
def test_an_agent_that_stashes_its_work_is_failed_and_the_work_stays_in_the_stash(
        repo: Path, tmp_path: Path) -> None:
    output = stash_build(repo, tmp_path, "pusher", check=0)
    found = subtasks(repo / ".orchestrate/specs" / SPEC / "implementation_plan.json")
    assert found["pusher"]["orchestrate"]["attempts"] == 2
    assert "refs/stash changed" in output
    assert f"On orchestrate/{SPEC}/pusher: pusher's work" in output  # where the work is
    assert committed_by(repo, "pusher-work.txt") == {"pusher"}
    assert stash_subjects(repo) == [f"On orchestrate/{SPEC}/pusher: pusher's work"]


@pytest.mark.slow
def test_an_agent_that_pops_the_users_stash_commits_none_of_it(
        repo: Path, tmp_path: Path) -> None:
    (repo / "README.md").write_text("the user's unfinished edit\n")
    git(repo, "stash", "push", "-q", "-m", "the user's own")
    before = git(repo, "rev-parse", "refs/stash")
    checkout = checkout_state(repo)
    output = stash_build(repo, tmp_path, "user-popper", check=0)
    found = subtasks(repo / ".orchestrate/specs" / SPEC / "implementation_plan.json")
    assert found["user-popper"]["orchestrate"]["attempts"] == 2
    assert "refs/stash changed" in output
    assert git(repo, "show", f"{INTEGRATION}:README.md") == "# demo"
    assert committed_by(repo, "user-popper-work.txt") == {"user-popper"}
    assert git(repo, "rev-parse", "refs/stash") == before
    assert stash_subjects(repo) == ["On main: the user's own"]
    assert checkout_state(repo) == checkout


@pytest.mark.slow
@pytest.mark.parametrize("point", STASH_FAILPOINTS)
def test_killed_before_the_stash_is_stored_again_the_next_build_stores_it(
        repo: Path, tmp_path: Path, point: str) -> None:
    agent, env = agent_env(tmp_path)
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["stasher", "popper"], parallel=True)))
    checkout = checkout_state(repo)
    killed = run_cli(repo, "build", "001", "--agent-command", agent, "--max-parallel", "2",
                     env={**env, "ORCHESTRATE_FAILPOINT": point})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert stash_subjects(repo) == []  # popped, and not stored again yet
    done = run_cli(repo, "build", "001", "--agent-command", agent, env={**env, "TAME": "1"},
                   check=0)
    output = done.stdout + done.stderr
    assert "internal error" not in output, output
    assert "Traceback" not in output, output
    assert "refs/stash changed" in output  # said when it is stored again
    assert stash_subjects(repo) == [f"On orchestrate/{SPEC}/stasher: stasher's work"]
    assert {s: v["status"] for s, v in subtasks(plan_path).items()} == {
        "stasher": "completed", "popper": "completed"}
    assert committed_by(repo, "stasher-work.txt") == {"stasher"}
    assert committed_by(repo, "popper-work.txt") == {"popper"}
    assert checkout_state(repo) == checkout


@pytest.mark.slow
def test_a_stash_made_while_no_attempt_runs_is_the_users_and_fails_nothing(
        repo: Path, tmp_path: Path) -> None:
    """The user stashes in their checkout while the build prepares a worktree (a `setup`
    command stands in for the user, at a moment when no attempt runs)."""
    (repo / "orchestrate.toml").write_text(
        'setup = ["cd \\"$USERS_CHECKOUT\\" && echo edit >> README.md && '
        'git stash push -q -m mine"]\n')
    agent, env = agent_env(tmp_path)
    write_plan(repo, SPEC, plan_of(phase(1, ["quiet"])))
    done = run_cli(repo, "build", "001", "--agent-command", agent,
                   env={**env, "USERS_CHECKOUT": str(repo)}, check=0)
    assert "refs/stash" not in done.stdout + done.stderr
    found = subtasks(repo / ".orchestrate/specs" / SPEC / "implementation_plan.json")
    assert found["quiet"]["orchestrate"]["attempts"] == 1
    assert stash_subjects(repo) == ["On main: mine"]
