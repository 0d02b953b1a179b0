"""What the page shows of a spec, as JSON: phases and subtasks with their status words,
attempts, durations and cost; cost against the budget; the timeline; the bisections with
their probes; the radar's pairs. Read from the plan, events.jsonl and git, never written."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merge import GitError, run_git
from orchestrator import names
from orchestrator.errors import OrchestrateError
from orchestrator.events import EventKind
from orchestrator.face.web.sources import log_tail
from orchestrator.face.web.timeline import last_build, timeline
from orchestrator.plan.budget import recorded_cost
from orchestrator.plan.model import Plan, Status, Subtask, status_counts
from orchestrator.plan.parse import load_plan
from orchestrator.plan.specs import Spec, all_specs
from orchestrator.stage.conflict_report import conflict_report, integration_branch

Json = dict[str, Any]
CHAIN_LIMIT = 500  # first-parent merges read to name the subtasks a bisection probe holds


def spec_rows(repo: Path) -> list[Json]:
    """The repository's specs with their progress, for the list page."""
    rows = []
    for spec in all_specs(repo):
        row: Json = {"name": spec.name, "folder": str(spec.folder.relative_to(repo))}
        try:
            plan = load_plan(spec.plan_path)
        except OrchestrateError as exc:
            row["error"] = exc.message.splitlines()[0]
        else:
            counts = status_counts(plan)
            row.update(total=sum(counts.values()), counts=dict(counts),
                       feature=_text(plan.raw.get("feature")))
        rows.append(row)
    return rows


@dataclass
class Chains:
    """Which subtasks each commit of a checked merge chain holds, read once per chain."""

    known: dict[tuple[str, int], dict[str, list[str]]] = field(default_factory=dict)

    def held(self, repo: Path, plan: Plan, last: str, branches: int) -> dict[str, list[str]]:
        """For the chain ending at `last` with `branches` merges: each of its commits ->
        the ids of the subtasks merged up to it, in plan order."""
        key = (last, branches)
        if key not in self.known:
            self.known[key] = _chain(repo, plan, last, branches)
        return self.known[key]


def _chain(repo: Path, plan: Plan, last: str, branches: int) -> dict[str, list[str]]:
    heads: dict[str, str] = {str(s.record.head): s.id for s in plan.subtasks() if s.record.head}
    count = min(branches, CHAIN_LIMIT)
    try:
        listing = run_git(repo, "log", "--first-parent", f"--max-count={count}",
                          "--format=%H %P", last, check=False).stdout
    except GitError:
        return {}
    merges = [line.split() for line in reversed(listing.splitlines()) if len(line.split()) > 2]
    held: dict[str, list[str]] = {}
    merged: list[str] = []
    for commit, _, second, *_ in merges:
        merged.append(heads.get(second, second[:12]))
        held[commit] = list(merged)
    return held


def snapshot(spec: Spec, events: Sequence[Json], chains: Chains, *,
             budget: float | None = None) -> Json:
    plan = load_plan(spec.plan_path)
    recent = last_build(events)
    return {"spec": spec.name, "feature": _text(plan.raw.get("feature")),
            "integration_branch": integration_branch(spec, plan),
            "counts": dict(status_counts(plan)), "total": sum(1 for _ in plan.subtasks()),
            "cost_usd": recorded_cost(plan), "budget_usd": _budget(recent, budget),
            "state": _state(recent, plan), "phases": [_phase(spec, phase) for phase in plan.phases],
            "timeline": timeline(plan, events), "bisections": bisections(spec, plan, recent,
                                                                         chains),
            "radar": radar_pairs(plan, recent, _report_radar(spec)),
            "report_at": _report_stamp(spec)}


def _phase(spec: Spec, phase: Any) -> Json:
    return {"key": phase.key, "name": phase.name, "parallel_safe": phase.parallel_safe,
            "subtasks": [_subtask(spec, s) for s in phase.subtasks]}


def _subtask(spec: Spec, subtask: Subtask) -> Json:
    record = subtask.record
    check = record.check
    return {"id": subtask.id, "title": subtask.title, "status": str(subtask.status),
            "attempts": record.attempts, "duration_s": record.duration_s,
            "cost_usd": record.cost_usd, "merge": record.merge, "error": record.error,
            "branch": record.branch, "started_at": _text(subtask.raw.get("started_at")),
            "completed_at": _text(subtask.raw.get("completed_at")),
            "check": None if check is None else {
                "command": _text(check.get("command")), "exit_code": check.get("exit_code"),
                "commit": _text(check.get("commit"))},
            "has_log": names.subtask_log(spec.logs, subtask.id).is_file()}


def _state(events: Sequence[Json], plan: Plan) -> str:
    """running (a build's events have no build_finished yet, or without events, a subtask is
    in_progress), finished, or idle."""
    kinds = [e.get("kind") for e in events]
    if not kinds:
        statuses = {s.status for s in plan.subtasks()}
        if Status.IN_PROGRESS in statuses:
            return "running"
        return "idle" if statuses <= {Status.PENDING} else "finished"
    return "finished" if EventKind.BUILD_FINISHED in kinds or \
        EventKind.MERGE_FINISHED in kinds[-1:] else "running"


def _budget(events: Sequence[Json], given: float | None) -> float | None:
    for event in reversed(events):
        value = event["data"].get("budget_usd")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return given


def bisections(spec: Spec, plan: Plan, events: Sequence[Json], chains: Chains) -> list[Json]:
    """Each bisection of the build: its failing commit, its rounds' probes (each naming the
    subtasks the probed commit holds) and its culprit with the check's output."""
    found: list[Json] = []
    for event in events:
        kind, data = event["kind"], event["data"]
        if kind == EventKind.BISECT_STARTED:
            last = str(data.get("commit") or "")
            branches = data.get("branches") if isinstance(data.get("branches"), int) else 0
            found.append({"commit": last[:12], "branches": branches, "rounds": [],
                          "culprit": None, "message": event.get("message") or "",
                          "held": chains.held(spec.repo, plan, last, branches) if last else []})
        elif kind == EventKind.BISECT_ROUND and found:
            probes = [str(p) for p in data.get("probes") or [] if isinstance(p, str)]
            found[-1]["rounds"].append({"message": event.get("message") or "",
                                        "probes": [{"commit": p[:12], "full": p}
                                                   for p in probes]})
        elif kind == EventKind.BISECT_CULPRIT and found:
            found[-1]["culprit"] = _culprit(spec, plan, event)
    for entry in found:
        _name_probes(entry)
    return found


def _name_probes(entry: Json) -> None:
    """Which subtasks each probe holds: the merges of its chain up to it."""
    held: dict[str, list[str]] = entry.pop("held")
    for round_ in entry["rounds"]:
        for probe in round_["probes"]:
            probe["holds"] = held.get(probe.pop("full"), [])


def _culprit(spec: Spec, plan: Plan, event: Json) -> Json:
    subtask_id = event.get("subtask")
    commit = str(event["data"].get("commit") or "")
    culprit: Json = {"subtask": subtask_id, "commit": commit[:12],
                     "message": event.get("message") or ""}
    try:
        record = plan.subtask(str(subtask_id)).record.check if subtask_id else None
    except KeyError:
        record = None
    if record is not None:
        culprit.update(exit_code=record.get("exit_code"), command=_text(record.get("command")),
                       output=_text(record.get("output")))
    return culprit


def check_output(spec: Spec, subtask: Subtask) -> Json:
    """The failed check that left `subtask` out: its record and its log's tail."""
    check = subtask.record.check or {}
    commit = _text(check.get("commit"))
    log = log_tail(names.check_log(spec.logs, commit)) if commit else None
    return {"subtask": subtask.id, "command": _text(check.get("command")),
            "exit_code": check.get("exit_code"), "commit": commit,
            "output": _text(check.get("output")), "log": log.text if log else "",
            "log_skipped": bool(log and log.skipped)}


def radar_pairs(plan: Plan, events: Sequence[Json], outcomes: list[Json]) -> list[Json]:
    """The radar's pairs (subtasks, path, overlapping, outcome) from the plan's
    `orchestrate.radar` records and the build's overlap_predicted events."""
    order: dict[str, int] = {s.id: n for n, s in enumerate(plan.subtasks())}
    pairs: dict[tuple[str, str, str], Json] = {}

    def add(one: str, other: str, path: str, overlapping: object) -> None:
        first, second = sorted((one, other), key=lambda s: order.get(s, len(order)))
        pair = pairs.setdefault((first, second, path), {"subtasks": [first, second],
                                                        "path": path, "overlapping": False,
                                                        "outcome": None})
        pair["overlapping"] = pair["overlapping"] or overlapping is True

    for subtask in plan.subtasks():
        for note in subtask.record.radar:
            add(subtask.id, note.with_, note.path, note.overlapping)
    for event in events:
        data = event["data"]
        ids = data.get("subtasks")
        if event["kind"] == "overlap_predicted" and isinstance(ids, list) and len(ids) == 2 \
                and isinstance(data.get("path"), str):
            add(str(ids[0]), str(ids[1]), data["path"], data.get("overlapping"))
    for outcome in outcomes:
        ids = outcome.get("subtasks")
        if isinstance(ids, list) and len(ids) == 2:
            first, second = sorted((str(ids[0]), str(ids[1])),
                                   key=lambda s: order.get(s, len(order)))
            if (key := (first, second, str(outcome.get("path")))) in pairs:
                pairs[key]["outcome"] = outcome.get("outcome")
    return list(pairs.values())


def report_json(spec: Spec) -> Json:
    """The conflict report of the last merge stage (`<spec>/conflict_report.json`), or one
    built from the plan and git when none was written yet."""
    written = _read_report(spec)
    if written is not None:
        return written
    plan = load_plan(spec.plan_path)
    try:
        return conflict_report(spec, plan).to_json()
    except (OrchestrateError, GitError):
        return {"spec": spec.name, "conflicts": [], "subtasks": []}


def _read_report(spec: Spec) -> Json | None:
    try:
        value = json.loads((spec.folder / names.REPORT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _report_radar(spec: Spec) -> list[Json]:
    report = _read_report(spec) or {}
    found = report.get("radar")
    return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []


def _report_stamp(spec: Spec) -> float | None:
    try:
        return (spec.folder / names.REPORT_JSON).stat().st_mtime
    except OSError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


__all__ = ["Chains", "Status", "bisections", "check_output", "radar_pairs", "report_json",
           "snapshot", "spec_rows"]
