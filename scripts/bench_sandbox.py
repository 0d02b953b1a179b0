#!/usr/bin/env python3
"""Benchmark of the sandbox (bubblewrap) against no sandbox, in the same run.

    .venv/bin/python scripts/bench_sandbox.py                 # medians of 3 builds each
    .venv/bin/python scripts/bench_sandbox.py --files 2000 --repeat 1

(a) process start: `/bin/true` started through the process door (orchestrator/door) with no
    sandbox and in a sandbox (network none, and network allow with the egress forwarder),
    interleaved, 60 of each: the median of each and the difference of the medians.
(b) build: benchmark (a) of scripts/bench.py (one parallel phase of 20 subtasks, 5 at once,
    agents that sleep 2 s and edit 3 files of the 20,000-file repository) with
    `--sandbox none` and with `--sandbox bwrap`, alternating, each in a fresh clone: the
    median of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import trio

from orchestrator.workspace.overlay import unmounted_on_exit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ENV, ORCHESTRATE, fresh_clone, kept_dir, sh, timed

from orchestrator.door.egress import AllowList, EgressProxy
from orchestrator.door.processes import run_in_group
from orchestrator.door.sandbox import Confinement, probe

# the sandbox passes no BENCH_* variable: the agent's sleep is in its text
AGENT = """\
import os, pathlib, time
time.sleep({sleep})
n = int(os.environ["ORCHESTRATE_SUBTASK_ID"].removeprefix("s"))
for k in range(3):
    path = pathlib.Path(f"src/d{{n}}/f{{k}}.py")
    path.write_text(path.read_text() + f"# edited by subtask {{n}}\\n")
"""


async def _start_once(confinement: Confinement | None, cwd: Path, output: IO[bytes]) -> float:
    start = time.perf_counter()
    code = await run_in_group(["/bin/true"], cwd=cwd, output=output,
                              env={"PATH": os.defpath}, confinement=confinement)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"/bin/true exited {code} (sandbox: {confinement})")
    return elapsed


async def _process_starts(count: int, scratch: Path, output: IO[bytes]) -> dict[str, float]:
    worktree = scratch / "worktree"
    worktree.mkdir()
    times: dict[str, list[float]] = {"plain": [], "bwrap, network none": [],
                                     "bwrap, network allow": []}
    async with trio.open_nursery() as nursery:
        proxy = EgressProxy(nursery, scratch)
        async with proxy.gate("bench", AllowList(), scratch / "egress.log") as gate:
            kinds = {"plain": None,
                     "bwrap, network none": Confinement(writable=(worktree,)),
                     "bwrap, network allow": Confinement(writable=(worktree,), network="allow",
                                                         proxy_socket=gate.socket_path)}
            for _ in range(count):
                for name, confinement in kinds.items():
                    times[name].append(await _start_once(confinement, worktree, output))
        nursery.cancel_scope.cancel()
    medians = {f"start, {name}": statistics.median(found) * 1000 for name, found in times.items()}
    for name in ("bwrap, network none", "bwrap, network allow"):
        medians[f"overhead, {name}"] = medians[f"start, {name}"] - medians["start, plain"]
    return medians


def _build(args: argparse.Namespace, scratch: Path, sandbox: str) -> float:
    repo = fresh_clone(args.files, kept_dir(scratch))
    agent = repo / ".orchestrate" / "bench_agent.py"  # inside the repository: readable there
    agent.parent.mkdir(parents=True, exist_ok=True)
    agent.write_text(AGENT.format(sleep=args.sleep))
    folder = repo / ".orchestrate" / "specs" / "001-bench"
    folder.mkdir(parents=True)
    plan = {"phases": [{"phase": 1, "name": "bench", "parallel_safe": True, "subtasks": [
        {"id": f"s{n}", "description": f"edit s{n}", "status": "pending"}
        for n in range(args.subtasks)]}]}
    (folder / "implementation_plan.json").write_text(json.dumps(plan, indent=2))
    command = [*ORCHESTRATE, "build", "001-bench", "--max-parallel", str(args.parallel),
               "--sandbox", sandbox, "--agent-command", f"{sys.executable} {agent}"]
    return timed(lambda: sh(*command, cwd=repo, env={**ENV, "ORCHESTRATE_SANDBOX": sandbox}))


def _builds(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    runs: dict[str, list[float]] = {"none": [], "bwrap": []}
    for _ in range(args.repeat):  # interleaved: the machine drifts
        for sandbox in runs:
            runs[sandbox].append(_build(args, scratch, sandbox))
    none, bwrap = (statistics.median(runs[k]) for k in ("none", "bwrap"))
    return {"build, --sandbox none": none, "build, --sandbox bwrap": bwrap,
            "ratio bwrap / none": bwrap / none}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--subtasks", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--starts", type=int, default=60)
    parser.add_argument("--only", choices=["starts", "build"])
    args = parser.parse_args()
    if problem := probe():
        raise SystemExit(f"bubblewrap cannot sandbox here: {problem}")
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as folder, \
            unmounted_on_exit(folder):
        scratch = Path(folder)
        if args.only in (None, "starts"):
            with open(os.devnull, "wb") as output:
                _print(trio.run(_process_starts, args.starts, scratch, output), " ms")
        if args.only in (None, "build"):
            _print(_builds(args, scratch), " s")


def _print(figures: dict[str, float], unit: str) -> None:
    for name, value in figures.items():
        print(f"{name:32} {value:8.3f}{'' if name.startswith('ratio') else unit}", flush=True)


if __name__ == "__main__":
    main()
