"""Copy-on-write worktrees survive kill -9: a build killed at each overlay failpoint leaves its
mounts behind, and the next build unmounts the stale ones, finishes every subtask and leaves
no overlay mounted; `orchestrate clean` and `orchestrate reset` unmount what they remove.

Skipped, saying why, where the kernel refuses overlay mounts (not root, no CAP_SYS_ADMIN)."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from orchestrator import names
from orchestrator.door.mounts import overlay_mounts
from orchestrator.failpoints import ENV, OVERLAY_FAILPOINTS
from tests.conftest import phase, plan_of, run_cli, write_plan
from tests.fault_support import SPEC, build, merged_subtasks, statuses
from tests.workspace.test_overlay import WHY_NOT

pytestmark = [pytest.mark.slow,  # a killed build and a rerun per failpoint
              pytest.mark.skipif(WHY_NOT is not None,
                                 reason=f"overlay worktrees cannot be mounted here: {WHY_NOT}")]
IDS = ("alpha", "flaky-beta", "gamma")
OVERLAY = {"ORCHESTRATE_WORKSPACE": "overlay"}  # whatever the suite's default
PLAN = plan_of(phase(1, ["alpha", "flaky-beta"], parallel=True), phase(2, ["gamma"]))


def mounts_in(repo: Path) -> list[Path]:
    top = repo.resolve()
    return [m.target for m in overlay_mounts() if m.target.is_relative_to(top)]


@pytest.mark.parametrize("name", OVERLAY_FAILPOINTS)
def test_the_next_build_recovers_from_a_crash_at(repo: Path, name: str) -> None:
    plan_path = write_plan(repo, SPEC, PLAN)
    crashed = build(repo, env={ENV: name, **OVERLAY})
    assert crashed.returncode == -signal.SIGKILL, (
        f"failpoint {name} was never reached:\n{crashed.stdout}\n{crashed.stderr}")
    if name == "overlay-worktree-added":  # registered, nothing mounted on it yet
        assert list((repo / names.WORKTREE_ROOT / SPEC).iterdir())
    else:
        assert mounts_in(repo), "the killed build left no overlay mounted"
    build(repo, env=OVERLAY, check=0)
    assert statuses(plan_path) == dict.fromkeys(IDS, "completed")
    assert merged_subtasks(repo) == Counter(IDS)
    assert mounts_in(repo) == []
    state = repo / names.PRIVATE_DIR / "overlay" / SPEC
    assert not state.exists() or list(state.iterdir()) == []


def test_clean_unmounts_kept_worktrees_and_drops_the_shared_checkouts(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["alpha", "gamma"], parallel=True)))
    build(repo, "--keep-worktrees", env=OVERLAY, check=0)
    assert len(mounts_in(repo)) == 2
    run_cli(repo, "clean", SPEC, check=0)
    assert mounts_in(repo) == []
    assert list((repo / names.PRIVATE_DIR / "lower").glob("[0-9a-f]*")) == []
    assert not (repo / names.WORKTREE_ROOT / SPEC / "alpha").exists()


def test_reset_unmounts_the_subtasks_worktree(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["alpha", "gamma"], parallel=True)))
    build(repo, "--keep-worktrees", env=OVERLAY, check=0)
    worktree = (repo / names.WORKTREE_ROOT / SPEC / "alpha").resolve()
    assert worktree in mounts_in(repo)
    run_cli(repo, "reset", SPEC, "alpha", check=0)
    assert worktree not in mounts_in(repo)
    assert not worktree.exists()
    assert len(mounts_in(repo)) == 1  # gamma's stays
