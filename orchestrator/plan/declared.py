"""Scheduling around declared files (SPEC 11): what a subtask declares, predicted overlaps
between subtasks of one parallel phase, and the waves a phase runs in under `spread`.

Everything here is a pure function of the plan (plus, for concrete paths, one
`git ls-files -z`), so `validate`, `--dry-run`, `status` and the build agree on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merge import any_intersect, intersect, is_glob, matches, normalize
from orchestrator.plan.model import Phase, Plan, Subtask

if TYPE_CHECKING:
    from orchestrator.plan.transitions import Transitions

DECLARING_FIELDS = ("files_to_modify", "files_to_create")
SCHEDULES = ("spread", "together")


def declared_files(subtask: Subtask) -> tuple[str, ...]:
    """The subtask's files_to_modify and files_to_create, normalised, without repeats."""
    found = [normalize(p) for field in DECLARING_FIELDS for p in subtask.paths(field)]
    return tuple(dict.fromkeys(p for p in found if p))


@dataclass(frozen=True)
class PredictedOverlap:
    phase: str  # the phase's key
    subtasks: tuple[str, str]  # in plan order
    patterns: tuple[tuple[str, str], ...]  # the declarations of each side that intersect
    paths: tuple[str, ...] = ()  # concrete paths both declare (tracked files, equal paths)

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "subtasks": list(self.subtasks),
                "patterns": [list(p) for p in self.patterns], "paths": list(self.paths)}

    def describe(self) -> str:
        first, second = self.subtasks
        if self.paths:
            shown = ", ".join(self.paths[:5]) + (
                f" and {len(self.paths) - 5} more" if len(self.paths) > 5 else "")
            return f"phase {self.phase}: {first} and {second} both declare {shown}"
        pairs = "; ".join(f"{a} / {b}" for a, b in self.patterns[:3])
        return f"phase {self.phase}: {first} and {second} declare intersecting globs ({pairs})"


def phase_overlaps(phase: Phase) -> list[PredictedOverlap]:
    """Every pair of the parallel phase's subtasks whose declared files intersect.

    Plain paths meet only when equal or when one is a folder of the other, so they are found
    through an index of paths (a plan of 200 subtasks would otherwise cost 20,000 pairwise
    comparisons on every `validate`); only globs are compared with everything."""
    if not phase.parallel_safe:
        return []
    declared = [(s.id, declared_files(s)) for s in phase.subtasks]
    hits: dict[tuple[int, int], set[tuple[int, int]]] = {}

    def hit(i: int, a: int, j: int, b: int) -> None:  # pattern a of subtask i, b of j
        if i != j:
            key, pair = ((i, j), (a, b)) if i < j else ((j, i), (b, a))
            hits.setdefault(key, set()).add(pair)

    paths: dict[str, list[tuple[int, int]]] = {}
    for i, (_, patterns) in enumerate(declared):
        for a, pattern in enumerate(patterns):
            if not is_glob(pattern):
                paths.setdefault(pattern, []).append((i, a))
    for path, owners in paths.items():
        parts = path.split("/")
        folders = ["/".join(parts[:k]) for k in range(1, len(parts))]
        for i, a in owners:
            for folder in (path, *folders):
                for j, b in paths.get(folder, ()):
                    hit(i, a, j, b)
    for i, (_, patterns) in enumerate(declared):
        for a, glob in enumerate(patterns):
            if is_glob(glob):
                for j, (_, theirs) in enumerate(declared):
                    for b, other in enumerate(theirs):
                        if j != i and not (is_glob(other) and j < i) and intersect(glob, other):
                            hit(i, a, j, b)
    return [PredictedOverlap(phase.key, (declared[i][0], declared[j][0]),
                             tuple((declared[i][1][a], declared[j][1][b])
                                   for a, b in sorted(hits[i, j])))
            for i, j in sorted(hits)]


def predicted_overlaps(plan: Plan, repo: Path | None = None) -> list[PredictedOverlap]:
    """The plan's predicted overlaps; with `repo`, globs are made concrete against the files
    git tracks there (one `git ls-files` call, made only when a glob is involved)."""
    found = [o for phase in plan.phases for o in phase_overlaps(phase)]
    tracked = (tracked_files(repo) if repo is not None and any(
        is_glob(p) for o in found for pair in o.patterns for p in pair) else ())
    return [_with_paths(o, tracked) for o in found]


def _with_paths(overlap: PredictedOverlap, tracked: Sequence[str]) -> PredictedOverlap:
    paths: dict[str, None] = {}
    for a, b in overlap.patterns:
        if not (is_glob(a) or is_glob(b)):
            paths[a if len(a) >= len(b) else b] = None  # the deeper of a path and its folder
        else:
            paths.update((t, None) for t in tracked if matches(a, t) and matches(b, t))
    return PredictedOverlap(overlap.phase, overlap.subtasks, overlap.patterns,
                            tuple(sorted(paths)))


def tracked_files(repo: Path) -> tuple[str, ...]:
    """Every path git tracks in `repo` (none when it cannot tell: it is a prediction)."""
    from merge import run_git

    listing = run_git(repo, "ls-files", "-z", check=False)
    return tuple(p for p in listing.stdout.split("\0") if p) if listing.returncode == 0 else ()


def waves(subtasks: Sequence[Subtask], schedule: str = "spread") -> list[list[Subtask]]:
    """A parallel phase's subtasks in waves: in plan order, each joins the first wave in which
    no subtask declares a common file (`spread`); one wave with `together`."""
    if schedule == "together":
        return [list(subtasks)] if subtasks else []
    found: list[tuple[list[Subtask], list[str]]] = []
    for subtask in subtasks:
        mine = declared_files(subtask)
        wave = next((w for w in found if not any_intersect(mine, w[1])), None)
        if wave is None:
            found.append(([subtask], list(mine)))
        else:
            wave[0].append(subtask)
            wave[1].extend(mine)
    return [members for members, _ in found]


def wave_numbers(phase: Phase, schedule: str = "spread") -> dict[str, int]:
    """Subtask id -> its wave (1-based) in the parallel phase; {} for a sequential phase."""
    if not phase.parallel_safe:
        return {}
    return {s.id: n for n, wave in enumerate(waves(phase.subtasks, schedule), 1) for s in wave}



async def record_waves(records: Transitions, phase: Phase,
                       found: Sequence[Sequence[Subtask]]) -> None:
    """Write each subtask's wave (`orchestrate.wave`) in one locked update, for `status`; a
    phase that runs as one wave keeps no wave (and the plan is not written at all).

    Only an annotation: the waves follow from the plan alone and every build computes them
    again, so a crash before or after this write changes nothing."""
    number = {s.id: n for n, wave in enumerate(found, 1) for s in wave} if len(found) > 1 else {}

    def apply(plan: Plan) -> None:
        for subtask in plan.phases[phase.index].subtasks:
            if subtask.id in number:
                if subtask.meta.get("wave") != number[subtask.id]:
                    subtask.write_meta(wave=number[subtask.id])
            elif "wave" in subtask.meta:
                del subtask.meta["wave"]
    await records.update(apply)
