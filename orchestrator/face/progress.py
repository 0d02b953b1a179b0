"""The one progress sink of a run: a live display on a terminal, plain lines otherwise, or one
JSON object per event with --json. The live display (orchestrator/live.py, on rich) is imported
only when a terminal asks for it."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TextIO

from orchestrator.events import FINAL, Event, Sink, event_lines
from orchestrator.plan.model import Plan, Status
from orchestrator.plan.store import utc_now

__all__ = ["FINAL", "Event", "JsonSink", "LineSink", "Sink", "make_sink", "reader_gone",
           "write_or_drop"]


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


class JsonSink:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.monotonic()

    def emit(self, event: Event) -> None:
        record = {"time": utc_now(), "elapsed_s": round(time.monotonic() - self.start, 3),
                  **asdict(event)}
        write_or_drop(self.out, json.dumps(record, ensure_ascii=False) + "\n")

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def sink_for(plan: Plan, *, as_json: bool, out: TextIO | None = None) -> Sink:
    """The sink of a build or merge of `plan`: each subtask shown with where it stands."""
    statuses = [s.status for s in plan.subtasks()]
    return make_sink(as_json=as_json, total=len(statuses), out=out,
                     done=statuses.count(Status.COMPLETED), subtasks=[
                         (s.id, "committed" if s.is_committed_unmerged else s.status)
                         for s in plan.subtasks()])


def make_sink(*, as_json: bool, total: int, done: int, out: TextIO | None = None,
              subtasks: Sequence[tuple[str, str]] = ()) -> Sink:
    """`subtasks`: (id, status) of every subtask in plan order, for the live display."""
    stream = out or sys.stdout
    if as_json:
        return JsonSink(stream)
    if stream.isatty() and os.environ.get("TERM") != "dumb":
        from orchestrator.face.live import LiveSink

        return LiveSink(stream, subtasks or [
            (f"#{n}", Status.COMPLETED if n < done else Status.PENDING) for n in range(total)])
    return LineSink(stream)
