"""A git lock file left behind (by a killed process) in a subtask's own git steps: making its
worktree, committing its work, parking its worktree, reusing a parked one. Each fails the
subtask with the lock file's path and age, as the integration branch's stale lock does, never
with git's raw text or a crash, and the build exits 1; once the file is gone the subtask runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from merge import GitError, GitResult
from tests.conftest import git, phase, plan_of, read_json, run_cli, write_plan
from tests.fault_support import SPEC, checkout_state, error_of, statuses

TEN_MINUTES = 600
# `commit-lock` leaves a lock on its own branch, `park-lock` one on its worktree's HEAD (and
# no work, so that the commit needs no lock and parking is the step that meets it)
AGENT = r"""
me=$ORCHESTRATE_SUBTASK_ID
admin=$(git rev-parse --path-format=absolute --git-dir)
common=$(git rev-parse --path-format=absolute --git-common-dir)
[ -n "$TAME" ] && { echo "work of $me" > "$me.txt"; exit 0; }
case "$me" in
  commit-lock) echo "work" > "$me.txt"; lock="$common/refs/heads/$ORCHESTRATE_BRANCH.lock" ;;
  park-lock) lock="$admin/HEAD.lock" ;;
  *) echo "work of $me" > "$me.txt"; exit 0 ;;
esac
touch "$lock"; touch -d '10 minutes ago' "$lock"; echo "$lock" > "$MARKS/lock"
"""


def planted(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    then = path.stat().st_mtime - TEN_MINUTES
    os.utime(path, (then, then))
    return path


def locked_build(repo: Path, tmp_path: Path, *, tame: bool = False, check: int,
                 extra: tuple[str, ...] = (), pooled: bool = False) -> str:
    """`pooled`: full checkouts, parked for reuse (copy-on-write worktrees are never parked)."""
    script = tmp_path / "agent.sh"
    script.write_text(AGENT)
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    env = {"MARKS": str(marks), **({"TAME": "1"} if tame else {}),
           **({"ORCHESTRATE_WORKSPACE": "worktree"} if pooled else {})}
    done = run_cli(repo, "build", "001", "--agent-command", f"sh {script}", *extra, env=env,
                   check=check)
    output = done.stdout + done.stderr
    assert "internal error" not in output, output
    assert "Traceback" not in output, output
    assert "Another git process seems to be running" not in output, output  # git's raw text
    return output


def said_about(lock: Path) -> str:
    return f"the lock file {lock} exists (10 min old)"


@pytest.mark.slow
def test_a_lock_on_the_subtask_branch_when_its_worktree_is_made(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["made", "other"], parallel=True)))
    lock = planted(repo / ".git" / "refs" / "heads" / "orchestrate" / SPEC / "made.lock")
    checkout = checkout_state(repo)
    output = locked_build(repo, tmp_path, check=1)
    assert statuses(plan_path) == {"made": "failed", "other": "completed"}
    assert said_about(lock) in error_of(plan_path, "made")
    assert said_about(lock) in output
    lock.unlink()
    locked_build(repo, tmp_path, tame=True, extra=("--retry-failed",), check=0)
    assert statuses(plan_path) == {"made": "completed", "other": "completed"}
    assert checkout_state(repo) == checkout


@pytest.mark.slow
@pytest.mark.parametrize("subtask", ["commit-lock", "park-lock"])
def test_a_lock_left_in_a_subtask_step_after_its_agent(
        repo: Path, tmp_path: Path, subtask: str) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, [subtask, "other"], parallel=True)))
    checkout = checkout_state(repo)
    pooled = subtask == "park-lock"
    output = locked_build(repo, tmp_path, check=1, pooled=pooled)
    lock = Path((tmp_path / "marks" / "lock").read_text().strip())
    assert statuses(plan_path) == {subtask: "failed", "other": "completed"}
    assert said_about(lock) in error_of(plan_path, subtask)
    assert said_about(lock) in output
    lock.unlink()
    locked_build(repo, tmp_path, tame=True, extra=("--retry-failed",), check=0, pooled=pooled)
    assert statuses(plan_path) == {subtask: "completed", "other": "completed"}
    assert checkout_state(repo) == checkout


@pytest.mark.slow
def test_a_lock_left_in_a_parked_worktree_when_it_is_reused(
        repo: Path, tmp_path: Path) -> None:
    plan = plan_of(phase(1, ["first"]))
    plan_path = write_plan(repo, SPEC, plan)
    locked_build(repo, tmp_path, check=0, pooled=True)
    parked = next((repo / ".orchestrate" / "worktrees" / ".pool").iterdir())
    admin = Path(git(parked, "rev-parse", "--path-format=absolute", "--git-dir"))
    lock = planted(admin / "HEAD.lock")
    grown = read_json(plan_path)  # as the first build left it, with a second phase
    grown["phases"].append(phase(2, ["second"], depends_on=[1]))
    write_plan(repo, SPEC, grown)
    output = locked_build(repo, tmp_path, check=1, pooled=True)
    assert statuses(plan_path) == {"first": "completed", "second": "failed"}
    assert said_about(lock) in error_of(plan_path, "second")
    assert said_about(lock) in output
    lock.unlink()
    locked_build(repo, tmp_path, tame=True, extra=("--retry-failed",), check=0, pooled=True)
    assert statuses(plan_path) == {"first": "completed", "second": "completed"}


def test_every_git_step_stopped_by_a_lock_file_names_it_with_its_age(tmp_path: Path) -> None:
    """The one message, whatever step met the lock (a resolution round's commit included)."""
    lock = planted(tmp_path / "worktrees" / "x" / "HEAD.lock")
    stderr = (f"fatal: update_ref failed for ref 'HEAD': cannot lock ref 'HEAD': Unable to "
              f"create '{lock}': File exists.\n\nAnother git process seems to be running")
    error = GitError(("update-ref", "HEAD", "1" * 40), tmp_path, GitResult(128, "", stderr))
    assert str(error).startswith(f"git could not update a ref or index: {said_about(lock)}. ")
    assert "If no git is running, delete that file" in str(error)
    assert "Another git process" not in str(error)
