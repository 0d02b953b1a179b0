"""The live display of a build on a terminal, on rich: event lines scroll above a footer that
rich redraws in place (a progress bar and one line per running subtask, in plan order).

The footer never wraps (every line is cut to the terminal's width) and never takes more than
half the screen's height ("… and N more"), so a redraw never leaves a copy in the scrollback.
It is transient: on close (end, error, Ctrl-C) it is erased and only the event lines remain.
Refreshes happen on events and when the build calls `refresh()` (once a second): no thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from orchestrator.build.run_summary import last_output_line
from orchestrator.events import Event, EventKind, event_lines
from orchestrator.plan.model import Status

# A row's state: a status word where one fits, else running, committed or merged.
FINISHED_AGENT = frozenset({"committed", Status.FAILED, Status.CONFLICT, "merged"})
STATE_AFTER = {EventKind.SUBTASK_STARTED: "running", EventKind.SUBTASK_COMMITTED: "committed",
               EventKind.SUBTASK_SKIPPED: "merged", EventKind.SUBTASK_FAILED: Status.FAILED,
               EventKind.SUBTASK_MERGED: "merged", EventKind.SUBTASK_CONFLICT: Status.CONFLICT,
               EventKind.SUBTASK_BLOCKED: Status.BLOCKED,
               EventKind.RESOLUTION_STARTED: "running", EventKind.RESOLVED: "committed",
               EventKind.RESOLUTION_FAILED: Status.CONFLICT}
BAR_MAX = 30


def _initial_state(status: str) -> str:
    shown: dict[str, str] = {Status.COMPLETED: "merged", Status.IN_PROGRESS: Status.PENDING}
    return shown.get(status, status)


class LiveSink:
    def __init__(self, out: TextIO, subtasks: Sequence[tuple[str, str]]) -> None:
        self.console = Console(file=out, highlight=False, markup=False, emoji=False)
        self.order = {sid: n for n, (sid, _) in enumerate(subtasks)}
        self.state = {sid: _initial_state(status) for sid, status in subtasks}
        self.started: dict[str, float] = {}
        self.notes: dict[str, str] = {}  # subtask -> its `display` text
        self.logs: dict[str, Path] = {}  # running subtask -> its log, whose last line is shown
        self.footer_notes: dict[str, str] = {}  # event kind -> a footer line of its own
        self.start = time.monotonic()
        self.live = Live(_Footer(self), console=self.console, auto_refresh=False,
                         transient=True, vertical_overflow="crop")
        self.live.start()
        self.closed = False

    def emit(self, event: Event) -> None:
        if self.closed:
            return
        self._track(event)
        for line in event_lines(event):
            self.console.print(Text(line, style=_style(event.kind)), overflow="fold")
        self.live.refresh()

    def refresh(self) -> None:
        if not self.closed:
            self.live.refresh()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.live.stop()

    def _track(self, event: Event) -> None:
        sid = event.subtask
        if sid is not None and sid not in self.order:
            self.order[sid] = len(self.order)
        if sid is not None and event.kind in STATE_AFTER:
            self.state[sid] = STATE_AFTER[event.kind]
            self.notes.pop(sid, None)
            if event.kind in (EventKind.SUBTASK_STARTED, EventKind.RESOLUTION_STARTED):
                self.started[sid] = time.monotonic()
            log = event.data.get("log")
            if self.state[sid] == "running" and isinstance(log, str):
                self.logs[sid] = Path(log)
        if sid is not None and event.kind == EventKind.ATTEMPT_FAILED:
            self.notes[sid] = f"attempt {event.data.get('attempt', '?')} failed, retrying"
        display, display_key = event.data.get("display"), event.data.get("display_key")
        if isinstance(display, str):
            target, key = ((self.footer_notes, display_key) if isinstance(display_key, str)
                           else (self.notes, sid) if sid else (self.footer_notes, event.kind))
            if display:
                target[key] = display
            else:
                target.pop(key, None)

    # The footer, drawn by _Footer on each refresh.

    def footer_lines(self, width: int, height: int) -> Iterator[Text]:
        yield self._bar_line(width)
        running = sorted((s for s, state in self.state.items() if state == "running"),
                         key=lambda s: self.order[s])
        notes = list(self.footer_notes.values())
        room = max(1, height // 2 - 1 - len(notes))
        shown = running if len(running) <= room else running[:room - 1]
        name_width = min(max((len(s) for s in shown), default=0), max(8, width - 20))
        now = time.monotonic()
        for sid in shown:
            seconds = now - self.started.get(sid, now)
            line = Text(f"  ▸ {sid:<{name_width}}", style="cyan")
            line.append(f"  {seconds:4.0f}s", style="dim")
            if note := self.notes.get(sid):
                line.append(f"  {note}", style="yellow")
            elif (log := self.logs.get(sid)) and (said := last_output_line(log)):
                line.append(f"  {said}", style="dim")
            yield _cut(line, width)
        if len(shown) < len(running):
            yield _cut(Text(f"  … and {len(running) - len(shown)} more running", style="dim"),
                       width)
        for note in notes[:max(0, height // 2 - 1)]:
            yield _cut(Text(f"  {note}", style="yellow"), width)

    def _bar_line(self, width: int) -> Text:
        states = list(self.state.values())
        total = len(states)
        merged = states.count("merged")
        finished = sum(1 for s in states if s in FINISHED_AGENT)
        bad = states.count(Status.FAILED) + states.count(Status.CONFLICT)
        label = f" agents {finished}/{total} · merged {merged}/{total}"
        for state in (Status.FAILED, Status.CONFLICT):
            if count := states.count(state):
                label += f" · {count} {state}"
        label += f" · {_clock(time.monotonic() - self.start)}"
        bar_width = min(BAR_MAX, width - len(label) - 1)
        line = Text()
        if bar_width >= 8 and total:
            cells = [round(bar_width * n / total) for n in (merged, finished - bad, finished)]
            line.append("█" * cells[0], style="green")
            line.append("▒" * (cells[1] - cells[0]), style="yellow")
            line.append("▒" * (cells[2] - cells[1]), style="red")
            line.append("░" * (bar_width - cells[2]), style="dim")
        line.append(label)
        return _cut(line, width)


class _Footer:
    """A renderable that asks the sink for the footer at the console's current size."""

    def __init__(self, sink: LiveSink) -> None:
        self.sink = sink

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.sink.footer_lines(options.max_width, console.size.height)


def _cut(line: Text, width: int) -> Text:
    line.no_wrap = True
    line.overflow = "ellipsis"
    line.truncate(width, overflow="ellipsis")
    return line


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _style(kind: str) -> str:
    if kind in ("subtask_failed", "subtask_conflict", "attempt_failed"):
        return "red"
    if kind in ("subtask_merged", "build_finished"):
        return "green"
    if kind == EventKind.SUBTASK_BLOCKED:
        return "yellow"
    return ""
