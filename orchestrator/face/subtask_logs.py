"""`orchestrate logs`: a subtask's log (or one attempt of it), every subtask's log with each
line prefixed by its id, and following them while a build writes them.

Following ends by itself: for one subtask when its attempt or resolution round ends (an event
in `<spec>/logs/events.jsonl` says so), for all of them when the build ends; in both cases
also when no build or merge holds the spec's run lock any more (one killed with -9). A subtask
the running build will not run (completed, failed or in conflict without --retry-failed, not
among its --only, waiting for one of those, committed and only waiting to be merged) is not
followed at all: its log so far, then a line on stderr saying why.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import names
from orchestrator.build.only import unfinished_dependencies
from orchestrator.errors import UsageError
from orchestrator.plan.model import Plan, Status, Subtask
from orchestrator.plan.specs import Spec
from orchestrator.plan.store import running_pid

POLL_S = 0.2
ATTEMPT_HEADER = re.compile(r"^===== \S+ (?:attempt|resolution round) (\d+) of (\S+) on ")
RUN_HEADER = "######## build of "
# Events that end what a subtask was doing (an attempt, a round) or say it will not start.
ENDS = frozenset({"attempt_failed", "subtask_committed", "subtask_failed", "subtask_skipped",
                  "subtask_blocked", "budget_reached", "resolved", "resolution_failed"})
STARTS = frozenset({"subtask_started", "resolution_started"})
BUILD_ENDS = frozenset({"build_finished", "merge_finished"})

Write = Callable[[bytes], None]
Note = Callable[[str], None]


def show_logs(spec: Spec, plan: Plan, subtask_id: str | None, *, follow: bool,
              attempt: int | None, write: Write, note: Note = lambda _: None) -> int:
    """Print (and with `follow`, follow) one subtask's log or all of them; the exit code.
    `note`: a line saying why there is nothing to follow (for stderr)."""
    if subtask_id is None:
        if attempt is not None:
            raise UsageError("option --attempt needs a subtask id",
                             f"Write: orchestrate logs {spec.name} ID --attempt {attempt}")
        return _all_logs(spec, plan, follow=follow, write=write, note=note)
    known = [s.id for s in plan.subtasks()]
    if subtask_id not in known:
        raise UsageError(f"no subtask {subtask_id!r} in {spec.name}: its subtasks are "
                         f"{', '.join(known[:20])}{' …' if len(known) > 20 else ''}",
                         f"See `orchestrate status {spec.name}`.")
    return _one_log(spec, plan, subtask_id, follow=follow, attempt=attempt, write=write,
                    note=note)


def _one_log(spec: Spec, plan: Plan, subtask_id: str, *, follow: bool, attempt: int | None,
             write: Write, note: Note) -> int:
    path = names.subtask_log(spec.logs, subtask_id)
    events = EventTail(names.events_log(spec.logs))
    text = path.read_bytes() if path.exists() else b""
    if attempt is not None:
        section = attempt_section(text, attempt)
        if section is None:
            found = sorted(set(attempt_numbers(text)))
            raise UsageError(f"the log of {subtask_id} has no attempt {attempt}" + (
                f" (attempts: {', '.join(map(str, found))})" if found else " (it is empty)"),
                f"Run `orchestrate logs {spec.name} {subtask_id}` for the whole log.")
        write(section)
        if not follow or attempt != max(attempt_numbers(text)):
            return 0
    else:
        write(text)
    if not follow:
        return 0
    if why := not_followed(spec, plan, plan.subtask(subtask_id), events):
        note(why)
        return 0
    _follow_one(spec, path, len(text), subtask_id, events, write)
    return 0


def not_followed(spec: Spec, plan: Plan, subtask: Subtask, events: EventTail) -> str | None:
    """Why `logs -f` has nothing to follow for `subtask`, or None: it runs (or will)."""
    sid, status = subtask.id, subtask.status
    if running_pid(spec.folder) is None:
        return f"{sid} is {status}; no build of {spec.name} is running"
    if events.ended(sid, since_build_start=True):
        return f"{sid} is {status}; its attempt in the running build has ended"
    build = events.last_build()
    if build is None or events.active(sid):
        return None  # a build that has not announced itself yet, or one that works on it
    only = [str(i) for i in build.get("only") or []]
    why = _not_run(plan, subtask, only, retry_failed=build.get("retry_failed") is True)
    return f"{sid} is {why}; not running in this build" if why else None


def _not_run(plan: Plan, subtask: Subtask, only: Sequence[str], *,
             retry_failed: bool) -> str | None:
    """Why a build with these options runs no agent for `subtask`, or None if it may."""
    if only and subtask.id not in only:
        return f"{subtask.status} and not among its --only {','.join(only)}"
    if subtask.status == Status.COMPLETED:
        return Status.COMPLETED
    if subtask.is_committed_unmerged:
        return "committed and waits only to be merged"
    if subtask.status in (Status.FAILED, Status.CONFLICT):
        return None if retry_failed or only else \
            f"{subtask.status} (the running build has no --retry-failed)"
    for dependency in unfinished_dependencies(plan, subtask.phase):
        if _not_run(plan, dependency, only, retry_failed=retry_failed):
            return (f"{subtask.status} and waits for {dependency.id} ({dependency.status}), "
                    "which does not run in this build either")
    return None


def _follow_one(spec: Spec, path: Path, offset: int, subtask_id: str, events: EventTail,
                write: Write) -> None:
    reader = Tail(path, offset)
    while True:
        done = any((e.get("subtask") == subtask_id and e.get("kind") in ENDS)
                   or e.get("kind") in BUILD_ENDS for e in events.new())
        if chunk := reader.read():
            write(chunk)
        if done or running_pid(spec.folder) is None:
            write(reader.read())
            return
        time.sleep(POLL_S)


def _all_logs(spec: Spec, plan: Plan, *, follow: bool, write: Write, note: Note) -> int:
    events = EventTail(names.events_log(spec.logs))
    tails = {s.id: Lines(Tail(names.subtask_log(spec.logs, s.id), 0), f"[{s.id}] ")
             for s in plan.subtasks()}
    for lines in tails.values():
        write(lines.read(final=not follow))
    if not follow:
        return 0
    if running_pid(spec.folder) is None:
        note(f"no build of {spec.name} is running: nothing more to follow")
        return 0
    events.new()  # what happened before now is not the end of this build
    while True:
        done = any(e.get("kind") in BUILD_ENDS for e in events.new()) or \
            running_pid(spec.folder) is None
        for lines in tails.values():
            write(lines.read(final=done))
        if done:
            return 0
        time.sleep(POLL_S)


def attempt_numbers(text: bytes) -> list[int]:
    return [int(m.group(1)) for line in text.decode("utf-8", "replace").splitlines()
            if (m := ATTEMPT_HEADER.match(line))]


def attempt_section(text: bytes, attempt: int) -> bytes | None:
    """The lines of the last attempt numbered `attempt` (its header included), up to the next
    attempt's or build's header; None when the log has no such attempt."""
    lines = text.splitlines(keepends=True)
    starts = [n for n, line in enumerate(lines)
              if (m := ATTEMPT_HEADER.match(line.decode("utf-8", "replace")))
              and int(m.group(1)) == attempt]
    if not starts:
        return None
    end = next((n for n in range(starts[-1] + 1, len(lines)) if _is_header(lines[n])),
               len(lines))
    return b"".join(lines[starts[-1]:end])


def _is_header(line: bytes) -> bool:
    text = line.decode("utf-8", "replace")
    return bool(ATTEMPT_HEADER.match(text)) or text.startswith(RUN_HEADER)


@dataclass
class Tail:
    """The bytes appended to a file since the last read."""

    path: Path
    offset: int

    def read(self) -> bytes:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return b""
        self.offset += len(data)
        return data


@dataclass
class Lines:
    """Whole new lines of a file, each prefixed; a last partial line waits for its end."""

    tail: Tail
    prefix: str
    partial: bytes = b""

    def read(self, *, final: bool) -> bytes:
        data = self.partial + self.tail.read()
        whole, _, self.partial = data.rpartition(b"\n")
        if final and self.partial:
            whole, self.partial = data, b""
        if not whole:
            return b""
        prefix = self.prefix.encode()
        return b"".join(prefix + line + b"\n" for line in whole.split(b"\n"))


@dataclass
class EventTail:
    """New events of events.jsonl since the last call (complete lines only)."""

    path: Path
    offset: int = -1
    partial: bytes = b""
    seen: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def new(self) -> list[dict[str, Any]]:
        data = self.partial + Tail(self.path, self.offset).read()
        self.offset += len(data) - len(self.partial)
        whole, _, self.partial = data.rpartition(b"\n")
        return list(_decode(whole.split(b"\n") if whole else []))

    def last_build(self) -> dict[str, Any] | None:
        """The data of the latest build's `build_started` event (its --only, --retry-failed)."""
        found = None
        for event in _decode(_read_lines(self.path)):
            if event.get("kind") == "build_started":
                data = event.get("data")
                found = data if isinstance(data, dict) else {}
        return found

    def active(self, subtask_id: str) -> bool:
        """Whether the latest build has said anything of the subtask (started, conflicted, ...):
        it works on it, and a resolution round may follow."""
        seen = False
        for event in _decode(_read_lines(self.path)):
            if event.get("kind") == "build_started":
                seen = False
            elif event.get("subtask") == subtask_id:
                seen = True
        return seen

    def ended(self, subtask_id: str, *, since_build_start: bool) -> bool:
        """Whether the subtask's last event of the latest build (before now) ends its work."""
        last = None
        for event in _decode(_read_lines(self.path)):
            if since_build_start and event.get("kind") == "build_started":
                last = None
            elif event.get("subtask") == subtask_id and \
                    event.get("kind") in ENDS | STARTS:
                last = event.get("kind")
        return last in ENDS


def _read_lines(path: Path) -> list[bytes]:
    try:
        return path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return []


def _decode(lines: Sequence[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event
