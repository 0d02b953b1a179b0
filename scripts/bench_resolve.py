"""Benchmark (e) of scripts/bench.py: conflicts going back to the agent (SPEC 10).

One parallel phase of 10 subtasks on a small repository, in which 3 pairs edit the same line
of a shared file (so 3 subtasks conflict), built three ways in fresh clones: without the
conflicts (each subtask edits only its own file), with `--resolve agent` and a scripted
resolver (one more agent run that keeps both sides), and with `--resolve manual`. Figures:
how many subtasks end `completed` without a person, and each build's wall time, as a ratio of
the build without conflicts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ORCHESTRATE = [sys.executable, "-m", "orchestrator"]
SUBTASKS = 10
PAIRS = 3
AGENT = """\
import os, pathlib, subprocess, time
time.sleep(float(os.environ["BENCH_SLEEP"]))
if os.environ.get("ORCHESTRATE_RESOLVING"):  # keep both sides: drop git's marker lines
    listed = subprocess.run(["git", "diff", "--name-only", "--diff-filter=U", "-z"],
                            capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\\0")):
        path = pathlib.Path(name)
        path.write_text("".join(line for line in path.read_text().splitlines(True)
                                if not line.startswith(("<<<<<<<", "=======", ">>>>>>>"))))
    raise SystemExit(0)
n = int(os.environ["ORCHESTRATE_SUBTASK_ID"].removeprefix("s"))
pathlib.Path(f"src/own{n}.py").write_text(f"value = {n}\\n")
if os.environ["BENCH_CONFLICTS"] == "1" and n < 2 * PAIRS:
    shared = pathlib.Path(f"src/pair{n // 2}.py")
    shared.write_text(shared.read_text().replace("value = 0", f"value = {n}  # by s{n}"))
""".replace("PAIRS", str(PAIRS))


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env=_env())
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
            "ORCHESTRATE_SANDBOX": "none", **extra}  # its agents read BENCH_* variables


def _small_repo(folder: Path) -> Path:
    repo = folder / "repo"
    (repo / "src").mkdir(parents=True)
    _git("init", "-q", "-b", "main", cwd=repo)
    for k in range(PAIRS):
        (repo / "src" / f"pair{k}.py").write_text("# shared by two subtasks\nvalue = 0\n")
    (repo / "README.md").write_text("# bench\n")
    _git("add", "-A", cwd=repo)
    _git("commit", "-qm", "start", cwd=repo)
    spec = repo / ".orchestrate" / "specs" / "001-resolve"
    spec.mkdir(parents=True)
    plan = {"phases": [{"phase": 1, "name": "bench", "parallel_safe": True, "subtasks": [
        {"id": f"s{n}", "description": f"edit s{n}", "status": "pending"}
        for n in range(SUBTASKS)]}]}
    (spec / "implementation_plan.json").write_text(json.dumps(plan, indent=2))
    return repo


def _build(args: argparse.Namespace, folder: Path, agent: Path, *, conflicts: bool,
           resolve: str) -> tuple[float, int]:
    """Wall time of one build and how many subtasks it completed."""
    repo = _small_repo(folder)
    command = [*ORCHESTRATE, "build", "001", "--max-parallel", str(args.parallel),
               "--resolve", resolve, "--agent-command", f"{sys.executable} {agent}"]
    env = _env(BENCH_SLEEP=str(args.sleep), BENCH_CONFLICTS="1" if conflicts else "0")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"build failed ({done.returncode}):\n{done.stderr[-2000:]}")
    plan = json.loads((repo / ".orchestrate/specs/001-resolve/implementation_plan.json")
                      .read_text())
    completed = sum(s["status"] == "completed" for p in plan["phases"] for s in p["subtasks"])
    return wall, completed


def bench_resolve(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    agent = scratch / "resolve_agent.py"
    agent.write_text(AGENT)
    figures: dict[str, float] = {}
    for name, conflicts, resolve in (("no conflicts", False, "agent"),
                                     ("resolve agent", True, "agent"),
                                     ("resolve manual", True, "manual")):
        folder = scratch / name.replace(" ", "-")
        folder.mkdir()
        wall, completed = _build(args, folder, agent, conflicts=conflicts, resolve=resolve)
        figures[name] = wall
        figures[f"{name}, completed"] = completed
    return figures
