"""Typed views over the raw plan JSON.

The raw dicts stay the source of truth: views read from them and writes go into them, so unknown
fields and key order survive a round trip. `parse_plan` validates everything SPEC section 2 lists
and raises one PlanError naming every problem it found.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.types import BranchName, CommitSha, SubtaskId
from orchestrator.types import MergeState as MergeState
from orchestrator.types import Status as Status

STATUSES = tuple(Status)
# Auto-Claude's own status words (SPEC 2a), matched trimmed and case-insensitive.
STATUS_ALIASES = {"not_started": Status.PENDING, "not started": Status.PENDING,
                  "todo": Status.PENDING, "to_do": Status.PENDING, "backlog": Status.PENDING,
                  "in-progress": Status.IN_PROGRESS, "inprogress": Status.IN_PROGRESS,
                  "working": Status.IN_PROGRESS, "done": Status.COMPLETED,
                  "complete": Status.COMPLETED, "completed_successfully": Status.COMPLETED}
RESERVED_IDS = frozenset({"integration"})
SUBTASK_ID_FIELDS = ("id", "subtask_id", "subtaskId")  # the first present is the id (SPEC 2a)
PHASE_KEY_ALIASES = ("phase_id", "phaseId")  # stand for `phase`/`id` when both are absent
RUN_TYPES = frozenset({"command", "automated"})  # verification types that run a command

Json = dict[str, Any]


def normalize_status(value: object) -> Status | None:
    """The canonical status for `value`, or None if it is not a status this tool knows."""
    if value is None:
        return Status.PENDING
    if not isinstance(value, str):
        return None
    word = value.strip().lower()
    word = STATUS_ALIASES.get(word, word)
    return Status(word) if word in STATUSES else None


def subtask_id_field(raw: Json) -> str | None:
    """Which field holds a subtask's id: `id`, else `subtask_id`, else `subtaskId`."""
    return next((f for f in SUBTASK_ID_FIELDS if f in raw), None)


def phase_key_alias(raw: Json) -> str | None:
    """The `phase_id`/`phaseId` field standing for a phase's key, if `phase` and `id` are
    both absent."""
    if "phase" in raw or "id" in raw:
        return None
    return next((f for f in PHASE_KEY_ALIASES if f in raw), None)


@dataclass(frozen=True)
class Subtask:
    raw: Json
    phase: Phase

    @property
    def id(self) -> SubtaskId:
        return SubtaskId(self.raw[subtask_id_field(self.raw) or "id"])

    @property
    def description(self) -> str:
        value = self.raw.get("description")
        return value if isinstance(value, str) else ""

    @property
    def title(self) -> str:
        """The first line of the description, or a note that there is none (a commit subject
        `a: a` says nothing)."""
        lines = self.description.strip().splitlines()
        return lines[0].strip() if lines else f"(no description) in {self.phase.label}"

    @property
    def status(self) -> Status:
        return normalize_status(self.raw.get("status")) or Status.PENDING

    def paths(self, field: str) -> list[str]:
        value = self.raw.get(field)
        return [p for p in value if isinstance(p, str)] if isinstance(value, list) else []

    @property
    def verification_command(self) -> str | None:
        """The command orchestrate runs after the agent: type `command` or `automated`."""
        check = self.raw.get("verification")
        if not isinstance(check, dict) or check.get("type", "command") not in RUN_TYPES:
            return None
        command = check.get("run", check.get("command"))
        return command if isinstance(command, str) and command.strip() else None

    @property
    def verification_type(self) -> str | None:
        check = self.raw.get("verification")
        if not isinstance(check, dict):
            return None
        kind = check.get("type", "command")
        return kind if isinstance(kind, str) else None

    @property
    def verification_skipped(self) -> str | None:
        """`skipped (<type>)` for a verification orchestrate does not run, else None."""
        kind = self.verification_type
        if kind is None or self.verification_command is not None:
            return None
        return f"skipped ({kind})"

    @property
    def verification_expected(self) -> str | None:
        check = self.raw.get("verification")
        expected = check.get("expected") if isinstance(check, dict) else None
        return expected if isinstance(expected, str) and expected.strip() else None

    @property
    def meta(self) -> Json:
        """This tool's own record on the subtask (SPEC 6), empty if never written."""
        return read_meta(self.raw)

    @property
    def record(self) -> Record:
        """The same record, typed."""
        return Record(self.meta)

    def write_meta(self, **fields: Any) -> None:
        write_meta(self.raw, fields)

    def set_status(self, status: Status) -> None:
        self.raw["status"] = status

    @property
    def is_committed_unmerged(self) -> bool:
        """Work committed by an earlier run (or fixed by hand) that still waits to be merged."""
        meta = self.meta
        return ((self.status == Status.IN_PROGRESS and meta.get("merge") == MergeState.PENDING
                 and bool(meta.get("head"))) or
                (self.status == Status.CONFLICT and bool(meta.get("head"))))

    @property
    def merged_with_changes(self) -> bool:
        """Completed by a merge of real work (so its changes can overlap a sibling's)."""
        meta = self.meta
        return (self.status == Status.COMPLETED and bool(meta.get("head"))
                and meta.get("head") != meta.get("base"))

    @property
    def is_interrupted(self) -> bool:
        """Left `in_progress` by a run that stopped before committing its work."""
        return self.status == Status.IN_PROGRESS and not self.is_committed_unmerged


@dataclass(frozen=True)
class RadarNote:
    """One entry of `orchestrate.radar`: the radar saw this subtask and `with_` change `path`."""

    with_: str
    path: str
    overlapping: bool

    def to_json(self) -> Json:
        return {"with": self.with_, "path": self.path, "overlapping": self.overlapping}


class _TypedFields:
    """Typed reads of a JSON object that a hand edit may have left in any shape: each reader
    answers None (or an empty value) when the field is absent or not of its type."""

    raw: Json

    def _text(self, key: str) -> str | None:
        value = self.raw.get(key)
        return value if isinstance(value, str) and value else None

    def _int(self, key: str) -> int | None:
        value = self.raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def _number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def _object(self, key: str) -> Json | None:
        value = self.raw.get(key)
        return value if isinstance(value, dict) else None

    def _list(self, key: str) -> list[Any]:
        value = self.raw.get(key)
        return list(value) if isinstance(value, list) else []

    def written(self, *keys: str) -> Json:
        """The fields `keys` as written, None where absent (for JSON views)."""
        return {key: self.raw.get(key) for key in keys}

    def present(self, *keys: str) -> Json:
        """The fields among `keys` that hold a value, as written (for JSON views)."""
        return {key: self.raw[key] for key in keys if self.raw.get(key)}


@dataclass(frozen=True)
class Record(_TypedFields):
    """A typed view of a subtask's `orchestrate` object (SPEC 6), the one reader of it outside
    plan/: a hand-edited plan cannot crash a reader."""

    raw: Json

    @property
    def head(self) -> CommitSha | None:
        """The commit holding the subtask's work (its branch tip when committed)."""
        text = self._text("head")
        return CommitSha(text) if text else None

    @property
    def base(self) -> CommitSha | None:
        """The integration commit the subtask's work started from."""
        text = self._text("base")
        return CommitSha(text) if text else None

    @property
    def branch(self) -> BranchName | None:
        text = self._text("branch")
        return BranchName(text) if text else None

    @property
    def merge(self) -> str | None:
        """A MergeState word, or whatever a hand edit left there."""
        return self._text("merge")

    @property
    def merge_commit(self) -> CommitSha | None:
        text = self._text("merge_commit")
        return CommitSha(text) if text else None

    @property
    def worktree(self) -> str | None:
        return self._text("worktree")

    @property
    def error(self) -> str | None:
        return self._text("error")

    @property
    def verification(self) -> str | None:
        """passed, failed (exit N) or skipped (<type>)."""
        return self._text("verification")

    @property
    def attempts(self) -> int | None:
        return self._int("attempts")

    @property
    def duration_s(self) -> float | None:
        return self._number("duration_s")

    @property
    def cost_usd(self) -> float | None:
        return self._number("cost_usd")

    @property
    def no_changes(self) -> bool:
        return self.raw.get("no_changes") is True

    @property
    def wave(self) -> int | None:
        return self._int("wave")

    @property
    def egress_refused(self) -> int:
        """Connections the sandbox's egress proxy refused to the subtask's agent."""
        return self._int("egress_refused") or 0

    @property
    def sandbox(self) -> str | None:
        """The sandbox the subtask's last attempt ran in: bwrap or none (on its Ray worker)."""
        return self._text("sandbox")

    @property
    def sandbox_reason(self) -> str | None:
        """Why that attempt ran without a sandbox, where `auto` found no working bwrap."""
        return self._text("sandbox_reason")

    @property
    def resolving(self) -> int | None:
        """The resolution round running now, if any."""
        return self._int("resolving")

    @property
    def resolutions(self) -> int:
        return self._int("resolutions") or 0

    @property
    def overlaps(self) -> list[str]:
        return [path for path in self._list("overlaps") if isinstance(path, str)]

    @property
    def check(self) -> Json | None:
        """The check failure that ejected the subtask: command, exit_code, commit, log, output."""
        return self._object("check")

    @property
    def resolution(self) -> object:
        """How a resolution round ended, as written (the report parses it)."""
        return self.raw.get("resolution")

    @property
    def resolved_by_hand(self) -> object:
        """A fix by hand, as written (the report parses it)."""
        return self.raw.get("resolved_by_hand")

    @property
    def radar(self) -> list[RadarNote]:
        """What the conflict radar saw (well-formed entries only)."""
        return [RadarNote(e["with"], e["path"], e.get("overlapping") is True)
                for e in self._list("radar")
                if isinstance(e, dict) and isinstance(e.get("with"), str)
                and isinstance(e.get("path"), str)]

    @property
    def conflict_paths(self) -> list[str]:
        return [path for path in self._list("conflict_paths") if isinstance(path, str)]

    @property
    def resolution_paths(self) -> list[str]:
        """The paths a resolution round (SPEC 10) had to resolve."""
        found = self.raw.get("resolution")
        paths = found.get("paths") if isinstance(found, dict) else None
        return [v for v in paths if isinstance(v, str)] if isinstance(paths, list) else []


@dataclass(frozen=True)
class PlanRecord(_TypedFields):
    """A typed view of the plan's top-level `orchestrate` object (SPEC 6)."""

    raw: Json

    @property
    def integration_branch(self) -> str | None:
        return self._text("integration_branch")

    @property
    def base(self) -> CommitSha | None:
        text = self._text("base")
        return CommitSha(text) if text else None

    @property
    def base_branch(self) -> str | None:
        return self._text("base_branch")

    @property
    def updated_at(self) -> str | None:
        return self._text("updated_at")

    @property
    def cost_usd(self) -> float | None:
        return self._number("cost_usd")

    @property
    def overlap(self) -> str | None:
        """The --overlap policy the last build used, remembered for `orchestrate merge`."""
        return self._text("overlap")

    @property
    def sandbox(self) -> str | None:
        """The sandbox the last build ran its agents in: bwrap or none."""
        return self._text("sandbox")

    @property
    def check_command(self) -> str | None:
        return self._text("check_command")

    @property
    def checks(self) -> dict[str, str]:
        """Tree id -> pass | fail, for check_command."""
        found = self._object("checks") or {}
        return {tree: verdict for tree, verdict in found.items() if verdict in ("pass", "fail")}

    @property
    def check_details(self) -> Json:
        return self._object("check_details") or {}

    @property
    def check_runs(self) -> int:
        return self._int("check_runs") or 0

    @property
    def check_flaky(self) -> list[Any]:
        return self._list("check_flaky")

    @property
    def check_runs_sequential(self) -> int:
        """The runs a sequential gate would have needed for what the check judged."""
        return self._int("check_runs_sequential") or 0

    @property
    def gate_rate(self) -> tuple[int, int]:
        """(culprits, branches judged) by the check in all merge stages of the spec."""
        culprits, judged = self._int("gate_culprits") or 0, self._int("gate_judged") or 0
        return (culprits, judged) if 0 <= culprits <= judged else (0, 0)


@dataclass(frozen=True)
class Phase:
    raw: Json
    index: int
    key: str  # how depends_on and messages name the phase: its id, else its number
    subtasks_field: str
    depends_on: tuple[int, ...]  # indexes of the phases it waits for

    @property
    def name(self) -> str:
        value = self.raw.get("name", self.raw.get("title"))  # Auto-Claude's `title` (SPEC 2a)
        return value if isinstance(value, str) else ""

    @property
    def number(self) -> int | None:
        """The phase number `depends_on` may name: `phase`, an int or numeric `phase_id`, or
        the position when the phase has no key at all."""
        alias = phase_key_alias(self.raw)
        value = self.raw.get(alias) if alias else self.raw.get(
            "phase", None if "id" in self.raw else self.index + 1)
        if isinstance(value, str) and value.strip().isdecimal():
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def ident(self) -> str | None:
        """The string id `depends_on` may name: `id`, or a string `phase_id`."""
        alias = phase_key_alias(self.raw)
        value = self.raw.get(alias if alias else "id")
        return value if isinstance(value, str) and value else None

    @property
    def label(self) -> str:
        return f"phase {self.key}" + (f" ({self.name})" if self.name else "")

    @property
    def parallel_safe(self) -> bool:
        return self.raw.get("parallel_safe") is True

    @property
    def subtasks(self) -> list[Subtask]:
        return [Subtask(raw, self) for raw in self.raw[self.subtasks_field]]


@dataclass(frozen=True)
class Plan:
    raw: Json
    phases: tuple[Phase, ...]

    def subtasks(self) -> Iterator[Subtask]:
        for phase in self.phases:
            yield from phase.subtasks

    def subtask(self, subtask_id: str) -> Subtask:
        for subtask in self.subtasks():
            if subtask.id == subtask_id:
                return subtask
        raise KeyError(subtask_id)

    @property
    def meta(self) -> Json:
        """This tool's record on the whole plan (SPEC 6), empty if never written."""
        return read_meta(self.raw)

    @property
    def record(self) -> PlanRecord:
        """The same record, typed."""
        return PlanRecord(self.meta)

    def write_meta(self, **fields: Any) -> None:
        write_meta(self.raw, fields)

    def dumps(self) -> str:
        return dump_json(self.raw)


def status_counts(plan: Plan, stale: Collection[str] = ()) -> Counter[str]:
    """How many subtasks have each status; those in `stale` count as "stale"."""
    return Counter("stale" if s.id in stale else s.status for s in plan.subtasks())


def read_meta(raw: Json) -> Json:
    """The `orchestrate` object of a plan or subtask, empty if absent or not an object."""
    value = raw.get("orchestrate")
    return value if isinstance(value, dict) else {}


def write_meta(raw: Json, fields: dict[str, Any]) -> None:
    meta = raw.get("orchestrate")
    if not isinstance(meta, dict):
        meta = raw["orchestrate"] = {}
    meta.update(fields)


def dump_json(raw: Json) -> str:
    return json.dumps(raw, indent=2, ensure_ascii=False) + "\n"
