"""The quick path finds the repository's top folder without starting git; wherever it answers,
the answer is git's own (`rev-parse --show-toplevel`), and where git's rules could differ it
leaves the answer to git."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.face.quick import plain_top, repo_at
from tests.conftest import git


def test_the_top_folder_is_gits_in_a_checkout_a_subfolder_and_a_linked_worktree(
        repo: Path, tmp_path: Path) -> None:
    (repo / "a" / "b").mkdir(parents=True)
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "--detach", str(linked))
    (linked / "deep").mkdir()
    for start in (repo, repo / "a" / "b", linked, linked / "deep"):
        assert plain_top(start) == Path(git(start, "rev-parse", "--show-toplevel"))
        assert repo_at(start) == plain_top(start)


def test_inside_the_admin_folder_or_outside_any_repository_git_answers(
        repo: Path, tmp_path: Path) -> None:
    assert plain_top(repo / ".git" / "refs") is None
    (tmp_path / "plain").mkdir()
    assert plain_top(tmp_path / "plain") is None


@pytest.mark.parametrize("variable", ["GIT_DIR", "GIT_WORK_TREE", "GIT_CEILING_DIRECTORIES"])
def test_variables_that_move_the_search_leave_it_to_git(repo: Path, variable: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, str(repo.parent))
    assert plain_top(repo) is None


def test_a_core_worktree_setting_leaves_it_to_git(repo: Path) -> None:
    git(repo, "config", "core.worktree", str(repo))
    assert plain_top(repo) is None
