"""The end of a build in words: counts per status, wall time, what the checks and resolution
rounds did, cost and sandbox mode, then one line per subtask that is not completed (why, and the
command that comes next), and last the integration branch and its head."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import names
from orchestrator.events import duration_text, printable
from orchestrator.plan.model import MergeState, Plan, Status, Subtask
from orchestrator.stage.verdicts import failing_test

ORDER = (Status.COMPLETED, Status.FAILED, Status.CONFLICT, Status.BLOCKED, Status.PENDING,
         Status.IN_PROGRESS, "stale")
REASON_WIDTH = 160
TAIL_BYTES = 8192
TIMED_OUT = 124


@dataclass(frozen=True)
class RunFacts:
    """What the build itself knows beyond the plan."""

    elapsed_s: float
    integration_branch: str
    tip: str
    check_runs: int = 0
    resolution_rounds: int = 0
    sandbox: str = "none"
    check_timeout_s: float | None = None
    setbacks: Mapping[str, str] = field(default_factory=dict)  # subtask -> what went wrong


def headline(counts: Mapping[str, int], facts: RunFacts, cost: object) -> str:
    """`done in 12.3s: 5 completed, 1 conflict; 8 check runs; cost 0.42 USD; sandbox: none`."""
    shown = [f"{counts[s]} {s}" for s in ORDER if counts.get(s)]
    shown += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in ORDER and n]
    parts = [f"done in {duration_text(facts.elapsed_s)}: {', '.join(shown) or 'nothing to do'}"]
    if facts.check_runs:
        parts.append(f"{facts.check_runs} check run{'s' if facts.check_runs != 1 else ''}")
    if facts.resolution_rounds:
        parts.append(f"{facts.resolution_rounds} resolution round"
                     f"{'s' if facts.resolution_rounds != 1 else ''}")
    parts.append(f"cost {cost:.2f} USD" if isinstance(cost, int | float) else "cost n/a")
    parts.append(f"sandbox: {facts.sandbox}")
    return "; ".join(parts)


def subtask_lines(spec: str, plan: Plan, logs: Path, stale: Collection[str],
                  facts: RunFacts) -> list[str]:
    """One line per subtask that is not completed: `id status: reason; next: command`."""
    lines = []
    for subtask in plan.subtasks():
        status = "stale" if subtask.id in stale else subtask.status
        if status == Status.COMPLETED and (setback := facts.setbacks.get(subtask.id)):
            lines.append(f"{subtask.id} completed after a resolution round: {_cut(setback)}; "
                         f"next: `orchestrate review {spec} {subtask.id}` shows the fix")
        if status == Status.COMPLETED:
            continue
        why, then = _reason(spec, subtask, logs, facts), _next(spec, subtask, status)
        lines.append(f"{subtask.id} {_status_word(subtask, status)}: {_cut(why)}; next: {then}")
    return lines


def integration_line(facts: RunFacts) -> str:
    return f"integration branch {facts.integration_branch} at {facts.tip[:12]}"


def _status_word(subtask: Subtask, status: str) -> str:
    if subtask.is_committed_unmerged and status == Status.IN_PROGRESS:
        return "committed"
    return status


def _reason(spec: str, subtask: Subtask, logs: Path, facts: RunFacts) -> str:
    record = subtask.record
    if subtask.status == Status.CONFLICT and record.merge == MergeState.CHECK_FAILED:
        return check_reason(record.check, facts.check_timeout_s)
    if subtask.status == Status.CONFLICT:
        paths = record.conflict_paths
        if paths and not (record.error or "").startswith("not "):
            return "conflicts in " + ", ".join(paths[:6]) + (
                f" and {len(paths) - 6} more" if len(paths) > 6 else "")
        return record.error or "merge conflict"
    if subtask.status == Status.FAILED:
        last = last_output_line(names.subtask_log(logs, subtask.id))
        return (record.error or Status.FAILED) + (f"; last output: {last}" if last else "")
    if subtask.is_committed_unmerged:
        return record.error or "committed, not merged yet"
    if subtask.status == Status.COMPLETED:
        return "completed, but its work is not in the integration branch"
    return record.error or ("not started" if subtask.status == Status.PENDING
                            else str(subtask.status))


def check_reason(check: object, timeout_s: float | None = None) -> str:
    """The check's failing test (or last line) and how it ended."""
    data = check if isinstance(check, dict) else {}
    code = data.get("exit_code")
    output = str(data.get("output") or "")
    if code == TIMED_OUT and "(check_timeout)" in output:
        ended = "timed out" + (f" after {timeout_s:g} s" if timeout_s else "") + \
            " (check_timeout)"
    else:
        ended = f"exit {code}" if code is not None else Status.FAILED
    found = failing_test(output)
    return f"the check fails ({ended})" + (f": {found}" if found else "")


def last_output_line(log: Path) -> str:
    """The last line of a log that is not one of orchestrate's own headers."""
    try:
        with log.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    for line in reversed(text.splitlines()):
        shown = printable(line).strip()
        if shown and not shown.startswith(("=====", "########", "$ ", "[orchestrate:")):
            return shown
    return ""


def _next(spec: str, subtask: Subtask, status: str) -> str:
    sid = subtask.id
    if status == "stale":
        return f"`orchestrate build {spec}` merges it again"
    if subtask.status == Status.CONFLICT and subtask.record.merge == MergeState.CHECK_FAILED:
        return (f"fix it on {subtask.record.branch or 'its branch'} and `orchestrate merge "
                f"{spec}`, or `orchestrate reset {spec} {sid}` and `orchestrate build {spec} "
                f"--only {sid}`")
    if subtask.status == Status.CONFLICT:
        return (f"`orchestrate report {spec}` says how to resolve it; then "
                f"`orchestrate merge {spec}`")
    if subtask.status == Status.FAILED:
        return f"`orchestrate logs {spec} {sid}`, then `orchestrate build {spec} --only {sid}`"
    if subtask.is_committed_unmerged:
        return f"`orchestrate merge {spec}`"
    if subtask.status == Status.BLOCKED:
        return f"`orchestrate build {spec}` once its dependencies are completed"
    return f"`orchestrate build {spec}`"


def _cut(text: str) -> str:
    one = " ".join(printable(text).split())
    return one if len(one) <= REASON_WIDTH else one[:REASON_WIDTH - 1] + "…"
