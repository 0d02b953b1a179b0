"""scripts/bench.py end to end on a tiny repository, so that the benchmark the README quotes
keeps running. Its figures are timings and are not checked here; only that every measurement
ran and printed a figure and its ratios."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
        "status / git status", "peak RSS_mb", "no conflicts", "resolve agent",
        "resolve manual", "resolve agent / no conflicts"}
    assert expected <= set(figures), done.stdout
    assert figures["ideal"] == 0.2  # ceil(3 / 2) * 0.1 s
    assert all(value > 0 for value in figures.values()), done.stdout
    assert (figures["resolve agent, completed"], figures["resolve manual, completed"]) == (10, 7)
    assert (tmp_path / "cache" / "repo-300" / ".git").is_dir()
