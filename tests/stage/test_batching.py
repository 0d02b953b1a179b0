"""The gate's search (orchestrator/stage/batching.py) run against known culprits: batch sizes
that follow the culprit rate, the culprit a sequential gate would name, and the check runs it
costs compared with a sequential gate's one per branch."""

from __future__ import annotations

import math
import random
from typing import NamedTuple

import pytest

from orchestrator.stage.batching import CulpritRate, next_step


class Searched(NamedTuple):
    ejected: list[int]
    runs: int
    seen: CulpritRate
    named: list[int]  # the runs spent when each culprit was named


def search(culprits: set[int], n: int, rate: CulpritRate, *, free: int = 1
           ) -> Searched:
    """Ejected branches, check runs (the base's not counted) and what was judged, for
    branches 0..n-1 whose `culprits` fail the check once merged (a prefix fails when it holds
    a culprit not yet left out)."""
    runs, ejected, seen = 0, [], CulpritRate()
    named: list[int] = []
    remaining = list(range(n))
    while remaining:
        known: dict[int, bool] = {}
        step = next_step(known, len(remaining) - 1, rate + seen, free=free)
        while step.probes:
            for point in step.probes:
                runs += 1
                known[point] = not culprits.intersection(remaining[:point + 1])
            step = next_step(known, len(remaining) - 1, rate + seen, free=free)
        if step.culprit is None:
            return Searched(ejected, runs, seen + CulpritRate(0, len(remaining)), named)
        ejected.append(remaining[step.culprit])
        named.append(runs)
        seen += CulpritRate(1, step.culprit + 1)
        remaining = remaining[step.culprit + 1:]
    return Searched(ejected, runs, seen, named)


def test_the_whole_wave_is_one_batch_until_a_culprit_is_seen() -> None:
    assert CulpritRate().batch_size(64) == 64
    assert CulpritRate(0, 500).batch_size(64) == 64
    step = next_step({}, 63, CulpritRate(), free=4)
    assert step.probes == (63,)


@pytest.mark.parametrize(("culprits", "judged", "size"),
                         [(1, 2, 1), (3, 5, 1), (3, 10, 2), (15, 100, 4), (5, 100, 16),
                          (1, 1000, 64)])
def test_batches_shrink_as_culprits_become_common(culprits: int, judged: int,
                                                  size: int) -> None:
    assert CulpritRate(culprits, judged).batch_size(64) == size


@pytest.mark.parametrize("free", [1, 3, 8])
def test_the_culprits_are_those_a_sequential_gate_names(free: int) -> None:
    for seed in range(200):
        rnd = random.Random(seed)
        n = rnd.randrange(1, 40)
        culprits = {b for b in range(n) if rnd.random() < rnd.choice([0.05, 0.3, 0.6])}
        history = CulpritRate(rnd.randrange(3), rnd.randrange(3, 30))
        ejected, _, seen, _ = search(culprits, n, history, free=free)
        assert ejected == sorted(culprits)
        assert seen == CulpritRate(len(culprits), max(culprits, default=-1) + 1) or \
            seen.judged == n


def test_one_culprit_in_a_fresh_wave_is_named_within_1_plus_log2_n_runs() -> None:
    """The wave's check and its bisection; the branches after the culprit are then checked
    in batches sized by the rate just seen, at most one run per branch."""
    for n in range(2, 65):
        for culprit in range(n):
            found = search({culprit}, n, CulpritRate())
            assert found.named[0] <= 1 + math.ceil(math.log2(n))
            assert found.runs <= found.named[0] + max(n - culprit - 1, 1)


@pytest.mark.parametrize("rate", [0.05, 0.15, 0.3, 0.5])
def test_with_the_rate_known_the_expected_runs_stay_within_one_per_branch(rate: float) -> None:
    """The spec's earlier builds saw the rate: over many seeded waves of 32 branches the
    search needs at most as many runs as a sequential gate, and far fewer at low rates."""
    history = CulpritRate(round(rate * 200), 200)
    runs = branches = 0
    for seed in range(300):
        rnd = random.Random(seed)
        culprits = {b for b in range(32) if rnd.random() < rate}
        runs += search(culprits, 32, history)[1]
        branches += 32
    assert runs / branches <= {0.05: 0.35, 0.15: 0.7, 0.3: 0.95, 0.5: 1.0}[rate]
