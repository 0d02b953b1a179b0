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
from orchestrator.plan.specs import Spec

ReportFormat = Literal["md", "json", "github"]
REPORT_MD = names.REPORT_MD
REPORT_JSON = names.REPORT_JSON
PLACES = Places(worktree_root=names.WORKTREE_ROOT, scratch_dir=names.PRIVATE_DIR)


def integration_branch(spec: Spec, plan: Plan) -> str:
    return _text(plan.meta.get("integration_branch")) or names.integration_branch(spec.name)


def report_rows(plan: Plan) -> list[SubtaskRow]:
    """One row per subtask, in plan order, from its `orchestrate` record."""
    return [_row(subtask) for subtask in plan.subtasks()]


def _row(subtask: Subtask) -> SubtaskRow:
    meta, record, phase = subtask.meta, subtask.record, subtask.phase
    return SubtaskRow(id=subtask.id, phase=phase.key, status=subtask.status,
                      group=phase.key if phase.parallel_safe else None,
                      branch=record.branch, base=record.base,
                      head=record.head, merge=record.merge,
                      merge_commit=_text(meta.get("merge_commit")),
                      no_changes=meta.get("no_changes") is True,
                      check=meta["check"] if isinstance(meta.get("check"), dict) else None,
                      declared=declared_files(subtask),
                      resolution=_resolution(subtask.id, meta.get("resolution")),
                      resolved_by_hand=_hand_resolution(meta.get("resolved_by_hand")))


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
    cost = plan.meta.get("cost_usd")
    return build_report(spec.repo, spec=spec.name, integration_branch=integration_branch(
        spec, plan), base=_text(plan.meta.get("base")), rows=report_rows(plan),
        generated_at=now, check=check_summary(plan),
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None)


def check_summary(plan: Plan) -> dict[str, Any] | None:
    """The check's command, runs and flaky passes (SPEC 9), when a check judged this plan."""
    meta = plan.meta
    command = _text(meta.get("check_command"))
    if command is None:
        return None
    checks = meta.get("checks")
    flaky = meta.get("check_flaky")
    return {"command": command, "runs": meta.get("check_runs") or 0,
            "judged": len(checks) if isinstance(checks, dict) else 0,
            "flaky": list(flaky) if isinstance(flaky, list) else []}


def render(report: ConflictReport, fmt: ReportFormat) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "github":
        return render_github(report)
    return render_markdown(report, PLACES)


def render_report(spec: Spec, plan: Plan, fmt: ReportFormat, *, now: str | None = None) -> str:
    return render(conflict_report(spec, plan, now=now), fmt)


def write_conflict_report(spec: Spec, plan: Plan, *, now: str | None = None
                          ) -> ConflictReport:
    """Write <spec>/conflict_report.md and .json for the plan's current state."""
    report = conflict_report(spec, plan, now=now)
    _write_atomic(spec.folder / REPORT_JSON, render(report, "json"))
    _write_atomic(spec.folder / REPORT_MD, render(report, "md"))
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
