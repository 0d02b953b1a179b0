"""scripts/bench.py end to end on a tiny repository, so that the benchmark the README quotes
keeps running. Its figures are timings and are not checked here; only that every measurement
ran and printed a figure and its ratios."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the benchmarks end to end

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"^  (?P<name>.+?)\s+(?P<value>\d+\.\d{3})( s| MB)?$")


def test_the_benchmark_runs_every_measurement(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--files", "300", "--subtasks", "3",
         "--parallel", "2", "--sleep", "0.1", "--branches", "3", "--sessions", "3",
         "--repeat", "1"],
        env={**os.environ, "ORCHESTRATE_BENCH_CACHE": str(tmp_path / "cache")},
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    figures = {m["name"].strip(): float(m["value"])
               for m in map(FIGURE.match, done.stdout.splitlines()) if m}
    expected = {
        "orchestrate, 1st build", "orchestrate, 2nd build", "orchestrate, pool full", "naive",
        "one git worktree add",
        "ideal", "orchestrate, pool full / ideal", "orchestrate, pool full / naive",
        "orchestrate", "orchestrate / naive", "status", "version", "git status",
        "status / git status", "peak RSS_mb",
        "spread, wall", "together, wall", "ideal of the waves", "ideal together",
        "spread, wall / ideal of the waves", "no conflicts", "resolve agent",
        "resolve manual", "resolve agent / no conflicts"}
    assert expected <= set(figures), done.stdout
    assert figures["ideal"] == 0.2  # ceil(3 / 2) * 0.1 s
    assert figures["ideal of the waves"] == 0.8  # (ceil(9 / 2) + 3) * 0.1 s
    assert figures["conflicts, spread"] == 0.0, done.stdout
    assert figures["conflicts, together"] == 3.0, done.stdout
    assert all(value > 0 for name, value in figures.items()
               if not name.startswith("conflicts")), done.stdout
    assert (figures["resolve agent, completed"], figures["resolve manual, completed"]) == (10, 7)
    assert (tmp_path / "cache" / "repo-300" / ".git").is_dir()


def test_the_check_gate_benchmark_runs_and_counts_its_check_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--only", "check",
         "--check-subtasks", "4", "--check-seconds", "0.05"],
        env={**os.environ, "ORCHESTRATE_BENCH_CACHE": str(tmp_path / "cache")},
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    figures = {m["name"].strip(): float(m["value"])
               for m in map(FIGURE.match, done.stdout.splitlines()) if m}
    # 4 subtasks: the naive gate checks the base and after each merge
    assert figures["1 culprit: naive check runs"] == 5
    assert figures["2 culprits: naive check runs"] == 5
    # one culprit (s3): the base, all four, at most two probes, the rest re-merged
    assert figures["1 culprit: orchestrate check runs"] <= 1 + 1 + 2 + 1
    assert figures["1 culprit: orchestrate merge stage"] > 0
