"""500 subtasks whose declared files overlap: `validate` prints at most one line per subtask,
and `build --dry-run --json` and `validate --json` grow linearly with the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_plan
from tests.fault_support import SPEC


def overlapping_plan(repo: Path, count: int) -> None:
    subtasks = [{"id": f"s{i:03}", "description": "x", "status": "pending",
                 "files_to_modify": ["src/**", f"src/own{i}.py"]} for i in range(count)]
    write_plan(repo, SPEC, {"phases": [{"phase": 1, "name": "P", "parallel_safe": True,
                                        "subtasks": subtasks}]})


@pytest.mark.slow
def test_overlapping_globs_at_scale_print_a_line_per_subtask_and_linear_json(
        repo: Path) -> None:
    sizes: dict[int, dict[str, int]] = {}
    for count in (50, 500):
        overlapping_plan(repo, count)
        done = run_cli(repo, "validate", "001", check=0)
        lines = done.stdout.splitlines()
        assert len(lines) <= 1 + count
        assert sum("predicted overlap" in line for line in lines) == count
        validated = run_cli(repo, "validate", "001", "--json", check=0).stdout
        dry = run_cli(repo, "build", "001", "--dry-run", "--json", "--agent-command", "true",
                      check=0).stdout
        groups = json.loads(dry)["predicted_overlap_groups"]
        assert json.loads(dry)["predicted_overlaps_total"] == count * (count - 1) // 2
        assert {g["declared"] for g in groups} >= {"src/**", "src/own0.py"}
        sizes[count] = {"validate": len(validated), "dry_run": len(dry)}
    for kind in ("validate", "dry_run"):
        assert sizes[500][kind] < 15 * sizes[50][kind], sizes  # 10x the plan, not 100x
