"""The merge stage writes a chain's merge commits through one `git hash-object` process
(merge.gitcmd.CommitWriter); each commit must be byte for byte the one `git commit-tree
--no-gpg-sign` makes, author and committer included, and the fallback to commit-tree (a
configured commit encoding other than UTF-8) must give the same commit as well."""

from __future__ import annotations

from pathlib import Path

import pytest

from merge.gitcmd import CommitWriter, GitError, run_git
from tests.conftest import git

MESSAGES = ["s1: add the model\n\nOrchestrate-Spec: 001\n", "no newline at the end",
            "ünïcode: ✓\n", "trailing blank lines\n\n\n"]


def commit_tree(repo: Path, tree: str, parents: list[str], message: str) -> str:
    args = ["commit-tree", "--no-gpg-sign", tree]
    for parent in parents:
        args += ["-p", parent]
    return run_git(repo, *args, input=message.encode()).stdout.strip()


@pytest.mark.parametrize("encoding", [None, "UTF-8", "ISO-8859-1"])
def test_the_writer_makes_the_commits_commit_tree_makes(repo: Path,
                                                        encoding: str | None) -> None:
    if encoding:
        git(repo, "config", "i18n.commitEncoding", encoding)
    head = git(repo, "rev-parse", "HEAD")
    (repo / "other.txt").write_text("other\n")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-qm", "other")
    other = git(repo, "rev-parse", "HEAD")
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    with CommitWriter(repo) as writer:
        made = [writer.commit(tree, [head, other], message) for message in MESSAGES]
    assert made == [commit_tree(repo, tree, [head, other], message) for message in MESSAGES]
    assert git(repo, "cat-file", "-t", made[0]) == "commit"
    assert git(repo, "log", "-1", "--format=%an <%ae> %cn <%ce>", made[0]) == (
        "Test Author <author@example.com> Test Committer <committer@example.com>")


def test_a_tree_that_is_not_one_fails_with_git_s_words(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    with CommitWriter(repo) as writer, pytest.raises(GitError, match="hash-object"):
        writer.commit("not-a-tree", [head], "message\n")
