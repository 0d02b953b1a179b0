"""The one progress sink of a run: a live display on a terminal, plain lines otherwise, or one
JSON object per event with --json. The live display (orchestrator/live.py, on rich) is imported
only when a terminal asks for it."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from orchestrator.events import FINAL, Event, Sink, event_lines
from orchestrator.plan.model import Plan, Status
from orchestrator.plan.store import utc_now

__all__ = ["FINAL", "Event", "EventLog", "JsonSink", "LineSink", "Sink", "Tee", "event_json",
           "make_sink", "reader_gone", "write_or_drop"]


def reader_gone(out: TextIO) -> None:
    """The reader of `out` went away (`orchestrate build 001 | head`): what is still written
    to it goes nowhere, and the build carries on; nothing fails because nobody reads."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def write_or_drop(out: TextIO, text: str) -> None:
    """Write and flush `text`; a closed pipe sends this and every later write to /dev/null."""
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        reader_gone(out)
    except ValueError:  # the stream itself was closed
        pass


class LineSink:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def emit(self, event: Event) -> None:
        write_or_drop(self.out, "".join(f"{line}\n" for line in event_lines(event)))

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def event_json(event: Event, start: float) -> str:
    """One event as the JSON line `--json` prints and `<spec>/logs/events.jsonl` holds."""
    record = {"time": utc_now(), "elapsed_s": round(time.monotonic() - start, 3),
              **asdict(event)}
    return json.dumps(record, ensure_ascii=False)


class JsonSink:
    """One JSON object a line on `out`, and the very same line in `log` (events.jsonl)."""

    def __init__(self, out: TextIO, log: EventLog | None = None) -> None:
        self.out, self.log = out, log
        self.start = time.monotonic()

    def emit(self, event: Event) -> None:
        line = event_json(event, self.start)
        write_or_drop(self.out, line + "\n")
        if self.log is not None:
            self.log.append(line)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


class EventLog:
    """Appends every event, one `--json` object a line, to `<spec>/logs/events.jsonl` as it
    happens (the web page and `orchestrate logs -f` read it). A failing write (disk full)
    stops the appending, never the build."""

    def __init__(self, path: Path) -> None:
        self.path, self.start = path, time.monotonic()
        self.out: TextIO | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.out = path.open("a", encoding="utf-8")
        except OSError:
            self.out = None

    def emit(self, event: Event) -> None:
        self.append(event_json(event, self.start))

    def append(self, line: str) -> None:
        if self.out is None:
            return
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except OSError:
            self.close()

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.out is not None:
            with contextlib.suppress(OSError):
                self.out.close()
            self.out = None


class Tee:
    """Every event to each of `sinks` in turn: the screen first, then the event log."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)

    def refresh(self) -> None:
        for sink in self.sinks:
            sink.refresh()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def sink_for(plan: Plan, *, as_json: bool, out: TextIO | None = None,
             events: Path | None = None) -> Sink:
    """The sink of a build or merge of `plan`: each subtask shown with where it stands, and
    every event appended to `events` (the spec's events.jsonl)."""
    statuses = [s.status for s in plan.subtasks()]
    return make_sink(as_json=as_json, total=len(statuses), out=out, events=events,
                     done=statuses.count(Status.COMPLETED), subtasks=[
                         (s.id, "committed" if s.is_committed_unmerged else s.status)
                         for s in plan.subtasks()])


def make_sink(*, as_json: bool, total: int, done: int, out: TextIO | None = None,
              subtasks: Sequence[tuple[str, str]] = (), events: Path | None = None) -> Sink:
    """`subtasks`: (id, status) of every subtask in plan order, for the live display;
    `events`: the events.jsonl file every event is also appended to."""
    log = EventLog(events) if events is not None else None
    if as_json:
        return JsonSink(out or sys.stdout, log)
    screen = _screen_sink(total=total, done=done, out=out, subtasks=subtasks)
    return screen if log is None else Tee(screen, log)


def _screen_sink(*, total: int, done: int, out: TextIO | None,
                 subtasks: Sequence[tuple[str, str]]) -> Sink:
    stream = out or sys.stdout
    if stream.isatty() and os.environ.get("TERM") != "dumb":
        from orchestrator.face.live import LiveSink

        return LiveSink(stream, subtasks or [
            (f"#{n}", Status.COMPLETED if n < done else Status.PENDING) for n in range(total)])
    return LineSink(stream)
