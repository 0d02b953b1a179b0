"""What a running check looks like (SPEC 17): `check 3/5: s01..s12 on the integration branch`,
the run's ordinal and the check runs begun or planned so far, naming the subtasks the commit
holds; parallel probes of one bisection round each get their own ordinal. A real in-process
build (real git, real check commands) whose events are then shown by the live display."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from orchestrator.events import Event, EventKind
from orchestrator.face.live import LiveSink
from tests.conftest import phase, plan_of, write_plan
from tests.inprocess import FakeAgent, build_in_process

SPEC = "001-rows"
SIX = [f"s{n:02d}" for n in range(1, 7)]
ROW = re.compile(r"check (\d+)/(\d+): (.+)")


def check_events(repo: Path) -> list[Event]:
    log = repo / ".orchestrate" / "specs" / SPEC / "logs" / "events.jsonl"
    found = [json.loads(line) for line in log.read_text().splitlines()]
    return [Event(EventKind(e["kind"]), e["message"], e["subtask"], e["phase"], e["data"])
            for e in found if e["kind"].startswith(("check", "bisect"))]


def test_check_rows_count_the_runs_so_far_and_name_the_subtasks(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, SIX, parallel=True)))
    assert build_in_process(repo, SPEC, FakeAgent(), check="test ! -e s04.txt",
                            max_parallel=5) == 1
    events = check_events(repo)
    rows = [e.data["display"] for e in events if e.kind == EventKind.CHECK_STARTED]
    assert rows[:2] == ["check 1/1: the integration branch's head",
                        "check 2/2: s01..s06 on the integration branch"]
    matched = [ROW.fullmatch(row) for row in rows]
    assert all(matched), rows
    ordinals = [(int(m[1]), int(m[2])) for m in matched if m]
    assert all(n <= planned for n, planned in ordinals)
    assert [n for n, _ in ordinals] == sorted({n for n, _ in ordinals})  # each its own
    assert any(n < planned for n, planned in ordinals), rows  # a round of parallel probes
    # the branches after the culprit, merged again without it (checked beside its rerun)
    assert any(row.endswith(": s01..s06 without s04 on the integration branch") for row in rows)
    runs = next(e for e in events if e.kind == EventKind.CHECK_FAILED).data["runs"]
    assert ordinals[2][0] == 2 + runs  # the failure's rerun counted as a run of its own
    assert build_in_process(repo, SPEC, FakeAgent(), check="test ! -e s04.txt") == 1
    again = check_events(repo)[len(events):]  # a second build: the head's verdict is cached
    assert [e.kind for e in again] == [EventKind.CHECK_CACHED]
    for event in events + again:  # plain lines name subtasks too, never a bare commit id alone
        assert re.search(r"s\d\d|integration branch's head", event.message), event.message
    out = io.StringIO()
    sink = LiveSink(out, [(sid, "pending") for sid in SIX])
    parallel = next(i for i, (n, planned) in enumerate(ordinals) if n < planned)
    started = [e for e in events if e.kind == EventKind.CHECK_STARTED]
    for event in started[parallel:parallel + 2]:
        sink.emit(event)
    footer = [line.plain for line in sink.footer_lines(120, 40)]
    sink.close()
    assert f"  {rows[parallel]}" in footer
    assert f"  {rows[parallel + 1]}" in footer
