"""Glue between the plan and merge/report.py: conflict reports written after every merge stage
and printed by `orchestrate report`. Everything is rebuilt from the plan and git each time."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from merge import (
    ConflictReport,
    HandResolution,
    Places,
    Resolution,
    SubtaskRow,
    build_report,
    render_github,
    render_markdown,
    words,
)
from orchestrator import names
from orchestrator.plan.declared import declared_files
from orchestrator.plan.model import Plan, Subtask
from orchestrator.plan.sandbox_note import sandbox_text, without_sandbox
from orchestrator.plan.specs import Spec
from orchestrator.stage.radar_report import radar_markdown, radar_outcomes

ReportFormat = Literal["md", "json", "github"]
REPORT_MD = names.REPORT_MD
REPORT_JSON = names.REPORT_JSON
PLACES = Places(worktree_root=names.WORKTREE_ROOT, scratch_dir=names.PRIVATE_DIR)


def integration_branch(spec: Spec, plan: Plan) -> str:
    return _text(plan.record.integration_branch) or names.integration_branch(spec.name)


def report_rows(plan: Plan) -> list[SubtaskRow]:
    """One row per subtask, in plan order, from its `orchestrate` record."""
    return [_row(subtask) for subtask in plan.subtasks()]


def _row(subtask: Subtask) -> SubtaskRow:
    record, phase = subtask.record, subtask.phase
    return SubtaskRow(id=subtask.id, phase=phase.key, status=subtask.status,
                      group=phase.key if phase.parallel_safe else None,
                      branch=record.branch, base=record.base,
                      head=record.head, merge=record.merge,
                      merge_commit=record.merge_commit, no_changes=record.no_changes,
                      check=record.check, declared=declared_files(subtask),
                      resolution=_resolution(subtask.id, record.resolution),
                      resolved_by_hand=_hand_resolution(record.resolved_by_hand))


def _resolution(subtask_id: str, record: Any) -> Resolution | None:
    """The plan's `orchestrate.resolution` record (SPEC 10), if it is well formed."""
    if not isinstance(record, dict) or not isinstance(record.get("round"), int):
        return None
    kind = record.get("kind") if record.get("kind") in words.FINDING_KINDS else words.CONFLICT
    return Resolution(subtask_id, record["round"], str(kind),
                      _strings(record.get("paths")), _strings(record.get("subtasks")))


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _hand_resolution(record: Any) -> HandResolution | None:
    """The plan's `orchestrate.resolved_by_hand` record, if it is well formed."""
    if not isinstance(record, dict) or not _text(record.get("commit")):
        return None
    return HandResolution(str(record["commit"]), str(record.get("kind") or words.CONFLICT),
                          _strings(record.get("paths")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def conflict_report(spec: Spec, plan: Plan, *, now: str | None = None) -> ConflictReport:
    return build_report(spec.repo, spec=spec.name, integration_branch=integration_branch(
        spec, plan), base=plan.record.base, rows=report_rows(plan),
        generated_at=now, check=check_summary(plan), cost_usd=plan.record.cost_usd,
        sandbox=sandbox_summary(plan))


def sandbox_summary(plan: Plan) -> dict[str, Any] | None:
    """The last build's sandbox mode, the subtasks that ran without one (subtask -> why; with
    `--runner ray` a worker without a working bwrap), the same in words, and the egress its
    proxy refused, per subtask."""
    if plan.record.sandbox is None:
        return None
    refused = {s.id: s.record.egress_refused for s in plan.subtasks()
               if s.record.egress_refused}
    found: dict[str, Any] = {"mode": plan.record.sandbox, "egress_refused": refused}
    if without := without_sandbox(plan):
        found["without_sandbox"] = without
    if (text := sandbox_text(plan)) != plan.record.sandbox:
        found["text"] = text
    return found


def check_summary(plan: Plan) -> dict[str, Any] | None:
    """The check's command, runs (and those a sequential gate would have needed) and flaky
    passes (SPEC 9), when a check judged this plan."""
    record = plan.record
    if record.check_command is None:
        return None
    return {"command": record.check_command, "runs": record.check_runs,
            "sequential_runs": record.check_runs_sequential,
            "judged": len(record.checks), "flaky": record.check_flaky}


def render(report: ConflictReport, fmt: ReportFormat,
           radar: list[dict[str, Any]] | None = None) -> str:
    """The report in `fmt`; `radar`: the radar's predictions and their outcomes."""
    if fmt == "json":
        return json.dumps({**report.to_json(), "radar": radar or []}, indent=2,
                          ensure_ascii=False) + "\n"
    if fmt == "github":
        return render_github(report)
    markdown = render_markdown(report, PLACES)
    section = radar_markdown(radar or [])
    return markdown if section is None else f"{markdown}\n{section}\n"


def render_report(spec: Spec, plan: Plan, fmt: ReportFormat, *, now: str | None = None) -> str:
    return render(conflict_report(spec, plan, now=now), fmt, radar_outcomes(plan))


def write_conflict_report(spec: Spec, plan: Plan, *, now: str | None = None
                          ) -> ConflictReport:
    """Write <spec>/conflict_report.md and .json for the plan's current state."""
    report = conflict_report(spec, plan, now=now)
    radar = radar_outcomes(plan)
    _write_atomic(spec.folder / REPORT_JSON, render(report, "json", radar))
    _write_atomic(spec.folder / REPORT_MD, render(report, "md", radar))
    return report


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            os.fchmod(handle.fileno(), 0o644)  # mkstemp makes it private; a report is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
