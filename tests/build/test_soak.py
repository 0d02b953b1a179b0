"""Soak test: random scenarios (hypothesis, seeded) built by the real program and checked
against plain git (tests/build/soak_support.py): statuses, the integration tree, the conflicting
paths, the overlap paths and each side's line ranges must agree, and every build must exit
(the watchdog fails a hang).

By default CI runs about SOAK_SCENARIOS_DEFAULT scenarios: a fixed list of seeds plus two random
seeds (shown in the test ids; rerun them with ORCHESTRATE_SOAK_SEED=N[,M]). The long mode is
ORCHESTRATE_SOAK_EXAMPLES=500 (scenarios, spread over the same seeds); shrinking a failure to
a minimal scenario is off unless ORCHESTRATE_SOAK_SHRINK=1 (each step is a build).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.build.soak_support import (
    AGENT,
    Build,
    builds,
    git,
    observed,
    oracle,
    plan_for,
    prepare,
    write_files,
)
from tests.buildkit import MANUAL_RESOLVE
from tests.conftest import run_cli, unmount_overlays_under, write_plan

pytestmark = pytest.mark.slow  # a soak: many random builds

SPEC = "001-soak"
INTEGRATION = f"orchestrate/{SPEC}/integration"
PHASES_PER_BUILD = 4  # scenarios per build: one process start serves several
SOAK_SCENARIOS_DEFAULT = 56
FIXED_SEEDS = (20, 2026, 31337)
RANDOM_SEEDS = tuple(int(s) for s in os.environ.get("ORCHESTRATE_SOAK_SEED", "").split(",")
                     if s) or (random.randrange(1 << 32), random.randrange(1 << 32))
SEEDS = (*FIXED_SEEDS, *RANDOM_SEEDS)
SCENARIOS = int(os.environ.get("ORCHESTRATE_SOAK_EXAMPLES") or SOAK_SCENARIOS_DEFAULT)
BUILDS_PER_SEED = math.ceil(SCENARIOS / PHASES_PER_BUILD / len(SEEDS))
SHRINK = os.environ.get("ORCHESTRATE_SOAK_SHRINK") == "1"


def _new_repo(root: Path, case: Build) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# soak\n")
    for scenario in case.scenarios:
        write_files(repo / scenario.folder, scenario.base)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def check_build(case: Build, root: Path) -> None:
    """Build `case` with orchestrate, replay it with git, and compare scenario by scenario."""
    repo = _new_repo(root, case)
    spec_folder = write_plan(repo, SPEC, plan_for(case)).parent
    prep = root / "prep"
    prepare(case, prep)
    done = run_cli(repo, "build", SPEC, "--json", "--agent-command", AGENT,
                   "--max-parallel", str(case.max_parallel), "--overlap", case.overlap,
                   env={"SOAK_PREP": str(prep), **MANUAL_RESOLVE}, timeout=240)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    about = f"{case.describe()}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr}"
    assert events, about
    assert events[-1]["kind"] == "build_finished", about
    clone = root / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(repo), str(clone)], check=True)
    plan = json.loads((spec_folder / "implementation_plan.json").read_text())
    records = {s["id"]: s for p in plan["phases"] for s in p["subtasks"]}
    tips = {sid: git(repo, "rev-parse", f"orchestrate/{SPEC}/{sid}").stdout.strip()
            for sid in records}
    all_completed = True
    for scenario in case.scenarios:
        base = records[scenario.subtasks[0][0]]["orchestrate"]["base"]
        expected = oracle(clone, scenario, base, tips, case.overlap)
        got = observed(repo, spec_folder, events, scenario, INTEGRATION)
        assert got == expected, f"scenario {scenario.folder} of\n{about}"
        all_completed &= set(got.statuses.values()) == {"completed"}
        statuses = list(got.statuses.values())
        print(f"soak {scenario.folder} {case.overlap} -j{case.max_parallel}: "
              f"{len(statuses)} subtasks, {statuses.count('conflict')} conflict, "
              f"{len(got.overlaps)} overlaps, {len(got.tree)} files")
    assert done.returncode == (0 if all_completed else 1), about


@pytest.mark.parametrize("chosen", SEEDS, ids=[
    *(f"seed-{s}" for s in FIXED_SEEDS), *(f"random-seed-{s}" for s in RANDOM_SEEDS)])
def test_builds_agree_with_plain_git(chosen: int) -> None:
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if SHRINK else [])]

    @seed(chosen)
    @settings(max_examples=BUILDS_PER_SEED, deadline=None, database=None, phases=phases,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(builds(PHASES_PER_BUILD))
    def scenario(case: Build) -> None:
        root = Path(tempfile.mkdtemp(prefix="soak-"))
        try:
            check_build(case, root)
        finally:
            unmount_overlays_under(root)  # worktrees a failed subtask kept
            shutil.rmtree(root, ignore_errors=True)

    scenario()
