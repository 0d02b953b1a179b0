"""The timeline of a build: one row per subtask with its agent attempts, checks, merges and
resolution rounds on one time axis, in seconds from the build's start. Drawn from the events
of events.jsonl (the last build and what followed it); without them, from the plan's
`started_at`/`completed_at`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from orchestrator.events import EventKind
from orchestrator.plan.model import MergeState, Plan, Status

Json = dict[str, Any]

K = EventKind
ATTEMPT_ENDS = {K.SUBTASK_COMMITTED: "committed", K.SUBTASK_FAILED: str(Status.FAILED),
                K.SUBTASK_SKIPPED: "no changes", K.BUDGET_REACHED: "budget"}
MERGE_MARKS = {K.SUBTASK_MERGED: str(MergeState.MERGED),
               K.SUBTASK_CONFLICT: str(MergeState.CONFLICT),
               K.SUBTASK_BLOCKED: str(Status.BLOCKED), K.SUBTASK_RECOVERED: "recovered"}
ROUND_ENDS = {K.RESOLVED: "resolved", K.RESOLUTION_FAILED: str(Status.FAILED)}
CHECK_VERDICTS = frozenset({K.CHECK_CACHED, K.CHECK_PASSED, K.CHECK_FAILED, K.CHECK_FLAKY})
CHECK_ENDS = CHECK_VERDICTS | {K.CHECK_BASE_FAILED, K.BISECT_STARTED, K.BISECT_ROUND,
                               K.BISECT_CULPRIT, K.SUBTASK_MERGED, K.SUBTASK_CONFLICT,
                               K.MERGE_FINISHED, K.BUILD_FINISHED}
BISECT_KINDS = frozenset({K.BISECT_STARTED, K.BISECT_ROUND, K.BISECT_CULPRIT})


def epoch(text: object) -> float | None:
    """Seconds since 1970 of an ISO-8601 UTC time such as 2026-01-01T10:00:00Z."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def last_build(events: Sequence[Json]) -> list[Json]:
    """The events from the last build_started on (all of them if there is none)."""
    starts = [i for i, e in enumerate(events) if e.get("kind") == K.BUILD_STARTED]
    return list(events[starts[-1]:]) if starts else list(events)


def timed(events: Iterable[Json]) -> list[tuple[float, Json]]:
    """(seconds since 1970, event) for each event: the run's start (its first event's `time`
    less its `elapsed_s`) plus the event's `elapsed_s`, which is finer than `time`. A run
    starts where `elapsed_s` goes back."""
    found: list[tuple[float, Json]] = []
    anchor, last = None, -1.0
    for event in events:
        elapsed = event.get("elapsed_s")
        moment = epoch(event.get("time"))
        if not isinstance(elapsed, int | float) or isinstance(elapsed, bool):
            if moment is not None:
                found.append((moment, event))
            continue
        if anchor is None or elapsed < last:
            if moment is None:
                continue
            anchor = moment - elapsed
        last = float(elapsed)
        found.append((anchor + last, event))
    return found


def timeline(plan: Plan, events: Sequence[Json]) -> Json:
    moments = timed(last_build(events))
    if not moments:
        return _from_plan(plan)
    start = moments[0][0]
    rows: dict[str, list[Json]] = {s.id: [] for s in plan.subtasks()}
    checks: list[Json] = []
    for moment, event in moments:
        at = round(moment - start, 3)
        _place(event, at, rows, checks)
    return {"source": "events", "start": start, "end": round(moments[-1][0] - start, 3),
            "rows": [{"id": key, "items": items} for key, items in rows.items()],
            "checks": checks}


def _place(event: Json, at: float, rows: dict[str, list[Json]], checks: list[Json]) -> None:
    kind, data = event["kind"], event["data"]
    subtask = event.get("subtask")
    row = rows.get(subtask) if isinstance(subtask, str) else None
    if kind in CHECK_ENDS:
        _close_checks(checks, at, kind, data)
    if kind == K.CHECK_STARTED:
        checks.append({"kind": "check", "from": at, "to": None,
                       "commit": str(data.get("commit") or "")[:12],
                       "subtasks": _strings(data.get("subtasks"))})
    elif kind in BISECT_KINDS:
        checks.append({"kind": kind, "at": at, "label": event.get("message") or kind,
                       "subtask": subtask})
    if row is None:
        return
    if kind == K.SUBTASK_STARTED:
        _close(row, "attempt", at, "interrupted")
        row.append({"kind": "attempt", "from": at, "to": None, "number": 1})
    elif kind == K.ATTEMPT_FAILED:
        number = data.get("attempt")
        _close(row, "attempt", at, str(Status.FAILED))
        row.append({"kind": "attempt", "from": at, "to": None,
                    "number": number + 1 if isinstance(number, int) else None})
    elif kind in ATTEMPT_ENDS:
        _close(row, "attempt", at, ATTEMPT_ENDS[kind])
    elif kind == K.RESOLUTION_STARTED:
        row.append({"kind": "round", "from": at, "to": None, "number": data.get("round")})
    elif kind in ROUND_ENDS:
        _close(row, "round", at, ROUND_ENDS[kind])
    if kind in MERGE_MARKS:
        row.append({"kind": "mark", "at": at, "outcome": MERGE_MARKS[kind]})


def _close(row: list[Json], kind: str, at: float, outcome: str) -> None:
    for item in reversed(row):
        if item["kind"] == kind and item["to"] is None:
            item["to"], item["outcome"] = at, outcome
            return


def _close_checks(checks: list[Json], at: float, kind: str, data: Json) -> None:
    commit = str(data.get("commit") or "")[:12]
    for item in checks:
        if item["kind"] != "check" or item["to"] is not None:
            continue
        if kind in CHECK_VERDICTS and item["commit"] != commit:
            continue
        item["to"] = at


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _from_plan(plan: Plan) -> Json:
    """Each subtask's last run, from `started_at` to `completed_at` (open while running)."""
    spans = {s.id: (epoch(s.raw.get("started_at")), epoch(s.raw.get("completed_at")), s.status)
             for s in plan.subtasks()}
    starts = [begin for begin, _, _ in spans.values() if begin is not None]
    if not starts:
        return {"source": "plan", "start": None, "end": 0, "rows": [
            {"id": key, "items": []} for key in spans], "checks": []}
    start = min(starts)
    ends = [end for _, end, _ in spans.values() if end is not None]
    rows = []
    for key, (begin, end, status) in spans.items():
        items: list[Json] = []
        if begin is not None:
            to = None if end is None or status == Status.IN_PROGRESS else round(end - start, 3)
            items.append({"kind": "attempt", "from": round(begin - start, 3), "to": to,
                          "number": None, "outcome": str(status)})
            if to is not None and status in (Status.COMPLETED, Status.CONFLICT):
                items.append({"kind": "mark", "at": to, "outcome": str(status)})
        rows.append({"id": key, "items": items})
    return {"source": "plan", "start": start,
            "end": round(max([*ends, *starts]) - start, 3), "rows": rows, "checks": []}
