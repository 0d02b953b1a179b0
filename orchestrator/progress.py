"""The one progress sink of a run: a live display on a terminal, plain lines otherwise, or one
JSON object per event with --json."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TextIO

from orchestrator.store import utc_now


@dataclass(frozen=True)
class Event:
    kind: str  # build_started, subtask_started, attempt_failed, subtask_committed, merged, ...
    message: str
    subtask: str | None = None
    phase: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...

    def refresh(self) -> None: ...

    def close(self) -> None: ...


class LineSink:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def emit(self, event: Event) -> None:
        who = f"[{event.subtask}] " if event.subtask else ""
        self.out.write(f"{who}{event.message}\n")
        self.out.flush()

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
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.out.flush()

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


FINAL = {"subtask_merged": "completed", "subtask_failed": "failed",
         "subtask_conflict": "conflict", "subtask_blocked": "blocked",
         "subtask_skipped": "completed"}


class LiveSink:
    """Event lines scroll; below them a bar and one line per running subtask are redrawn."""

    def __init__(self, out: TextIO, total: int, done: int) -> None:
        self.out, self.total, self.done = out, total, done
        self.running: dict[str, float] = {}
        self.waiting_merge = 0
        self.footer_lines = 0

    def emit(self, event: Event) -> None:
        self._clear_footer()
        LineSink(self.out).emit(event)
        if event.kind == "subtask_started" and event.subtask:
            self.running[event.subtask] = time.monotonic()
        elif event.kind in FINAL and event.subtask:
            self.running.pop(event.subtask, None)
            self.done += event.kind in ("subtask_merged", "subtask_skipped")
            self.waiting_merge -= event.kind in ("subtask_merged", "subtask_conflict")
        elif event.kind in ("subtask_committed", "resolved") and event.subtask:
            self.running.pop(event.subtask, None)
            self.waiting_merge += 1
        elif event.kind == "resolution_started" and event.subtask:  # SPEC 10
            self.running[event.subtask] = time.monotonic()
        elif event.kind == "resolution_failed" and event.subtask:
            self.running.pop(event.subtask, None)
        self._draw_footer()

    def refresh(self) -> None:
        """Redraw the footer, so the running times move between events."""
        self._clear_footer()
        self._draw_footer()

    def close(self) -> None:
        self._clear_footer()

    def _clear_footer(self) -> None:
        if self.footer_lines:
            self.out.write(f"\x1b[{self.footer_lines}A\x1b[J")
        self.footer_lines = 0

    def _draw_footer(self) -> None:
        width = min(40, max(10, shutil.get_terminal_size().columns - 40))
        share = self.done / self.total if self.total else 1.0
        filled = round(width * share)
        waiting = f", {self.waiting_merge} waiting to merge" if self.waiting_merge > 0 else ""
        lines = [f"Progress: [{'█' * filled}{'░' * (width - filled)}] {share:.0%} "
                 f"({self.done}/{self.total} subtasks{waiting})"]
        now = time.monotonic()
        lines += [f"  running {name} ({now - start:.0f}s)" for name, start in self.running.items()]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.footer_lines = len(lines)


def make_sink(*, as_json: bool, total: int, done: int, out: TextIO | None = None) -> Sink:
    stream = out or sys.stdout
    if as_json:
        return JsonSink(stream)
    if stream.isatty():
        return LiveSink(stream, total, done)
    return LineSink(stream)
