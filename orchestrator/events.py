"""What a run reports while it works: the Event record and the Sink protocol every renderer
implements. The core (runner, merging, build) imports these, never a renderer.

Conventions every renderer honours, so a new kind of event needs no renderer change:
* Any event's `message` is printed as one log line (prefixed with `[subtask]`); an event with
  an empty message prints no line.
* `data["detail"]`: extra lines printed, indented, under the message (e.g. an output tail).
* `data["display"]`: a short status text shown in the live footer, as a footer line of its own
  under `data["display_key"]` when given (a check of one commit, the bisection), else on the
  running line of `subtask`, else as a footer line of the event's kind; "" clears it. Plain
  and JSON output ignore it beyond the event itself.
* `data["log"]` on subtask_started and resolution_started: the subtask's log, whose last line
  the live footer shows on its running line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from orchestrator.types import Status

# Escape sequences and control characters from agent output would move the cursor or clear
# the screen under the live display; shown lines drop them.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
                      r"|\x1b.?|[\x00-\x08\x0a-\x1f\x7f-\x9f]")

class EventKind(StrEnum):
    """Every kind of event a build reports. The names are part of the contract: `--json` and
    events.jsonl carry them as the `kind` field, and a StrEnum prints and compares as the word."""

    BUILD_STARTED = "build_started"
    BASE_CHOSEN = "base_chosen"
    PHASE_STARTED = "phase_started"
    WAVE_STARTED = "wave_started"
    SUBTASK_STARTED = "subtask_started"
    SUBTASK_COMMITTED = "subtask_committed"
    SUBTASK_FAILED = "subtask_failed"
    ATTEMPT_FAILED = "attempt_failed"
    SUBTASK_SKIPPED = "subtask_skipped"
    SUBTASK_STALE = "subtask_stale"
    SUBTASK_RECOVERED = "subtask_recovered"
    SUBTASK_MERGED = "subtask_merged"
    SUBTASK_CONFLICT = "subtask_conflict"
    SUBTASK_BLOCKED = "subtask_blocked"
    CHECK_STARTED = "check_started"
    CHECK_CACHED = "check_cached"
    CHECK_PASSED = "check_passed"
    CHECK_FAILED = "check_failed"
    CHECK_FLAKY = "check_flaky"
    CHECK_BASE_FAILED = "check_base_failed"
    BISECT_STARTED = "bisect_started"
    BISECT_ROUND = "bisect_round"
    BISECT_CULPRIT = "bisect_culprit"
    RESOLUTION_STARTED = "resolution_started"
    RESOLVED = "resolved"
    RESOLUTION_FAILED = "resolution_failed"
    MERGE_FINISHED = "merge_finished"
    BUDGET_REACHED = "budget_reached"
    REQUEST_LIMIT = "request_limit"
    ORPHANS_STOPPED = "orphans_stopped"
    CHECKOUT_DIRTY = "checkout_dirty"
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"  # --sandbox auto without a working bwrap
    BUILD_FINISHED = "build_finished"
    SHARED_GIT_RESTORED = "shared_git_restored"  # a change to the shared .git was undone
    # the conflict radar
    OVERLAP_PREDICTED = "overlap_predicted"
    RADAR_OFF = "radar_off"


# Event kinds that end a subtask's part in the run, and the status each one leaves.
FINAL = {EventKind.SUBTASK_MERGED: Status.COMPLETED, EventKind.SUBTASK_FAILED: Status.FAILED,
         EventKind.SUBTASK_CONFLICT: Status.CONFLICT, EventKind.SUBTASK_BLOCKED: Status.BLOCKED,
         EventKind.SUBTASK_SKIPPED: Status.COMPLETED}


@dataclass(frozen=True)
class Event:
    kind: EventKind
    message: str
    subtask: str | None = None
    phase: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...

    def refresh(self) -> None: ...

    def close(self) -> None: ...


def event_lines(event: Event) -> list[str]:
    """The plain-text lines of an event: its message, then any detail lines indented."""
    if not event.message:
        return []
    who = f"[{event.subtask}] " if event.subtask else ""
    lines = [f"{who}{event.message}"]
    detail = event.data.get("detail")
    if isinstance(detail, list | tuple):
        lines += [f"    {line}" for line in detail if isinstance(line, str)]
    elif isinstance(detail, str) and detail:
        lines += [f"    {line}" for line in detail.splitlines()]
    return [printable(line) for line in lines]


def printable(line: str) -> str:
    """`line` without escape sequences or control characters (tabs become spaces)."""
    return _CONTROL.sub("", line.expandtabs(4))


def duration_text(seconds: float) -> str:
    """12.3s, 4m05s, 1h02m: short and readable."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
