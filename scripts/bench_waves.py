"""Benchmark (e) of scripts/bench.py: scheduling around declared files (SPEC 11).

One parallel phase of 12 subtasks in a small repository; 4 of them (spread through the plan)
declare and append to one shared file, every subtask declares and creates its own file.
The same plan is built under `--schedule spread` and `--schedule together`, each in a fresh
repository: conflicts (subtasks ending in `conflict`) and wall time of each.

The ideal of the waves is what `spread` cannot beat: its waves run one after another, wave 1
holding the 8 free subtasks and the first sharer, then one wave per further sharer, each
wave taking ceil(size / parallel) agent durations.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ORCHESTRATE = [sys.executable, "-m", "orchestrator"]
SUBTASKS, SHARERS = 12, 4
AGENT = """\
import os, pathlib, time
time.sleep(float(os.environ["BENCH_SLEEP"]))
me = os.environ["ORCHESTRATE_SUBTASK_ID"]
pathlib.Path(f"work/{me}.txt").write_text(f"work of {me}\\n")
if me in os.environ["BENCH_SHARERS"].split(","):
    with open("shared.txt", "a") as shared:
        shared.write(f"edit by {me}\\n")
"""


def _run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _small_repo(folder: Path, env: dict[str, str]) -> Path:
    repo = folder / "repo"
    (repo / "work").mkdir(parents=True)
    for n in range(20):
        (repo / "work" / f"file{n}.txt").write_text(f"file {n}\n")
    (repo / "shared.txt").write_text("shared\n")
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "small repo"]):
        _run(*command, cwd=repo, env=env).check_returncode()
    return repo


def _plan(sharers: list[str]) -> dict[str, object]:
    subtasks = []
    for n in range(SUBTASKS):
        sid = f"s{n}"
        subtask: dict[str, object] = {"id": sid, "description": f"edit {sid}",
                                      "status": "pending",
                                      "files_to_create": [f"work/{sid}.txt"]}
        if sid in sharers:
            subtask["files_to_modify"] = ["shared.txt"]
        subtasks.append(subtask)
    return {"phases": [{"phase": 1, "name": "waves", "parallel_safe": True,
                        "subtasks": subtasks}]}


def _build(folder: Path, schedule: str, args: argparse.Namespace, env: dict[str, str],
           sharers: list[str]) -> tuple[float, int]:
    repo = _small_repo(folder, env)
    spec = repo / ".orchestrate" / "specs" / "001-waves"
    spec.mkdir(parents=True)
    (spec / "implementation_plan.json").write_text(json.dumps(_plan(sharers), indent=2))
    agent = folder / "agent.py"
    agent.write_text(AGENT)
    start = time.perf_counter()
    # --resolve manual: what `together` costs is its conflicts, left to a person (SPEC 10's
    # rounds would add agent runs the waves avoid; bench (g) measures those)
    done = _run(*ORCHESTRATE, "build", "001", "--schedule", schedule, "--max-parallel",
                str(args.parallel), "--resolve", "manual",
                "--agent-command", f"{sys.executable} {agent}", cwd=repo, env=env)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"build --schedule {schedule} failed ({done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    plan = json.loads((spec / "implementation_plan.json").read_text())
    statuses = [s["status"] for p in plan["phases"] for s in p["subtasks"]]
    if set(statuses) - {"completed", "conflict"}:
        raise SystemExit(f"build --schedule {schedule}: unexpected statuses {statuses}")
    return wall, statuses.count("conflict")


def bench_waves(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    from bench import ENV  # type: ignore[import-not-found]

    sharers = [f"s{n}" for n in range(0, SUBTASKS, SUBTASKS // SHARERS)][:SHARERS]
    env = {**ENV, "BENCH_SLEEP": str(args.sleep), "BENCH_SHARERS": ",".join(sharers)}
    figures: dict[str, float] = {}
    for schedule in ("spread", "together"):
        folder = scratch / f"waves-{schedule}"
        folder.mkdir()
        wall, conflicts = _build(folder, schedule, args, env, sharers)
        figures[f"{schedule}, wall"] = wall
        figures[f"conflicts, {schedule}"] = conflicts
    first_wave = SUBTASKS - SHARERS + 1
    figures["ideal of the waves"] = (math.ceil(first_wave / args.parallel)
                                     + SHARERS - 1) * args.sleep
    figures["ideal together"] = math.ceil(SUBTASKS / args.parallel) * args.sleep
    return figures
