#!/usr/bin/env python3
"""The speed figures in one run, as ratios against baselines measured in the same run:

    .venv/bin/python scripts/bench_speed.py                 # all, medians of 3 (~15 min)
    .venv/bin/python scripts/bench_speed.py --only status,merge --repeat 1

build     the benchmark of scripts/bench.py (a): one parallel phase of 20 subtasks, 5 at once,
          agents that sleep 2 s and edit 3 files, in a 20,000-file repository: the 1st build
          (no worktree to reuse) and the 2nd, against the naive git script and the ideal 8 s.
overhead  the per-subtask overhead of a 1st build on a 20,000-file and on a 200,000-file
          repository: 6 subtasks, 3 at once, agents that edit 3 files and do not sleep;
          wall time / subtasks; and of a 2nd build (another spec, same clone and base).
          The 200,000-file repository is generated once (~1 GB).
status    `orchestrate status` of a 20-subtask plan against `git status` in the same
          20,000-file checkout (medians of 21), bytecode compiled first.
merge     `orchestrate merge` of 50 finished branches against a `git merge --no-ff` loop.

The machine is shared: the load average (`uptime`) is printed before and after each part.
`--workspace auto|overlay|worktree` is passed to every build (ORCHESTRATE_WORKSPACE); the
first line says which kind of workspace the builds get (copy-on-write overlays or full
checkouts), as orchestrate decides it on this machine.

    .venv/bin/python scripts/bench_speed.py --only build,overhead --repeat 1
    .venv/bin/python scripts/bench_speed.py --only build,overhead --repeat 1 --workspace worktree
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench  # the shared helpers of scripts/bench.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def measure_build(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    return bench.bench_build(args, scratch)


def measure_overhead(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    """Wall time per subtask of a 1st build whose agents do not sleep, and of a 2nd build (a
    second spec) in the same clone: with overlays, the 1st makes the base's one shared checkout
    and the 2nd finds it made."""
    bench.compiled()
    agent = scratch / "agent.py"
    agent.write_text(bench.AGENT)
    env = {**bench.ENV, "BENCH_SLEEP": "0"}
    ids = [f"s{n}" for n in range(args.overhead_subtasks)]
    figures: dict[str, float] = {}
    for files in (args.files, args.big_files):
        runs: list[list[float]] = []
        for _ in range(args.repeat):
            repo = bench.fresh_clone(files, bench.kept_dir(scratch))
            times = []
            for spec in ("001-bench", "002-bench"):
                bench.write_plan(repo, [{"id": i, "description": f"edit {i}",
                                         "status": "pending"} for i in ids], spec=spec)
                command = [*bench.ORCHESTRATE, "build", spec, "--max-parallel",
                           str(args.overhead_parallel), "--agent-command",
                           f"{sys.executable} {agent}"]
                times.append(bench.timed(_run(command, repo, env)) / len(ids))
            runs.append(times)
        figures[f"per subtask, {files} files"] = statistics.median(r[0] for r in runs)
        figures[f"per subtask, 2nd build, {files} files"] = statistics.median(r[1] for r in runs)
    return figures


def _run(command: list[str], repo: Path, env: dict[str, str]) -> Callable[[], str]:
    return lambda: bench.sh(*command, cwd=repo, env=env)


def measure_status(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    bench.compiled()
    repo = bench.fresh_clone(args.files, bench.kept_dir(scratch))
    bench.write_plan(repo, [{"id": f"s{n}", "description": f"edit {n}", "status": "pending"}
                            for n in range(20)])
    commands = {"git status": ("git", "status"),
                "status": (*bench.ORCHESTRATE, "status", "001"),
                "version": (*bench.ORCHESTRATE, "--version"),
                "validate": (*bench.ORCHESTRATE, "validate", "001"),
                "list": (*bench.ORCHESTRATE, "list")}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(max(args.repeat, 21)):  # interleaved: a burst of load hits all alike
        for name, command in commands.items():
            start = time.perf_counter()
            bench.sh(*command, cwd=repo)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def measure_merge(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    return bench.bench_merge(args, scratch)


def parts(args: argparse.Namespace) -> dict[str, tuple[
        str, Callable[[argparse.Namespace, Path], dict[str, float]], list[tuple[str, str]]]]:
    small, big = f"per subtask, {args.files} files", f"per subtask, {args.big_files} files"
    small2, big2 = (f"per subtask, 2nd build, {args.files} files",
                    f"per subtask, 2nd build, {args.big_files} files")
    return {
        "build": (f"build: {args.subtasks} subtasks, {args.parallel} at once, agents sleep "
                  f"{args.sleep:g} s, {args.files} files", measure_build,
                  [("orchestrate, 1st build", "ideal"), ("orchestrate, 1st build", "naive"),
                   ("orchestrate, 2nd build", "ideal"), ("orchestrate, 2nd build", "naive"),
                   ("orchestrate, pool full", "ideal")]),
        "overhead": ("per-subtask overhead of a 1st build, agents that do not sleep",
                     measure_overhead,
                     [(big, small), (big2, small2)]),
        "status": (f"latency on a 20-subtask plan, {args.files} files", measure_status,
                   [("status", "git status"), ("version", "git status"),
                    ("validate", "git status"), ("list", "git status")]),
        "merge": (f"merge of {args.branches} branches", measure_merge, [("orchestrate", "naive")]),
    }


def workspace_kind(scratch: Path, mode: str) -> str:
    """The kind of workspace orchestrate gives subtasks here, decided as a build decides it."""
    from orchestrator.workspace.overlay import unavailable

    if mode == "worktree":
        return "worktree (full checkouts: --workspace worktree)"
    reason = unavailable(scratch)
    if reason is None:
        return f"overlay (copy-on-write; --workspace {mode})"
    if mode == "overlay":
        raise SystemExit(f"--workspace overlay, but {reason}")
    return f"worktree (full checkouts: {reason})"


def run_parts(args: argparse.Namespace, scratch: Path) -> None:
    for part in args.only.split(","):
        title, measure, ratios = parts(args)[part]
        before = load()
        figures = measure(args, scratch)
        bench.report(f"{title}  ({before} -> {load()})", figures, ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="build,overhead,status,merge")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--big-files", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--subtasks", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--overhead-subtasks", type=int, default=6)
    parser.add_argument("--overhead-parallel", type=int, default=3)
    parser.add_argument("--workspace", choices=("auto", "overlay", "worktree"), default="auto")
    args = parser.parse_args()
    bench.ENV["ORCHESTRATE_WORKSPACE"] = args.workspace
    print(f"orchestrate speed: medians of {args.repeat} runs, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory(prefix="orchestrate-speed-") as tmp:
        print(f"workspaces: {workspace_kind(Path(tmp), args.workspace)}")
        try:
            run_parts(args, Path(tmp))
        finally:
            from orchestrator.workspace.overlay import unmount_under

            unmount_under(Path(tmp))  # overlays a failed build left, before the folder goes
    if "build" in args.only:
        print(f"\n  ideal = ceil({args.subtasks}/{args.parallel}) x {args.sleep:g} s = "
              f"{math.ceil(args.subtasks / args.parallel) * args.sleep:g} s")


if __name__ == "__main__":
    main()
