#!/usr/bin/env python3
"""The gate's check runs over many seeds, without git: the search orchestrate runs
(orchestrator/stage/batching.py, driven as stage/gate.py drives it) on the waves
scripts/bench_gate.py generates, seed after seed, against the sequential gate's n + 1.

    .venv/bin/python scripts/gate_seeds.py                  # seeds 1..40; a second or two
    .venv/bin/python scripts/gate_seeds.py --seeds 100 --sizes 32 --rates 0.05

Run counts do not depend on git or on time: on seed 1 they are bench_gate.py's (its rows
without the flaky check, whose reruns are chance). Both sides count the base's check.
`bound` is the fewest runs any gate could need on average for the row's culprit count d,
even knowing d: the base's check and log2 C(n, d) pass/fail answers (the rows with a pair
aside). A row's averages are over the seeds; `cold>gate` says on how many seeds a new spec
needed more runs than the sequential gate, and by how many at most.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import bench_gate  # noqa: E402

from orchestrator.stage.batching import CulpritRate, next_step  # noqa: E402


def fails(merged: list[str], culprits: frozenset[str], pair: tuple[str, str] | None) -> bool:
    return bool(culprits.intersection(merged)) or (
        pair is not None and pair[0] in merged and pair[1] in merged)


def gate_runs(ids: list[str], culprits: frozenset[str], pair: tuple[str, str] | None,
              history: CulpritRate, free: int) -> tuple[int, list[str]]:
    """orchestrate's check runs (the base's included, reruns not) and the branches it leaves
    out: each chain searched with next_step, a culprit left out and the rest merged again."""
    runs, kept, ejected, seen, remaining = 1, [], [], CulpritRate(), list(ids)
    while remaining:
        known: dict[int, bool] = {}
        step = next_step(known, len(remaining) - 1, history + seen, free=free)
        while step.probes:
            for point in step.probes:
                runs += 1
                known[point] = not fails(kept + remaining[:point + 1], culprits, pair)
            step = next_step(known, len(remaining) - 1, history + seen, free=free)
        if step.culprit is None:
            break
        kept += remaining[:step.culprit]
        ejected.append(remaining[step.culprit])
        seen += CulpritRate(1, step.culprit + 1)
        remaining = remaining[step.culprit + 1:]
    return runs, ejected


def sequential_runs(ids: list[str], culprits: frozenset[str],
                    pair: tuple[str, str] | None) -> tuple[int, list[str]]:
    kept: list[str] = []
    ejected = []
    for subtask in ids:
        (ejected if fails([*kept, subtask], culprits, pair) else kept).append(subtask)
    return len(ids) + 1, ejected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8,32,64")
    parser.add_argument("--rates", default="0,0.05,0.15,0.3,0.5")
    parser.add_argument("--seeds", type=int, default=40, help="seeds 1..N")
    parser.add_argument("--parallel", type=int, default=4, help="free slots, as bench_gate")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    rates = [float(x) for x in args.rates.split(",")]
    rows: dict[tuple[int, str], list[tuple[int, int, int, float]]] = {}
    for seed in range(1, args.seeds + 1):
        for scenario in bench_gate.scenarios(sizes, rates, seed):
            if scenario.flaky:
                continue
            ids = bench_gate._ids(scenario.n)
            gate, left_out = sequential_runs(ids, scenario.culprits, scenario.pair)
            earlier = len(bench_gate._culprits(scenario.n, scenario.rate, f"earlier-{scenario}"))
            cold, cold_out = gate_runs(ids, scenario.culprits, scenario.pair, CulpritRate(),
                                       args.parallel)
            warm, warm_out = gate_runs(ids, scenario.culprits, scenario.pair,
                                       CulpritRate(earlier, scenario.n), args.parallel)
            if not cold_out == warm_out == left_out:
                raise SystemExit(f"verdicts differ on seed {seed}, {scenario}")
            bound = 1 + math.log2(math.comb(scenario.n, len(scenario.culprits)))
            rows.setdefault((scenario.n, scenario.label), []).append((cold, warm, gate, bound))
    print(f"{args.seeds} seeds, {args.parallel} free slots\n")
    print("| n | p | runs: new spec | runs: spec with history | sequential gate | ratio new / "
          "with history | bound | new > gate (seeds, at most) | with history > gate |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (n, label), found in rows.items():
        cold, warm, gate = (sum(row[i] for row in found) / len(found) for i in range(3))
        bound = "" if "pair" in label else f"{sum(row[3] for row in found) / len(found):.1f}"
        over = [row[0] - row[2] for row in found if row[0] > row[2]]
        warm_over = [row[1] - row[2] for row in found if row[1] > row[2]]
        print(f"| {n} | {label} | {cold:.2f} | {warm:.2f} | {gate:.0f} | {cold / gate:.2f} / "
              f"{warm / gate:.2f} | {bound} | {len(over)} (+{max(over, default=0)}) | "
              f"{len(warm_over)} (+{max(warm_over, default=0)}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
