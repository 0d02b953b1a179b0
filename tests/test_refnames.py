"""refname_problem against git itself: every subtask id it accepts makes a branch git accepts.

A subtask's branch is `orchestrate/<spec>/<id>`, so git is asked about that full name, both as a
ref (`git check-ref-format refs/heads/...`) and as a branch (`git check-ref-format --branch`).
refname_problem is stricter on purpose in a few documented ways (the id is also one folder name
and appears in command lines); those ids are listed below and nothing else may differ.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.names import refname_problem

VALID = [
    "a", "subtask-1-1", "chunk_2_3", "db-1", "0", "123", "_", "a.b", "v1.2.3", "a.lock.b",
    "lock", "a-", "a@b", "a@", "@@", "a{b}", "a}b", "a]b", "a!b", "a#b", "a'b", 'a"b', "a<b>",
    "a|b", "a;b", "a$b", "a&b", "a%b", "a=b", "a+b", "a,b", "HEAD", "FETCH_HEAD", "refs",
    "é", "日本語", "a\u00a0b", "x" * 200, "é" * 100,
]
INVALID = [
    "", "a b", " a", "a ", "a..b", "..", "a~b", "a^b", "a:b", "a?b", "a*b", "a[b", "a\\b",
    "a.lock", ".lock", ".a", ".", "a.", "@{", "a@{b", "a@{-1}", "a\x01b", "a\x1fb", "a\x7fb",
    "a\tb", "a\nb", "/a", "a/", "a//b",
]
# Git accepts these as the last component of orchestrate/<spec>/<id>; we refuse them on purpose.
STRICTER_ON_PURPOSE = [
    "a/b",  # a nested folder, and a branch that blocks any subtask named `a`
    "api/users/list",
    "-a",  # looks like an option on a command line
    "--force",
    "@",  # git's own shorthand for HEAD
    "x" * 201,  # folder names stop at 255 bytes; room is kept for suffixes
    "é" * 101,
]
CORPUS = VALID + INVALID + STRICTER_ON_PURPOSE


def _git_accepts(repo: Path, subtask_id: str) -> bool:
    branch = f"orchestrate/spec/{subtask_id}"
    checks = [["check-ref-format", f"refs/heads/{branch}"],
              ["check-ref-format", "--branch", branch]]
    return all(subprocess.run(["git", *args], cwd=repo, capture_output=True,
                              check=False).returncode == 0 for args in checks)


def test_corpus_size() -> None:
    assert len(CORPUS) >= 60
    assert len(set(CORPUS)) == len(CORPUS)


@pytest.mark.parametrize("subtask_id", CORPUS, ids=[repr(s)[:40] for s in CORPUS])
def test_refname_problem_agrees_with_git(repo: Path, subtask_id: str) -> None:
    problem = refname_problem(subtask_id)
    git_ok = _git_accepts(repo, subtask_id)
    if problem is None:
        assert git_ok, f"refname_problem accepts {subtask_id!r} but git rejects it"
    if not git_ok:
        assert problem is not None, f"git rejects {subtask_id!r} but refname_problem accepts it"
    if subtask_id in STRICTER_ON_PURPOSE:
        assert git_ok, f"git rejects {subtask_id!r}; move it to INVALID"
        assert problem is not None
    elif subtask_id in VALID:
        assert problem is None, f"{subtask_id!r} refused: {problem}"
    else:
        assert not git_ok, f"git accepts {subtask_id!r}; move it out of INVALID"


def test_problem_is_a_readable_reason() -> None:
    assert refname_problem("a b") == "it contains ' '"
    assert refname_problem("x.lock") == "it ends with '.lock'"
    assert refname_problem("a\x00b") is not None  # cannot even be passed to git


def test_an_accepted_id_really_makes_a_branch_and_a_worktree(repo: Path) -> None:
    for subtask_id in ["a{b}", "HEAD", "日本語", "a'b", "x" * 200]:
        assert refname_problem(subtask_id) is None
        branch = f"orchestrate/spec/{subtask_id}"
        path = repo / ".orchestrate" / "worktrees" / "spec" / subtask_id
        done = subprocess.run(["git", "worktree", "add", "-q", "-b", branch, str(path)],
                              cwd=repo, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert (path / "README.md").is_file()
