"""orchestrate's own git runs nothing an agent planted: no hook, no fsmonitor, no filter,
textconv or merge driver that was not configured before the build (the user's own filter keeps
working), and merges are git's built-in 3-way merge whatever the attributes say."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import git, phase, plan_of, write_plan
from tests.fault_support import INTEGRATION, SPEC, checkout_state, statuses, subtasks
from tests.trust_support import attacked_build, disarm


@pytest.mark.slow
def test_planted_hooks_and_fsmonitor_never_run(repo: Path, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["plant-hooks"]), phase(2, ["later"])))
    before = checkout_state(repo)
    attacked_build(repo, tmp_path)
    assert not (tmp_path / "SPY").exists(), "a planted hook or fsmonitor ran"
    disarm(tmp_path)
    assert checkout_state(repo) == before
    assert git(repo, "show", f"{INTEGRATION}:later.txt") == "good work of later"


@pytest.mark.slow
def test_planted_filters_never_run_and_the_users_own_still_does(repo: Path,
                                                                tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    with (home / ".gitconfig").open("a") as config:  # the user's own, before the build
        config.write("[filter \"upper\"]\n\tclean = tr a-z A-Z\n\tsmudge = cat\n")
    (repo / ".gitattributes").write_text("*.txt filter=upper\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-q", "-m", "attributes")
    write_plan(repo, SPEC, plan_of(phase(1, ["plant-filters"]), phase(2, ["later"])))
    before = checkout_state(repo)
    attacked_build(repo, tmp_path)
    assert not (tmp_path / "SPY").exists(), (tmp_path / "SPY").read_text()
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n"
                                     "[filter \"upper\"]\n\tclean = tr a-z A-Z\n")
    (home / ".config" / "git" / "attributes").unlink()
    assert checkout_state(repo) == before
    # the user's filter ran on the content (upper case); the planted one never did
    assert git(repo, "show", f"{INTEGRATION}:later.txt") == "GOOD WORK OF LATER"
    assert git(repo, "show", f"{INTEGRATION}:plant-filters.txt") == "GOOD WORK OF PLANT-FILTERS"
    # what the agent left is what was committed
    assert git(repo, "show", f"{INTEGRATION}:later.py") == "print('later')"


@pytest.mark.slow
def test_planted_merge_attributes_and_drivers_leave_conflicts_conflicts(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(
        phase(1, ["mergers-edit-first", "edit-second"], parallel=True)))
    before = checkout_state(repo)
    output = attacked_build(repo, tmp_path)
    assert not (tmp_path / "SPY").exists(), "a planted merge driver ran"
    disarm(tmp_path)
    found = statuses(plan_path)
    assert sorted(found.values()) == ["completed", "conflict"], output
    conflicted = next(s for s, status in found.items() if status == "conflict")
    assert subtasks(plan_path)[conflicted]["orchestrate"]["merge"] == "conflict"
    line = git(repo, "show", f"{INTEGRATION}:src/app.py").splitlines()[2]
    assert line in ("first", "second")  # one side, never both (union) nor a driver's pick
    assert checkout_state(repo) == before
