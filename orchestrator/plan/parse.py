"""Reading a plan file: JSON with line and column on error, Auto-Claude's aliases, and every
problem `validate` names (one PlanError listing them all)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from orchestrator.errors import PlanError
from orchestrator.names import refname_problem
from orchestrator.plan.model import (
    RESERVED_IDS,
    STATUS_ALIASES,
    STATUSES,
    Json,
    Phase,
    Plan,
    normalize_status,
    phase_key_alias,
    subtask_id_field,
)

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
