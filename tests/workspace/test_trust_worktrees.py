"""A worktree whose .git an agent pointed at the user's own repository is never repaired
through: no git command of orchestrate runs in it, the user's checkout, HEAD and index stay
byte-identical, and a later build removes it and makes it afresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git, phase, plan_of, write_plan
from tests.fault_support import INTEGRATION, SPEC, build, merged_subtasks, statuses, subtasks
from tests.trust_support import attacked_build


def users_side(repo: Path) -> tuple[bytes, bytes, bytes, str]:
    """The user's HEAD, index and config files as bytes, and the checkout's status."""
    dotgit = repo / ".git"
    return ((dotgit / "HEAD").read_bytes(), (dotgit / "index").read_bytes(),
            (dotgit / "config").read_bytes(),
            git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".",
                ":(exclude).orchestrate"))


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["symlink", "gitdir"])
def test_a_worktree_pointed_at_the_users_repository_is_never_repaired_through(
        repo: Path, tmp_path: Path, attack: str) -> None:
    subtask = f"dotgit-{attack}"
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, [subtask, "sibling"], parallel=True),
                                               phase(2, ["later"], depends_on=[])))
    before = users_side(repo)
    attacked_build(repo, tmp_path, check=1)
    assert users_side(repo) == before
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    found = statuses(plan_path)
    assert found == {subtask: "failed", "sibling": "completed", "later": "completed"}
    error = str(subtasks(plan_path)[subtask]["orchestrate"]["error"])
    assert "no further attempt in a damaged worktree" in error
    assert merged_subtasks(repo) == {"sibling": 1, "later": 1}
    # a later build removes the damaged worktree and makes it afresh
    build(repo, "--retry-failed", env={"ROGUE_TAME": "1"}, check=0)
    assert statuses(plan_path)[subtask] == "completed"
    assert git(repo, "show", f"{INTEGRATION}:{subtask}.txt") == subtask
    assert users_side(repo)[:2] == before[:2]
