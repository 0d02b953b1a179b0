"""The plan deleted, garbled, replaced by a folder or made unwritable (even for root) while a
build runs: the build stops with a clear error and exit 1, stops the agents still running,
keeps the committed branches, and a later build finishes once the plan is back."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git, phase, plan_of, write_plan
from tests.fault_support import (
    SPEC,
    build,
    checkout_state,
    merged_subtasks,
    statuses,
    tree_of,
)

pytestmark = pytest.mark.slow  # a real build whose plan is broken while it runs

CHANGED = "the plan changed under the run and is no longer usable"
UNWRITABLE = "cannot write the plan"


def _chattr_works(folder: Path) -> bool:
    probe = folder / "chattr-probe"
    probe.write_text("")
    try:
        done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, check=False)
    except FileNotFoundError:
        return False
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True, check=False)
    probe.unlink()
    return done.returncode == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def thawed(repo: Path) -> Iterator[Path]:
    """The repository, with every immutable flag cleared afterwards so it can be removed."""
    yield repo
    subprocess.run(["chattr", "-R", "-i", str(repo / ".orchestrate")], capture_output=True,
                   check=False)


@pytest.mark.parametrize(("saboteur", "words"), [
    ("deletes-plan", f"{CHANGED}:\n{{plan}}: cannot read the plan: No such file or directory"),
    ("garbles-plan", f"{CHANGED}:\n{{plan}}: not valid JSON"),
    ("plan-becomes-folder", f"{CHANGED}:\n{{plan}}: cannot read the plan: Is a directory"),
    ("freezes-plan", f"{{plan}}: {UNWRITABLE}: Operation not permitted"),
    ("freezes-spec-folder", f"{{plan}}: {UNWRITABLE}: Operation not permitted"),
])
def test_a_broken_plan_stops_the_build_cleanly_and_the_work_is_kept(
        thawed: Path, saboteur: str, words: str) -> None:
    repo = thawed
    if saboteur.startswith("freezes") and not _chattr_works(repo):
        pytest.skip("chattr +i is not available here")
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, [saboteur, "sleeps"], parallel=True),
                                                phase(2, ["later"])))
    original = plan_path.read_bytes()
    before = checkout_state(repo)
    started = time.monotonic()
    done = build(repo, check=1)
    assert time.monotonic() - started < 30  # the sleeping sibling was stopped, not awaited
    assert not _alive(int((Path(os.environ["HOME"]) / "sleeper.pid").read_text()))
    assert words.format(plan=plan_path) in done.stderr
    assert done.stderr.startswith("orchestrate: error: ")
    assert "Traceback" not in done.stderr
    assert "Restore the plan" in done.stderr or "Make the spec folder writable" in done.stderr
    branch = f"orchestrate/{SPEC}/{saboteur}"
    assert f"{saboteur}.txt" in tree_of(repo, branch)  # the work is committed and kept
    assert not git(repo, "branch", "--list", f"orchestrate/{SPEC}/later")
    assert checkout_state(repo) == before
    subprocess.run(["chattr", "-R", "-i", str(plan_path.parent)], capture_output=True,
                   check=False)
    if plan_path.is_dir():
        shutil.rmtree(plan_path)
    plan_path.write_bytes(original)
    build(repo, env={"ROGUE_TAME": "1"}, check=0)
    assert statuses(plan_path) == dict.fromkeys([saboteur, "sleeps", "later"], "completed")
    assert merged_subtasks(repo) == {saboteur: 1, "sleeps": 1, "later": 1}
    assert checkout_state(repo) == before
