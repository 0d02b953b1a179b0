"""Typed views over the raw plan JSON.

The raw dicts stay the source of truth: views read from them and writes go into them, so unknown
fields and key order survive a round trip. `parse_plan` validates everything SPEC section 2 lists
and raises one PlanError naming every problem it found.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from orchestrator.errors import PlanError
from orchestrator.names import refname_problem
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
        """The first line of the description, or the id when there is none."""
        lines = self.description.strip().splitlines()
        return lines[0].strip() if lines else str(self.id)

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
class Record:
    """A typed view of a subtask's `orchestrate` object (SPEC 6): each property is None when
    the field is absent or not of its type, so a hand-edited plan cannot crash a reader."""

    raw: Json

    def _text(self, key: str) -> str | None:
        value = self.raw.get(key)
        return value if isinstance(value, str) and value else None

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
    def worktree(self) -> str | None:
        return self._text("worktree")

    @property
    def error(self) -> str | None:
        return self._text("error")


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


PLAN_FORMAT_HINT = ('A plan looks like {"phases": [{"phase": 1, "subtasks": [{"id": "add-model", '
                    '"description": "..."}]}]}: `orchestrate init NAME` writes an annotated '
                    'starter plan, and the README\'s "Use" section describes the format.')


def require_subtasks(plan: Plan, path: Path) -> None:
    """`validate` and `build` refuse a plan without a single subtask: there is nothing to run,
    and a build would only make an integration branch (exit 2, nothing created)."""
    if next(plan.subtasks(), None) is None:
        where = "no phases" if not plan.phases else "no subtasks in any phase"
        raise PlanError(f"{path}: the plan has {where}: nothing to build", PLAN_FORMAT_HINT)


def load_plan(path: Path) -> Plan:
    """Read and validate the plan at `path`; PlanError names the file and every problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the plan: {exc.strerror or exc}",
                        "Check that the file exists and is readable.") from None
    return parse_plan(data, path)


def parse_plan(data: bytes, path: Path) -> Plan:
    raw = _decode_json(data, path)
    problems: list[str] = []
    phases, whole = _read_phases(raw, problems)
    _check_subtasks(phases, problems)  # every problem is listed, not only the first kind
    if whole:  # a phase that is not even an object would shift `depends_on` by position
        _check_dependencies(phases, problems)
    if not problems and _has_lone_surrogate(raw):
        problems.append("a string holds an unpaired UTF-16 surrogate (like \"\\ud800\"), "
                        "which is not valid Unicode and could not be written back")
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise PlanError(f"{path}: the plan is not valid:\n{listing}",
                        "Fix the fields named above; nothing was changed.")
    return Plan(raw, tuple(phases))


def _has_lone_surrogate(raw: Json) -> bool:
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _decode_json(data: bytes, path: Path) -> Json:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path}: not UTF-8 text (byte {exc.start})",
                        "Save the plan as UTF-8 JSON.") from None
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg}", "Fix the JSON syntax at that position.") from None
    except ValueError as exc:  # NaN or Infinity, which Python reads but JSON does not have
        raise PlanError(f"{path}: not valid JSON: {exc}",
                        "Replace it with a number, a string or null.") from None
    except RecursionError:
        raise PlanError(f"{path}: not valid JSON for a plan: nested too deeply",
                        "Check that the file is the plan you meant.") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: the plan must be a JSON object with a `phases` list, "
                        f"not {_json_type(raw)}", PLAN_FORMAT_HINT)
    return raw


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _read_phases(raw: Json, problems: list[str]) -> tuple[list[Phase], bool]:
    """The phases that could be read, and whether every entry of `phases` was one."""
    if "phases" not in raw:
        problems.append("missing required field `phases` (a list of phases)")
        return [], False
    if not isinstance(raw["phases"], list):
        problems.append(f"field `phases` must be a list, not {_json_type(raw['phases'])}")
        return [], False
    phases = []
    for index, phase_raw in enumerate(raw["phases"]):
        phase = _read_phase(index, phase_raw, problems)
        if phase is not None:
            phases.append(phase)
    _check_phase_keys(raw["phases"], problems)
    return phases, len(phases) == len(raw["phases"])


def _read_phase(index: int, raw: object, problems: list[str]) -> Phase | None:
    where = f"phases[{index}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: a phase must be an object, not {_json_type(raw)}")
        return None
    number, phase_id = raw.get("phase"), raw.get("id")
    if "phase" in raw and (not isinstance(number, int) or isinstance(number, bool)):
        problems.append(f"{where}: field `phase` must be an integer, not {_json_type(number)}")
    if "id" in raw and (not isinstance(phase_id, str) or not phase_id):
        problems.append(f"{where}: field `id` must be a non-empty string")
    key = phase_id if isinstance(phase_id, str) and phase_id else str(
        number if isinstance(number, int) else index + 1)
    if (alias := phase_key_alias(raw)) is not None:
        key = _alias_key(raw[alias], alias, where, problems) or key
    where = f"phase {key}"
    if "parallel_safe" in raw and not isinstance(raw["parallel_safe"], bool):
        problems.append(f"{where}: field `parallel_safe` must be true or false")
    for name in ("name", "type") if "name" in raw else ("title", "type"):
        if name in raw and not isinstance(raw[name], str):
            problems.append(f"{where}: field `{name}` must be a string")
    # a phase without a usable subtask list is kept (its problem is listed), so that its
    # number still resolves in `depends_on` and the other phases' problems are listed too
    subtasks_field = _subtasks_field(raw, where, problems) or ""
    return Phase(raw, index, key, subtasks_field, ())


def _alias_key(value: object, field: str, where: str, problems: list[str]) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    problems.append(f"{where}: field `{field}` must be an integer or a non-empty string, "
                    f"not {_json_type(value)}")
    return None


def _subtasks_field(raw: Json, where: str, problems: list[str]) -> str | None:
    present = [f for f in ("subtasks", "chunks") if f in raw]
    if len(present) == 2:
        problems.append(f"{where}: has both `subtasks` and legacy `chunks`; keep one")
        return None
    if not present:
        problems.append(f"{where}: missing field `subtasks` (a list; legacy name `chunks`)")
        return None
    if not isinstance(raw[present[0]], list):
        problems.append(f"{where}: field `{present[0]}` must be a list")
        return None
    return present[0]


def _check_phase_keys(raws: list[Any], problems: list[str]) -> None:
    for field in ("phase", "id"):
        seen: set[object] = set()
        for raw in raws:
            if isinstance(raw, dict) and field in raw:
                value = raw[field]
                if isinstance(value, int | str) and value in seen:
                    problems.append(f"phase {value}: field `{field}` is used by two phases")
                if isinstance(value, int | str):
                    seen.add(value)
    seen_alias: set[str] = set()
    for raw in raws:
        alias = phase_key_alias(raw) if isinstance(raw, dict) else None
        if alias is not None and isinstance(raw[alias], int | str):
            value = str(raw[alias]).strip()
            if value in seen_alias:
                problems.append(f"phase {value}: field `{alias}` is used by two phases")
            seen_alias.add(value)


def _check_subtasks(phases: list[Phase], problems: list[str]) -> None:
    seen: dict[str, str] = {}
    for phase in phases:
        listed = phase.raw.get(phase.subtasks_field) if phase.subtasks_field else None
        for position, raw in enumerate(listed if isinstance(listed, list) else []):
            where = f"{phase.label}, {phase.subtasks_field}[{position}]"
            if not isinstance(raw, dict):
                problems.append(f"{where}: a subtask must be an object, not {_json_type(raw)}")
                continue
            field = subtask_id_field(raw)
            if field is None:
                problems.append(f"{where}: field `id` is required (Auto-Claude's "
                                "`subtask_id` or `subtaskId` are read too); give the subtask "
                                "a unique string id")
                continue
            subtask_id = raw[field]
            if not isinstance(subtask_id, str):
                problems.append(f"{where}: field `{field}` must be a string, "
                                f"not {_json_type(subtask_id)}")
                continue
            where = f"{phase.label}, subtask {subtask_id!r}"
            if subtask_id in seen:
                problems.append(f"{where}: duplicate subtask id (also in {seen[subtask_id]})")
            seen[subtask_id] = phase.label
            _check_subtask_fields(raw, subtask_id, where, problems, field)


def _check_subtask_fields(raw: Json, subtask_id: str, where: str, problems: list[str],
                          id_field: str = "id") -> None:
    if subtask_id in RESERVED_IDS:
        problems.append(f"{where}: field `{id_field}`: {subtask_id!r} is reserved for the "
                        "integration branch; rename the subtask")
    elif (reason := refname_problem(subtask_id)) is not None:
        problems.append(f"{where}: field `{id_field}` cannot be used in a git branch name: "
                        f"{reason}")
    if "status" in raw and normalize_status(raw["status"]) is None:
        problems.append(f"{where}: field `status` has unknown value {raw['status']!r}; use one "
                        f"of {', '.join(STATUSES)} (or an alias: "
                        f"{', '.join(STATUS_ALIASES)})")
    if "description" in raw and not isinstance(raw["description"], str):
        problems.append(f"{where}: field `description` must be a string")
    for field in ("files_to_modify", "files_to_create", "patterns_from"):
        value = raw.get(field, [])
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            problems.append(f"{where}: field `{field}` must be a list of paths")
    check = raw.get("verification")
    if check is not None and not isinstance(check, dict):
        problems.append(f"{where}: field `verification` must be an object like "
                        '{"type": "command", "run": "pytest -q"}')
    elif isinstance(check, dict):
        _check_verification(check, where, problems)


def _check_verification(check: Json, where: str, problems: list[str]) -> None:
    """`command` needs a command; `automated` may have one; other types are not run."""
    kind = check.get("type", "command")
    command = check.get("run", check.get("command"))
    if not isinstance(kind, str):
        problems.append(f"{where}: field `verification.type` must be a string such as "
                        f"\"command\" or \"manual\", not {_json_type(kind)}")
    elif kind == "command" and not isinstance(command, str):
        problems.append(f"{where}: field `verification` of type command needs a `run` "
                        "(or `command`) string")
    elif kind == "automated" and command is not None and not isinstance(command, str):
        problems.append(f"{where}: field `verification` of type automated: `run` (or "
                        "`command`) must be a string")


def _check_dependencies(phases: list[Phase], problems: list[str]) -> None:
    for position, phase in enumerate(phases):
        phases[position] = replace(phase, depends_on=_resolve_depends_on(
            phase, position, phases, problems))
    cycle = find_cycle(phases)
    if cycle:
        path = " -> ".join(f"phase {phases[i].key}" for i in cycle)
        problems.append(f"dependency cycle: {path}; remove one of these `depends_on` entries")


def _resolve_depends_on(phase: Phase, position: int, phases: list[Phase],
                        problems: list[str]) -> tuple[int, ...]:
    if "depends_on" not in phase.raw:
        return (position - 1,) if position > 0 else ()
    value = phase.raw["depends_on"]
    if not isinstance(value, list):
        problems.append(f"{phase.label}: field `depends_on` must be a list of phase numbers or ids")
        return ()
    deps: list[int] = []
    for entry in value:
        target = _find_phase(entry, phases)
        if target is None:
            problems.append(f"{phase.label}: field `depends_on` names unknown phase {entry!r}")
        elif target not in deps:
            deps.append(target)
    return tuple(deps)


def _find_phase(entry: object, phases: list[Phase]) -> int | None:
    if isinstance(entry, bool) or not isinstance(entry, int | str):
        return None
    for position, phase in enumerate(phases):
        if isinstance(entry, str) and phase.ident == entry:
            return position
    number = int(entry) if isinstance(entry, int) or entry.strip().isdecimal() else None
    for position, phase in enumerate(phases):
        if number is not None and phase.number == number:
            return position
    return None


def find_cycle(phases: list[Phase]) -> list[int]:
    """Phase positions forming a dependency cycle, first repeated at the end; [] if none."""
    state = [0] * len(phases)  # 0 new, 1 on the current path, 2 done
    path: list[int] = []

    def visit(node: int) -> list[int]:
        state[node] = 1
        path.append(node)
        for dep in phases[node].depends_on:
            if state[dep] == 1:
                return [*path[path.index(dep):], dep]
            if state[dep] == 0 and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in range(len(phases)):
        if state[start] == 0 and (found := visit(start)):
            return found
    return []
