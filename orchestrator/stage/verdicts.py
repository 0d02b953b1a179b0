"""What one run knows about the check (SPEC 9): verdicts by tree id, runs under way, and a
failure of the check on the integration branch's head, which stops every merge."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import trio

from orchestrator.events import printable


@dataclass(frozen=True)
class Verdict:
    """The check's judgement of one commit (of its tree, really)."""

    commit: str
    tree: str
    passed: bool
    exit_code: int | None = 0
    log: str = ""
    output: str = ""  # the last lines of the last failing run
    flaky: bool = False  # failed, then passed on a rerun
    cached: bool = False  # known from an earlier judgement, not run now
    runs: int = 0  # check runs it took (reruns included)
    confirmed: bool = True  # a failure that had its `check_retries` reruns (or needs none)

    def record(self, command: str) -> dict[str, object]:
        """The culprit's `orchestrate.check` field."""
        return {"command": command, "exit_code": self.exit_code, "commit": self.commit,
                "log": self.log, "output": self.output}


@dataclass
class CheckState:
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # tree -> verdict, this run
    running: dict[str, trio.Event] = field(default_factory=dict)  # tree -> set when judged
    base_failure: Verdict | None = None  # the check fails where merging would start
    refused_start: bool = False  # it failed on the head before any agent: nothing ran
    runs: int = 0  # check runs started by this process (reruns included)
    sequential: int = 0  # runs a sequential gate would have needed for what this process judged
    running_now: int = 0  # check processes under way at this moment
    beside_rest: bool = False  # a culprit's rerun and the next batch's check run at once
    # commit -> the subtasks it holds, in words ("s01..s12 on the integration branch"), so
    # that check and bisection lines never name a bare commit id
    holds: dict[str, str] = field(default_factory=dict)
    started: int = 0  # check runs begun by this process: a running one's ordinal
    waiting: set[str] = field(default_factory=set)  # commits of probes decided, not yet begun

    def label(self, commit: str) -> str:
        return self.holds.get(commit, commit[:12])

    def expect(self, commits: Iterable[str]) -> None:
        """Probes about to be checked: counted among the runs planned so far."""
        self.waiting.update(commits)

    def begin(self, commit: str) -> str:
        """A check run of `commit` begins: `3/5`, its ordinal among the check runs of this
        process and the number of those begun or planned so far."""
        self.waiting.discard(commit)
        self.started += 1
        return f"{self.started}/{self.started + len(self.waiting)}"


LISTED = 4  # subtasks named one by one; more are shown as a range


def holding(subtask_ids: list[str], order: Sequence[str] = ()) -> str:
    """`s01, s02` or `s01..s12`, merged onto the integration branch; `order`: the subtasks of
    the merge stage in plan order, so that a range names those it skips (`s01..s12 without
    s07`: a culprit left out, a conflict)."""
    if not subtask_ids:
        return "the integration branch"
    named = (", ".join(subtask_ids) if len(subtask_ids) <= LISTED else
             f"{subtask_ids[0]}..{subtask_ids[-1]}" + _skipped(subtask_ids, order))
    return f"{named} on the integration branch"


def _skipped(subtask_ids: list[str], order: Sequence[str]) -> str:
    if subtask_ids[0] not in order or subtask_ids[-1] not in order:
        return ""
    span = order[order.index(subtask_ids[0]):order.index(subtask_ids[-1]) + 1]
    held = set(subtask_ids)
    left_out = [sid for sid in span if sid not in held]
    return f" without {', '.join(left_out)}" if left_out else ""


def ending(verdict: Verdict, timeout_s: float) -> str:
    """How a failing check ended: `exit 3`, or `timed out after 60 s (check_timeout)`."""
    if TIMEOUT_NOTE in verdict.output:
        return f"timed out after {timeout_s:g} s (check_timeout)"
    return f"exit {verdict.exit_code}"


TIMEOUT_NOTE = "(check_timeout)]"
# Lines of test runners' output that name a failing test, best first.
FAILING_TEST = (re.compile(r"^(FAILED|ERROR) \S"), re.compile(r"^(FAIL|ERROR): \S"),
                re.compile(r"^--- FAIL: "), re.compile(r"\b(failed|error|Error)\b"))


def failing_test(output: str) -> str:
    """The line of a failing check's output that best says what failed, else its last."""
    lines = [printable(line).strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("[orchestrate:", "$ "))]
    for pattern in FAILING_TEST:
        if hits := [line for line in lines if pattern.search(line)]:
            return hits[-1] if pattern is FAILING_TEST[-1] else hits[0]
    return lines[-1] if lines else ""
