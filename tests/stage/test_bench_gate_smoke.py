"""scripts/bench_gate.py end to end on small waves, so the table in docs/benchmarks.md keeps
being reproducible: orchestrate's verdicts and trees equal the sequential gate's, and it
never needs more check runs (the `check_retries` reruns apart) on a spec with history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gate_benchmark_matches_the_sequential_gate_on_small_waves(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_gate.py"),
                           "--sizes", "8", "--rates", "0,0.5", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["p"] for row in rows] == ["0", "0.5", "0.05 + pair", "0.05 + flaky check"]
    assert all(row["verdicts_equal"] for row in rows)
    assert rows[0]["runs_new"] == 2  # the base and the whole wave
    assert rows[0]["runs_gate"] == 9
    assert all(row["runs_history"] <= row["runs_gate"] for row in rows)
    assert rows[2]["culprits"] >= 1  # the pair's second branch at least
