#!/usr/bin/env python3
"""Benchmark of the conflict radar: what it adds to a build's wall time, and how soon it speaks.

    .venv/bin/python scripts/bench_radar.py                 # 20 subtasks, 20,000 files
    .venv/bin/python scripts/bench_radar.py --sleep 10 --repeat 1

One parallel phase of 20 subtasks, all running at once (--max-parallel 20), in a fresh clone
of the 20,000-file repository of scripts/bench.py. Each agent sleeps --sleep seconds; subtask
n changes line 1 (n even, at its start) or line 2 (n odd, half way through) of the file of
pair n // 2, so the radar has ten pairs of neighbouring edits to find, each made by the second
edit, and every sweep reads twenty worktrees of 20,000 files.

The same plan is built as one spec per run in the same clone, alternating `--radar off` and
`--radar show` (default interval, 5 s), after one warm-up build that fills the worktree pool,
so every measured build reuses parked worktrees the same way. Printed: the median wall time of
each, their ratio, the pairs announced, and for each pair how long after its second edit the
announcement came (an upper bound: it counts the program's start-up as well).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ENV, ORCHESTRATE, fresh_clone, write_plan

AGENT = """\
import json, os, pathlib, time
me = int(os.environ["ORCHESTRATE_SUBTASK_ID"].removeprefix("s"))
sleep = float(os.environ["BENCH_SLEEP"])
path = pathlib.Path(f"src/d{me // 2}/f0.py")
if me % 2:
    time.sleep(sleep / 2)
lines = path.read_text().splitlines(keepends=True)
lines[me % 2] = f"value_{me % 2} = 'changed by s{me}'\\n"
path.write_text("".join(lines))
with open(os.environ["BENCH_EDITS"], "a") as edits:
    edits.write(json.dumps({"id": f"s{me}", "t": time.time()}) + "\\n")
time.sleep(sleep / 2 if me % 2 else sleep)
"""


def build(repo: Path, spec: str, radar: str, args: argparse.Namespace,
          agent: Path, edits: Path) -> tuple[float, list[dict[str, object]], float]:
    """Wall time, events and start time (epoch) of one build of the plan as `spec`."""
    write_plan(repo, [{"id": f"s{n}", "description": f"edit pair {n // 2}", "status": "pending"}
                      for n in range(args.subtasks)], spec=spec)
    command = [*ORCHESTRATE, "build", spec, "--max-parallel", str(args.subtasks), "--json",
               "--radar", radar, "--resolve", "manual",
               "--agent-command", f"{sys.executable} {agent}"]
    env = {**ENV, "BENCH_SLEEP": str(args.sleep), "BENCH_EDITS": str(edits)}
    os.sync()
    launched = time.time()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"build {spec} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return elapsed, events, launched


def latencies(events: list[dict[str, object]], launched: float,
              edits: list[dict[str, float | str]]) -> list[float]:
    """Per announced pair: seconds from its second edit to the announcement (upper bound)."""
    edited = {str(e["id"]): float(e["t"]) for e in edits}
    found = []
    for event in events:
        if event["kind"] != "overlap_predicted":
            continue
        data = event["data"]
        assert isinstance(data, dict)
        second = max(edited[s] for s in data["subtasks"])
        found.append(launched + float(str(event["elapsed_s"])) - second)
    return found


def sweep_cost(repo: Path, count: int, scratch: Path) -> tuple[int, float, float, float]:
    """The radar's own reads, timed one after another: (worktrees, the first look at each,
    a later look at all of them, the CPU time of that later look: its git processes' and this
    process's, which a loaded machine does not inflate) in seconds, on the worktrees the builds
    left."""
    import trio

    from orchestrator.stage.radar_reads import WorktreeReader

    listing = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=repo,
                             capture_output=True, text=True, check=True).stdout
    trees = [Path(line.removeprefix("worktree ")) for line in listing.splitlines()
             if line.startswith("worktree ")][1:count + 1]  # not the repository's own
    heads = [subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True,
                            text=True, check=True).stdout.strip() for tree in trees]

    async def measure() -> tuple[float, float, float]:
        readers = [WorktreeReader(tree, head, scratch / f"bench-{n}.index")
                   for n, (tree, head) in enumerate(zip(trees, heads, strict=True))]
        start = time.perf_counter()
        for reader in readers:
            await reader.changes()
        first = time.perf_counter() - start
        laps, cpu = [], []
        for _ in range(5):
            start, used = time.perf_counter(), _cpu_seconds()
            for reader in readers:
                await reader.changes()
            laps.append(time.perf_counter() - start)
            cpu.append(_cpu_seconds() - used)
        return first, statistics.median(laps), statistics.median(cpu)
    first, later, cpu = trio.run(measure)
    return len(trees), first, later, cpu


def _cpu_seconds() -> float:
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--subtasks", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-radar-"))
    try:
        measure(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def measure(args: argparse.Namespace, scratch: Path) -> None:
    agent = scratch / "agent.py"
    agent.write_text(AGENT)
    repo = fresh_clone(args.files, scratch)
    times: dict[str, list[float]] = {"off": [], "show": []}
    pairs, delays = [], []
    runs = ["off"] + ["off", "show"] * args.repeat  # the first fills the pool (not counted)
    for number, radar in enumerate(runs):
        edits_file = scratch / f"edits-{number}.jsonl"
        elapsed, events, launched = build(repo, f"{number:03d}-radar-{radar}", radar, args,
                                          agent, edits_file)
        if number == 0:
            continue
        times[radar].append(elapsed)
        print(f"  build {number} radar {radar:<4} {elapsed:8.2f} s", flush=True)
        if radar == "show":
            edits = [json.loads(line) for line in edits_file.read_text().splitlines()]
            found = [e for e in events if e["kind"] == "overlap_predicted"]
            pairs.append(len(found))
            delays += latencies(events, launched, edits)
    trees, first, later, cpu = sweep_cost(repo, args.subtasks, scratch)
    print(f"\none sweep of {trees} worktrees: {later:.3f} s, CPU {cpu:.3f} s (every 5 s: "
          f"{cpu / 5:.1%} of one core); the first look at each: {first:.3f} s")
    if not times["show"]:
        return
    off, show = statistics.median(times["off"]), statistics.median(times["show"])
    print(f"\nradar ({args.subtasks} running subtasks, {args.files} files, agents sleep "
          f"{args.sleep:g} s, interval 5 s)")
    print(f"  radar off                {off:10.3f} s")
    print(f"  radar show               {show:10.3f} s")
    print(f"  show / off               {show / off:10.3f}")
    print(f"  pairs announced per build {', '.join(map(str, pairs))} "
          f"(expected {args.subtasks // 2})")
    if delays:
        print(f"  after the second edit    {statistics.median(delays):10.2f} s median, "
              f"{max(delays):.2f} s at most (interval + 2 = 7 s)")
    print(f"  load average             {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
