"""Reading what a build writes while it writes it: `<spec>/logs/events.jsonl` (one JSON object
a line; a torn last line or a bad line is skipped, never fatal) and the tail of a log file.
Every read is bounded: a page shows the end of a long log, not the whole file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.events import printable

EVENTS_FILE = "events.jsonl"
TAIL_BYTES = 64 * 1024  # what a page first shows of a log
CHUNK_BYTES = 256 * 1024  # at most this much new log text per update; beyond it, the tail


def events_path(logs: Path) -> Path:
    return logs / EVENTS_FILE


@dataclass
class EventReader:
    """The events of one events.jsonl, read incrementally: each call to `read` parses only
    the complete lines appended since the last call; a file that shrank is read afresh."""

    path: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except OSError:
            self.events, self.offset = [], 0
            return self.events
        if size < self.offset:
            self.events, self.offset = [], 0
        if size > self.offset:
            self._read_from(self.offset)
        return self.events

    def _read_from(self, start: int) -> None:
        with self.path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        for line in data[:end].splitlines():
            event = _parse(line)
            if event is not None:
                self.events.append(event)
        self.offset = start + end


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        return None
    if not isinstance(value.get("data"), dict):
        value["data"] = {}
    return value


@dataclass(frozen=True)
class LogPiece:
    text: str  # whole lines, escape sequences removed
    offset: int  # where the next read starts
    skipped: bool  # bytes before `text` were left out (a tail, or a reset)


def log_tail(path: Path, *, limit: int = TAIL_BYTES) -> LogPiece:
    """The last `limit` bytes of the log at `path`, from a line start; empty if absent."""
    try:
        size = path.stat().st_size
    except OSError:
        return LogPiece("", 0, False)
    return log_since(path, max(size - limit, 0), skipped=size > limit)


def log_since(path: Path, offset: int, *, skipped: bool = False) -> LogPiece:
    """Whole lines appended after `offset`; a file that shrank (a new attempt) starts over,
    and more than CHUNK_BYTES of new text gives its tail."""
    try:
        size = path.stat().st_size
    except OSError:
        return LogPiece("", offset, False)
    if size < offset:
        return log_tail(path)
    if size - offset > CHUNK_BYTES:
        offset, skipped = size - CHUNK_BYTES, True
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(size - offset)
    if skipped and offset:
        first = data.find(b"\n") + 1
        data, offset = data[first:], offset + first
    end = data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8", errors="replace")
    lines = [printable(line) for line in text.splitlines()]
    return LogPiece("".join(f"{line}\n" for line in lines), offset + end, skipped)


def stamp(*paths: Path) -> tuple[tuple[int, int], ...]:
    """(size, mtime) of each path ((-1, 0) if absent): changes when any file changes."""
    found = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            found.append((-1, 0))
            continue
        found.append((info.st_size, info.st_mtime_ns))
    return tuple(found)
