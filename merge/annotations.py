"""The conflict report as GitHub Actions workflow commands: `::error` per conflict and
`::warning` per overlap, each pointing at the file and first changed line."""

from __future__ import annotations

from merge import words
from merge.report import ConflictReport, Finding


def render_github(report: ConflictReport) -> str:
    lines = [_annotation("error", f, _conflict_text(report, f)) for f in report.conflicts()]
    lines += [_annotation("warning", f, _overlap_text(f)) for f in report.overlaps()]
    lines += [_check_annotation(report, f) for f in report.check_failures()]
    runs = report.check.get("flaky") if report.check else None
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, dict):
            lines.append(f"::warning title={escape_property('Flaky check')}::" + escape_data(
                f"the check failed, then passed when rerun, on {run.get('commit')}; log: "
                f"{run.get('log')}"))
    return "".join(line + "\n" for line in lines)


def _check_annotation(report: ConflictReport, finding: Finding) -> str:
    check = finding.check or {}
    text = (f"{finding.subtask} ({finding.branches[0]}) was not merged into "
            f"{report.integration_branch}: the check `{check.get('command')}` fails "
            f"(exit {check.get('exit_code')}) on {check.get('commit')}. Log: {check.get('log')}. "
            f"Fix the branch, then run `orchestrate merge {report.spec}`.")
    return f"::error title={escape_property('Check failed')}::{escape_data(text)}"


def _annotation(level: str, finding: Finding, text: str) -> str:
    kind = "Merge conflict" if finding.kind == words.CONFLICT else "Overlapping edits"
    props = {"file": finding.path, "line": str(first_line(finding)),
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
            f"`orchestrate merge {report.spec}`.")


def _overlap_text(finding: Finding) -> str:
    state = "merged cleanly" if finding.merged else "not all merged"
    return (f"{finding.path} was changed by {', '.join(finding.subtasks)} in the same "
            f"parallel phase ({finding.detail}; {state}).")


def first_line(finding: Finding) -> int:
    """The first line the unmerged (or last) subtask changed, else any side's, else 1."""
    sides = sorted(finding.sides, key=lambda s: s.subtask_id != finding.subtask)
    for side in sides:
        if side.change and side.change.hunks:
            hunk = side.change.hunks[0]
            return max(1, hunk.new_start if hunk.new_lines else hunk.old_start)
    return 1


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
