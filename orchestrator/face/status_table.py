"""`orchestrate status` as a table: a header per phase, one row per subtask with readable
columns, the error, log and worktree of a subtask that needs attention under its row, and the
next command to type. Formatted by hand (no rich): `status` must start fast.

Widths: the id column is as wide as the longest id; with a known width (a terminal, or
COLUMNS) descriptions are cut with "…" or moved under their row, and ids cut only as a last
resort, so that rows fit the screen.
Colours only on a terminal, and never with NO_COLOR set (https://no-color.org).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from orchestrator import names
from orchestrator.build.hints import next_steps, ready_blocked
from orchestrator.events import printable
from orchestrator.face.views import progress_line
from orchestrator.plan.model import MergeState, Phase, Plan, Status, Subtask
from orchestrator.plan.sandbox_note import sandbox_text
from orchestrator.plan.specs import Spec
from orchestrator.plan.store import running_pid

COLOURS = {Status.COMPLETED: "32", Status.FAILED: "31", Status.CONFLICT: "31",
           Status.BLOCKED: "33", Status.IN_PROGRESS: "36", "header": "1", "dim": "2"}
MERGE_WORDS: dict[str, str] = {MergeState.MERGED: "merged",
                               MergeState.CONFLICT: MergeState.CONFLICT,
                               MergeState.PENDING: "waiting",
                               MergeState.CHECK_FAILED: "ejected"}
STATUS_WIDTH, MERGE_WIDTH, TIME_WIDTH = 11, 8, 7
MIN_ID, MIN_DESCRIPTION = 12, 12
FIXED = 2 + 2 * 4 + STATUS_WIDTH + MERGE_WIDTH + TIME_WIDTH  # all but the id and description
NOTE_INDENT = " " * 6
NOT_A_TERMINAL_DESCRIPTION = 80


@dataclass(frozen=True)
class Style:
    width: int | None  # None: not limited (output is not a terminal and COLUMNS is unset)
    colour: bool

    @staticmethod
    def for_stdout() -> Style:
        terminal = sys.stdout.isatty()
        columns = os.environ.get("COLUMNS", "")
        width = (int(columns) if columns.isdigit() and int(columns) > 0
                 else terminal_columns() if terminal else None)
        colour = (terminal and "NO_COLOR" not in os.environ
                  and os.environ.get("TERM") != "dumb")
        return Style(width, colour)

    def paint(self, text: str, what: str) -> str:
        code = COLOURS.get(what)
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code and text else text


def terminal_columns() -> int:
    """The terminal's width, as shutil.get_terminal_size gives it, without importing shutil
    (which loads the compression modules: `status` starts faster without them)."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def status_table(spec: Spec, plan: Plan, style: Style, stale: Collection[str] = ()) -> str:
    """`stale`: ids of completed subtasks whose work is not in the integration branch."""
    lines = [f"{spec.name}: {progress_line(plan, stale)}"]
    if branch := plan.record.integration_branch:
        base = str(plan.record.base or "")[:12]
        lines.append(_cut(f"integration branch: {branch}" + (f" (from {base})" if base else ""),
                          style.width))
    if (total := plan.record.cost_usd) is not None:
        lines.append(f"cost: {total:.2f} USD in total")
    if sandbox := sandbox_text(plan):
        lines.append(_wrap(f"sandbox: {sandbox}", style.width))
    running = running_pid(spec.folder)
    if running:
        lines.append(style.paint(_wrap(f"a build of this spec is running (pid {running}); "
                                       "statuses change as it works", style.width),
                                 Status.IN_PROGRESS))
    id_width = _id_width(plan, style.width)
    below = style.width is not None and style.width - FIXED - id_width < MIN_DESCRIPTION
    ready = {s.id for s in ready_blocked(plan)}
    for phase in plan.phases:
        lines += ["", style.paint(_cut(_phase_title(plan, phase), style.width), "header"),
                  style.paint(_cells(style, id_width, "SUBTASK", "STATUS", "MERGE", "TIME",
                                     "" if below else "DESCRIPTION"), "dim")]
        for subtask in phase.subtasks:
            lines.append(_row(spec, subtask, style, id_width, below, subtask.id in stale,
                              stopped=not running and subtask.is_interrupted))
            if below:  # long ids leave no room: the description gets a line of its own
                lines.append(_cut(NOTE_INDENT + _description(subtask), style.width))
            lines += _notes(spec, subtask, style, subtask.id in ready)
    lines += _summary_notes(spec, plan, stale, style)
    if not running and (steps := next_steps(spec.name, plan, stale)):
        lines += ["", *(_wrap(step, style.width) for step in steps)]
    return "\n".join(lines)


def _phase_title(plan: Plan, phase: Phase) -> str:
    deps = ", ".join(plan.phases[i].key for i in phase.depends_on) or "none"
    mode = "parallel" if phase.parallel_safe else "sequential"
    return printable(f"{phase.label}  ({mode}; depends on: {deps})")


def _id_width(plan: Plan, width: int | None) -> int:
    """As wide as the longest id; cut only where even a row without description is too wide."""
    longest = max([len("SUBTASK"), *(len(s.id) for s in plan.subtasks())])
    if width is None:
        return longest
    return max(MIN_ID, min(longest, width - FIXED))


def _cells(style: Style, id_width: int, sid: str, status: str, merge: str, time: str,
           description: str, status_kind: str = "") -> str:
    head = (f"  {_fit(sid, id_width):<{id_width}}  "
            f"{style.paint(f'{status:<{STATUS_WIDTH}}', status_kind)}  "
            f"{merge:<{MERGE_WIDTH}}  {time:>{TIME_WIDTH}}  ")
    used = 2 + id_width + 2 + STATUS_WIDTH + 2 + MERGE_WIDTH + 2 + TIME_WIDTH + 2
    room = (style.width - used) if style.width is not None else NOT_A_TERMINAL_DESCRIPTION
    return (head + _fit(description, room)).rstrip()


def _description(subtask: Subtask) -> str:
    record = subtask.record
    marks = ["(no changes)" if record.no_changes else "",
             f"(wave {record.wave})" if record.wave is not None else "",
             "(ejected by the check)" if subtask.record.merge == MergeState.CHECK_FAILED
             and subtask.status == Status.CONFLICT else ""]
    return " ".join([*(m for m in marks if m), printable(subtask.title)])


def _row(spec: Spec, subtask: Subtask, style: Style, id_width: int, below: bool,
         stale: bool = False, stopped: bool = False) -> str:
    """`stopped`: in progress, but no build runs (one was killed or interrupted twice)."""
    record = subtask.record
    merge = ("missing" if stale else "stopped" if stopped
             else MERGE_WORDS.get(str(record.merge), record.merge or ""))
    seconds = record.duration_s
    from orchestrator.events import duration_text  # here: events builds an enum, rarely needed

    time = duration_text(seconds) if seconds is not None else ""
    status = "stale" if stale else subtask.status
    return _cells(style, id_width, subtask.id, status.replace("_", " "), merge[:MERGE_WIDTH],
                  time, "" if below else _description(subtask),
                  Status.BLOCKED if stale else subtask.status)


def _summary_notes(spec: Spec, plan: Plan, stale: Collection[str], style: Style) -> list[str]:
    lines = []
    if ejected := [s.id for s in plan.subtasks() if s.status == Status.CONFLICT
                   and s.record.merge == MergeState.CHECK_FAILED]:
        lines += ["", _wrap(f"ejected by the check ({plan.record.check_command}): "
                            f"{', '.join(ejected)}", style.width)]
    if stale:
        lines += ["", _wrap(f"stale: {len(stale)} subtask(s) marked completed whose work is "
                            f"not in {names.integration_branch(spec.name)}; the next build "
                            "merges them again from their branches or reruns them",
                            style.width)]
    return lines


def _notes(spec: Spec, subtask: Subtask, style: Style, ready: bool = False) -> list[str]:
    """Under a subtask that needs attention: why, and where its log and worktree are. A
    `ready` blocked subtask (its dependencies are completed now) says so, not its old cause."""
    record, status = subtask.record, subtask.status
    indent = NOTE_INDENT
    notes = []
    if ready:
        notes.append(_cut(f"{indent}ready: its dependencies are completed; "
                          f"`orchestrate build {spec.name}` runs it", style.width))
    elif record.error and status not in (Status.COMPLETED, Status.PENDING):
        error = record.error.splitlines()[0]
        label = "cause" if status == Status.BLOCKED else "error"
        notes.append(_cut(f"{indent}{label}: {error.removeprefix('blocked: ')}", style.width))
    if status in (Status.FAILED, Status.CONFLICT):  # paths are never cut: they are to be copied
        log = names.subtask_log(spec.logs, subtask.id)
        if log.exists():
            notes.append(f"{indent}log: {_shown(log)}")
        worktree = record.worktree
        if worktree and Path(worktree).is_dir():
            notes.append(f"{indent}worktree: {_shown(Path(worktree))}")
    if overlaps := record.overlaps:
        notes.append(_cut(indent + "overlaps: " + ", ".join(overlaps), style.width))
    if (verification := record.verification) and verification != "passed":
        notes.append(_cut(f"{indent}verification: {verification}", style.width))
    if record.resolving is not None:
        notes.append(f"{indent}resolving: round {record.resolving}")
    elif record.resolutions:
        notes.append(f"{indent}resolution rounds: {record.resolutions}")
    if (cost := record.cost_usd) is not None:
        notes.append(f"{indent}cost: {cost:.2f} USD")
    return [style.paint(note, "dim") for note in notes]


def _shown(path: Path) -> str:
    """A path relative to the current directory when it is below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _fit(text: str, width: int) -> str:
    text = " ".join(text.split())
    if width <= 0:
        return ""
    return text if len(text) <= width else text[:width - 1] + "…"


def _wrap(text: str, width: int | None) -> str:
    """A next-step line, wrapped at spaces rather than cut: it holds commands to copy."""
    if width is None:
        return text
    import textwrap

    return "\n".join(textwrap.wrap(text, width, subsequent_indent="      ",
                                    break_long_words=False, break_on_hyphens=False))


def _cut(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[:width - 1] + "…"
