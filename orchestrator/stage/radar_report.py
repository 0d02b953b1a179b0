"""What became of the conflict radar's predictions, for the conflict report: one entry per
pair of subtasks and path the radar announced (from the plan's `orchestrate.radar`), with its
outcome once the merge stage has been:

* `conflict`: git could not merge them on that path (or a resolution round had to);
* `overlap`: both were merged and both still changed the path;
* `merged clean`: both were merged, and by then at most one of them still changed the path;
* `not merged`: a side has not reached the integration branch (failed, blocked, waiting).
"""

from __future__ import annotations

from typing import Any

from merge import words
from orchestrator.plan.model import MergeState, Plan, Subtask

CONFLICT = words.CONFLICT
OVERLAP = words.OVERLAP
MERGED_CLEAN = "merged clean"
NOT_MERGED = "not merged"


def radar_outcomes(plan: Plan) -> list[dict[str, Any]]:
    """[{subtasks, path, overlapping, outcome}] in plan order, each pair and path once."""
    order: dict[str, int] = {s.id: n for n, s in enumerate(plan.subtasks())}
    found: dict[tuple[str, str, str], bool] = {}
    for subtask in plan.subtasks():
        for note in subtask.record.radar:
            if note.with_ in order:
                pair = sorted((subtask.id, note.with_), key=order.__getitem__)
                found.setdefault((pair[0], pair[1], note.path), note.overlapping)
    entries = []
    for (first, second, path), overlapping in sorted(
            found.items(), key=lambda item: (order[item[0][0]], order[item[0][1]], item[0][2])):
        sides = (plan.subtask(first), plan.subtask(second))
        entries.append({"subtasks": [first, second], "path": path,
                        "overlapping": overlapping, "outcome": outcome(sides, path)})
    return entries


def outcome(sides: tuple[Subtask, Subtask], path: str) -> str:
    records = [s.record for s in sides]
    if any(path in r.conflict_paths or path in r.resolution_paths for r in records):
        return CONFLICT
    if not all(r.merge == MergeState.MERGED for r in records):
        return NOT_MERGED
    if any(path in r.overlaps for r in records):
        return OVERLAP
    return MERGED_CLEAN


def radar_markdown(entries: list[dict[str, Any]]) -> str | None:
    """The report's section on the radar's predictions, or None when it made none."""
    if not entries:
        return None
    lines = ["### Predicted by the radar",
             "Pairs of subtasks the radar saw changing the same path while their agents "
             "worked, and what the merge made of them:", ""]
    for entry in entries:
        first, second = entry["subtasks"]
        touch = " (edits touching)" if entry["overlapping"] else ""
        lines.append(f"- `{entry['path']}`: {first} and {second}{touch}: {entry['outcome']}")
    return "\n".join(lines)
