"""The conflict report as GitHub Actions workflow commands: `::error` per conflict (naming the
file's overlap too) and `::warning` per overlap of a file that did not conflict, each pointing
at the file and the lines changed (`line`, and `endLine` when the edits span more lines)."""

from __future__ import annotations

from merge.changes import Hunk
from merge.report import ConflictReport, Finding


def render_github(report: ConflictReport) -> str:
    lines = [_annotation("error", f, _conflict_text(report, f)) for f in report.conflicts()]
    lines += [_annotation("warning", f, _overlap_text(report, f))
              for f in report.unfolded_overlaps()]  # a conflict's own overlap is in its error
    lines += [_check_annotation(report, f) for f in report.check_failures()]
    runs = report.check.get("flaky") if report.check else None
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, dict):
            lines.append(f"::warning title={escape_property('Flaky check')}::" + escape_data(
                f"the check failed, then passed when rerun, on {run.get('commit')}; log: "
                f"{run.get('log')}"))
    if report.sandbox is not None:
        lines.append(_sandbox_annotation(report.sandbox))
    return "".join(line + "\n" for line in lines)


def _sandbox_annotation(sandbox: dict[str, object]) -> str:
    """The build's sandbox: a notice, or a warning when some subtasks ran without one."""
    level = "warning" if sandbox.get("without_sandbox") else "notice"
    text = f"sandbox: {sandbox.get('text') or sandbox.get('mode')}"
    return f"::{level} title={escape_property('Sandbox')}::{escape_data(text)}"


def _check_annotation(report: ConflictReport, finding: Finding) -> str:
    check = finding.check or {}
    text = (f"{finding.subtask} ({finding.branches[0]}) was not merged into "
            f"{report.integration_branch}: the check `{check.get('command')}` fails "
            f"(exit {check.get('exit_code')}) on {check.get('commit')}. Log: {check.get('log')}. "
            f"Fix the branch, then run `orchestrate merge {report.spec}`.")
    return f"::error title={escape_property('Check failed')}::{escape_data(text)}"


def _annotation(level: str, finding: Finding, text: str) -> str:
    kind = "Merge conflict" if finding.kind == "conflict" else "Overlapping edits"
    start, end = line_range(finding)
    props = {"file": finding.path, "line": str(start),
             **({"endLine": str(end)} if end > start else {}),
             "title": f"{kind} ({finding.detail})"}
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in props.items())
    return f"::{level} {joined}::{escape_data(text)}"


def _conflict_text(report: ConflictReport, finding: Finding) -> str:
    others = [s for s in finding.subtasks if s != finding.subtask]
    against = f" conflicts with {', '.join(others)} and" if others else ""
    branch = dict(zip(finding.subtasks, finding.branches, strict=True))[finding.subtask]
    return (f"{finding.subtask} ({branch}){against} was not merged into "
            f"{report.integration_branch}: {finding.detail} conflict in {finding.path}. "
            f"Merge {report.integration_branch} into {branch}, resolve, commit, then run "
            f"`orchestrate merge {report.spec}`."
            + "".join(f" The file is also an overlap ({o.detail}) of {', '.join(o.subtasks)}."
                      for o in report.folded_overlaps(finding)))


def _overlap_text(report: ConflictReport, finding: Finding) -> str:
    state = "merged cleanly" if finding.merged else "not all merged"
    if finding.merged and (hand := report.hand_resolution_of(finding)):
        state = f"the conflict was resolved by hand in {hand[1][:12]} ({hand[0]})"
    if finding.merged and (by := report.resolution_of(finding)):
        state = f"the conflict was resolved by agent in round {by.round} ({by.subtask_id})"
    return (f"{finding.path} was changed by {', '.join(finding.subtasks)} in the same "
            f"parallel phase ({finding.detail}; {state}).")


def line_range(finding: Finding) -> tuple[int, int]:
    """The lines an annotation spans. A conflict: the unmerged subtask's first changed range
    (else another side's). An overlap: from the first line any side changed to the last."""
    sides = sorted(finding.sides, key=lambda s: s.subtask_id != finding.subtask)
    spans = [[_span(h) for h in side.change.hunks] for side in sides
             if side.change and side.change.hunks]
    if not spans:
        return 1, 1
    if finding.kind == "conflict":
        return spans[0][0]
    every = [span for side in spans for span in side]
    return min(start for start, _ in every), max(end for _, end in every)


def _span(hunk: Hunk) -> tuple[int, int]:
    """A hunk's lines on the branch; a removal points at the line where the text was."""
    if not hunk.new_lines:
        start = max(1, hunk.old_start)
        return start, start
    return hunk.new_start, hunk.new_start + hunk.new_lines - 1


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
