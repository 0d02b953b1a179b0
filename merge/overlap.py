"""Overlaps: paths changed by two or more subtasks of one parallel batch.

An overlap is flagged whether or not git can merge it; its detail says how close the edits are:
`identical` (every side ends with the same content), `binary`, `same lines` (changed base lines
intersect or touch, which git treats as a conflict) or `separate hunks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from merge.changes import BranchChanges, FileChange


@dataclass(frozen=True)
class Side:
    subtask_id: str
    change: FileChange


@dataclass(frozen=True)
class Overlap:
    path: str
    sides: tuple[Side, ...]  # in plan order
    detail: str

    @property
    def subtask_ids(self) -> tuple[str, ...]:
        return tuple(s.subtask_id for s in self.sides)


def find_overlaps(batch: Sequence[tuple[str, BranchChanges]]) -> list[Overlap]:
    """Every path that two or more of `batch` (subtask id, changes; in plan order) changed."""
    touched: dict[str, list[Side]] = {}
    for subtask_id, changes in batch:
        for change in changes.files:
            for path in change.paths:
                sides = touched.setdefault(path, [])
                if subtask_id not in (s.subtask_id for s in sides):
                    sides.append(Side(subtask_id, change))
    return [Overlap(path, tuple(sides), overlap_detail([s.change for s in sides]))
            for path, sides in sorted(touched.items()) if len(sides) > 1]


def overlap_detail(changes: Sequence[FileChange]) -> str:
    if len({(c.path, c.status, c.new_blob) for c in changes}) == 1:
        return "identical"
    if any(c.binary for c in changes):
        return "binary"
    if any(_touch(a, b) for a, b in combinations(changes, 2)):
        return "same lines"
    return "separate hunks"


def _touch(a: FileChange, b: FileChange) -> bool:
    if "D" in (a.status, b.status):
        return True  # a deletion clashes with any edit, even a pure rename
    return any(_spans_touch(x.old_span(), y.old_span()) for x in a.hunks for y in b.hunks)


def _spans_touch(x: tuple[int, int], y: tuple[int, int]) -> bool:
    return x[0] <= y[1] and y[0] <= x[1]
