"""Repositories in awkward states: refused before anything is created when the build cannot
work, built correctly when it can; the user's checkout is never touched."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ORCHESTRATE, commit_all, git, phase, plan_of, write_plan
from tests.fault_support import (
    AGENT,
    INTEGRATION,
    SPEC,
    build,
    checkout_state,
    merged_subtasks,
    statuses,
    tree_of,
)

pytestmark = pytest.mark.slow  # real builds in awkward repositories

PLAN = plan_of(phase(1, ["alpha", "beta"], parallel=True))


def orchestrate_refs(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/orchestrate/",
               "refs/heads/orchestrate").splitlines()


def assert_refused(repo: Path, *args: str, words: str) -> None:
    """`build` exits 2 naming the problem and creates nothing."""
    plan_path = repo / ".orchestrate" / "specs" / SPEC / "implementation_plan.json"
    before = (plan_path.read_bytes(), orchestrate_refs(repo), checkout_state(repo))
    done = build(repo, *args, check=2)
    assert words in done.stderr
    assert (plan_path.read_bytes(), orchestrate_refs(repo), checkout_state(repo)) == before
    assert not (repo / ".orchestrate" / "worktrees").exists()


def build_and_check(repo: Path, plan_path: Path, *args: str,
                    ids: tuple[str, ...] = ("alpha", "beta")) -> None:
    """`build` exits 0, every subtask is merged once, and the user's checkout is untouched."""
    before = checkout_state(repo)
    build(repo, *args, check=0)
    assert checkout_state(repo) == before
    assert statuses(plan_path) == dict.fromkeys(ids, "completed")
    assert merged_subtasks(repo) == Counter(ids)
    assert {f"{i}.txt" for i in ids} <= set(tree_of(repo))


@pytest.mark.parametrize("blocker", ["orchestrate", f"orchestrate/{SPEC}"])
def test_a_branch_in_the_way_of_the_branch_names_is_refused(repo: Path, blocker: str) -> None:
    write_plan(repo, SPEC, PLAN)
    git(repo, "branch", blocker)
    refs = orchestrate_refs(repo)
    assert_refused(repo, words=f"branch {blocker!r} exists, so git cannot create branches")
    assert orchestrate_refs(repo) == refs


def test_the_integration_branch_checked_out_by_the_user_is_refused(repo: Path) -> None:
    write_plan(repo, SPEC, PLAN)
    git(repo, "switch", "-q", "-c", INTEGRATION)
    assert_refused(repo, words=f"the integration branch {INTEGRATION} is checked out in {repo}")


def test_the_integration_branch_checked_out_in_another_worktree_is_refused(
        repo: Path, tmp_path: Path) -> None:
    write_plan(repo, SPEC, PLAN)
    elsewhere = tmp_path / "elsewhere"
    git(repo, "worktree", "add", "-q", "-b", INTEGRATION, str(elsewhere))
    assert_refused(repo, words=f"is checked out in {elsewhere}")


def test_a_detached_head_needs_base(repo: Path) -> None:
    plan_path = write_plan(repo, SPEC, PLAN)
    git(repo, "switch", "-q", "--detach")
    assert_refused(repo, words="has a detached HEAD")
    assert "Pass --base REF" in build(repo, check=2).stderr
    build_and_check(repo, plan_path, "--base", "main")


def test_a_shallow_clone_builds(repo: Path, tmp_path: Path) -> None:
    (repo / "more.txt").write_text("more\n")
    commit_all(repo, "second")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    plan_path = write_plan(clone, SPEC, PLAN)
    build_and_check(clone, plan_path)


def test_a_repository_with_a_submodule_builds_and_keeps_the_gitlink(
        repo: Path, tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    git(library, "init", "-q", "-b", "main")
    (library / "lib.txt").write_text("lib\n")
    commit_all(library, "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library),
        "libs/lib")
    commit_all(repo, "add a submodule")
    gitlink = tree_of(repo, "HEAD")["libs/lib"]
    plan_path = write_plan(repo, SPEC, PLAN)
    build_and_check(repo, plan_path)
    assert tree_of(repo)["libs/lib"] == gitlink == "160000 commit"
    assert git(repo, "rev-parse", f"{INTEGRATION}:libs/lib") == git(repo, "rev-parse",
                                                                      "HEAD:libs/lib")


def test_spaces_and_non_ascii_in_the_repository_path_and_in_file_names(tmp_path: Path) -> None:
    repo = tmp_path / "my repo ü 日本"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("app\n")
    (repo / "README.md").write_text("readme\n")
    commit_all(repo, "initial")
    plan_path = write_plan(repo, "001-démo", plan_of(phase(1, ["odd-files", "beta"],
                                                           parallel=True)))
    before = checkout_state(repo)
    build(repo, check=0)
    assert statuses(plan_path) == {"odd-files": "completed", "beta": "completed"}
    integration = "orchestrate/001-démo/integration"
    assert "dir with space/naïve ü|`x` ```.txt" in tree_of(repo, integration)
    assert checkout_state(repo) == before


def test_a_leftover_unregistered_worktree_folder_is_replaced(repo: Path) -> None:
    plan_path = write_plan(repo, SPEC, PLAN)
    leftover = repo / ".orchestrate" / "worktrees" / SPEC / "alpha"
    leftover.mkdir(parents=True)
    (leftover / "junk.txt").write_text("left by a crash\n")
    build_and_check(repo, plan_path)
    assert "junk.txt" not in tree_of(repo)


def test_registered_but_deleted_worktrees_are_pruned(repo: Path) -> None:
    plan_path = write_plan(repo, SPEC, PLAN)
    root = repo / ".orchestrate" / "worktrees"
    mine, parked = root / SPEC / "alpha", root / ".pool" / f"{SPEC}--old"
    git(repo, "worktree", "add", "-q", "-b", f"orchestrate/{SPEC}/alpha", str(mine))
    git(repo, "worktree", "add", "-q", "--detach", str(parked))
    subprocess.run(["rm", "-rf", str(mine), str(parked)], check=True)
    build_and_check(repo, plan_path)
    assert str(mine) not in git(repo, "worktree", "list", "--porcelain")


def test_orchestrate_already_in_gitignore(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.pyc\n.orchestrate/\n")
    commit_all(repo, "ignore orchestrate")
    plan_path = write_plan(repo, SPEC, PLAN)
    build_and_check(repo, plan_path)
    assert git(repo, "show", f"{INTEGRATION}:.gitignore") == "*.pyc\n.orchestrate/"
    assert not [p for p in tree_of(repo) if p.startswith(".orchestrate")]


def test_two_specs_built_at_the_same_time_in_one_repository(repo: Path) -> None:
    same = tuple(f"s{n}" for n in range(5))  # same worktree names in git's admin folder
    ids = {"001-demo": (*same, "a"), "002-other": (*same, "b")}
    plans = {name: write_plan(repo, name, plan_of(phase(1, list(sub), parallel=True)))
             for name, sub in ids.items()}
    before = checkout_state(repo)
    builds = [subprocess.Popen([*ORCHESTRATE, "build", name, "--agent-command", AGENT],
                               cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for name in ids]
    for process in builds:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{out}\n{err}"
    for name, sub in ids.items():
        assert statuses(plans[name]) == dict.fromkeys(sub, "completed")
        integration = f"orchestrate/{name}/integration"
        assert merged_subtasks(repo, integration) == Counter(sub)
        assert {f"{i}.txt" for i in sub} <= set(tree_of(repo, integration))
    assert checkout_state(repo) == before
