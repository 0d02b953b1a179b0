"""Which prefixes of a chain the gate checks next (SPEC 9): a pure search, no git, no trio.

A chain is a batch's merge commits in plan order, position 0 .. last; the commit before
position 0 passes. A verdict on position k judges the prefix up to k. The gate looks for the
first failing prefix whose predecessor passes (that prefix's last branch is the culprit).

Batches adapt to the culprit rate: until a culprit has been seen (in this build or the
spec's earlier ones) the whole chain is one batch; after that a batch holds about as many
branches as make one failing check per batch likely (Hwang's generalised binary splitting:
2 ** floor(log2((1 - p) / p)) for a rate p), which keeps the expected check runs below one per
branch and falls far below it when culprits are rare. A failing batch is bisected."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CulpritRate:
    """Branches the gate decided (kept or left out) and how many of them were culprits."""

    culprits: int = 0
    judged: int = 0

    def __add__(self, other: CulpritRate) -> CulpritRate:
        return CulpritRate(self.culprits + other.culprits, self.judged + other.judged)

    def batch_size(self, remaining: int) -> int:
        """How many of `remaining` branches to check together next."""
        if self.culprits == 0 or remaining <= 1:
            return max(remaining, 1)
        rate = self.culprits / max(self.judged, self.culprits)
        if rate >= 0.5:
            return 1
        return min(remaining, 1 << math.floor(math.log2((1 - rate) / rate)))


@dataclass(frozen=True)
class Step:
    """What the search does next: check `probes`, or it is over: `culprit` found (a position
    whose predecessor passes and which fails) or, with neither, every position passes."""

    probes: tuple[int, ...] = ()
    culprit: int | None = None
    passing: int = -1  # the last position known to pass with all before it
    failing: int | None = None  # the first position known to fail


def next_step(known: Mapping[int, bool], last: int, rate: CulpritRate, *, free: int) -> Step:
    """The next step of the search over positions 0..`last` given the verdicts `known`
    (position -> passed): while no failure is known, check the next batch (its size from
    `rate` and the branches passed so far); inside a failing stretch, up to `free` probes."""
    failing = min((p for p, passed in known.items() if not passed), default=None)
    passing = max((p for p, passed in known.items()
                   if passed and (failing is None or p < failing)), default=-1)
    if failing is None:
        if passing >= last:
            return Step(passing=passing)
        batch = (rate + CulpritRate(0, passing + 1)).batch_size(last - passing)
        return Step(probes=(passing + batch,), passing=passing)
    if failing - passing == 1:
        return Step(culprit=failing, passing=passing, failing=failing)
    return Step(probes=tuple(probe_points(passing, failing, free=free)), passing=passing,
                failing=failing)


def probe_points(passing: int, failing: int, *, free: int) -> list[int]:
    """Points strictly between `passing` and `failing` to check at once: as many as `free`
    allows without needing more probes in all than binary search would."""
    suspects = failing - passing
    budget = math.ceil(math.log2(suspects))
    count = 1
    for k in range(2, min(free, suspects - 1) + 1):
        if k + math.ceil(math.log2(math.ceil(suspects / (k + 1)))) <= budget:
            count = k
    return [passing + round(suspects * (i + 1) / (count + 1)) for i in range(count)]
