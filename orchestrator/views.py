"""What `validate`, `status` and `list` show: plain data in, text or JSON-ready dicts out."""

from __future__ import annotations

from collections import Counter
from typing import Any

from orchestrator.plan import Plan, Subtask
from orchestrator.settings import Settings
from orchestrator.specs import Spec

Json = dict[str, Any]


def validate_line(spec: Spec, plan: Plan) -> str:
    subtasks = list(plan.subtasks())
    parallel = sum(1 for p in plan.phases if p.parallel_safe)
    return (f"{spec.name}: valid plan, {len(plan.phases)} phases ({parallel} parallel), "
            f"{len(subtasks)} subtasks")


def progress_counts(plan: Plan) -> Counter[str]:
    return Counter(s.status for s in plan.subtasks())


def progress_line(plan: Plan) -> str:
    counts = progress_counts(plan)
    total = sum(counts.values())
    shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())
                      if status != "completed")
    return f"{counts['completed']}/{total} completed" + (f" ({shown})" if shown else "")


def subtask_status(subtask: Subtask) -> Json:
    meta = subtask.meta
    row: Json = {"id": subtask.id, "status": subtask.status, "branch": meta.get("branch"),
                 "merge": meta.get("merge"), "started_at": subtask.raw.get("started_at"),
                 "completed_at": subtask.raw.get("completed_at"),
                 "duration_s": meta.get("duration_s"), "attempts": meta.get("attempts"),
                 "error": meta.get("error")}
    for extra in ("no_changes", "overlaps", "usage", "resolving", "resolutions"):
        if meta.get(extra):
            row[extra] = meta[extra]
    return row


def status_json(spec: Spec, plan: Plan) -> Json:
    phases = [{"phase": p.key, "name": p.name, "parallel_safe": p.parallel_safe,
               "depends_on": [plan.phases[i].key for i in p.depends_on],
               "subtasks": [subtask_status(s) for s in p.subtasks]} for p in plan.phases]
    return {"spec": spec.name, "plan": str(spec.plan_path),
            "integration_branch": plan.meta.get("integration_branch"),
            "base": plan.meta.get("base"), "updated_at": plan.meta.get("updated_at"),
            "summary": dict(progress_counts(plan)), "phases": phases}


def status_text(spec: Spec, plan: Plan) -> str:
    lines = [f"{spec.name}: {progress_line(plan)}"]
    if plan.meta.get("integration_branch"):
        lines.append(f"integration branch: {plan.meta['integration_branch']}")
    for phase in plan.phases:
        deps = ", ".join(plan.phases[i].key for i in phase.depends_on) or "none"
        mode = "parallel" if phase.parallel_safe else "sequential"
        lines.append(f"\n{phase.label}  [{mode}; depends on: {deps}]")
        lines += [_subtask_line(s) for s in phase.subtasks]
    return "\n".join(lines)


def _subtask_line(subtask: Subtask) -> str:
    row = subtask_status(subtask)
    parts = [f"  {row['id']:<24} {row['status']:<12}"]
    if row["branch"]:
        parts.append(f"{row['branch']}")
    if row["merge"]:
        parts.append(f"merge={row['merge']}")
    if row.get("resolving"):
        parts.append(f"resolving (round {row['resolving']})")
    elif row.get("resolutions"):
        parts.append(f"resolutions={row['resolutions']}")
    if isinstance(row["duration_s"], int | float):
        parts.append(f"{row['duration_s']:.1f}s")
    if row.get("no_changes"):
        parts.append("(no changes)")
    if row["error"] and subtask.status != "completed":
        parts.append(f"error: {str(row['error']).splitlines()[0][:100]}")
    return " ".join(parts)


def waves(plan: Plan) -> list[int]:
    """For each phase, the earliest wave it can run in (1 + the latest wave it depends on)."""
    result = [0] * len(plan.phases)
    for index in _topological(plan):
        deps = plan.phases[index].depends_on
        result[index] = 1 + max((result[d] for d in deps), default=0)
    return result


def _topological(plan: Plan) -> list[int]:
    order: list[int] = []
    seen: set[int] = set()

    def visit(index: int) -> None:
        if index in seen:
            return
        seen.add(index)
        for dep in plan.phases[index].depends_on:
            visit(dep)
        order.append(index)

    for index in range(len(plan.phases)):
        visit(index)
    return order


def schedule_text(spec: Spec, plan: Plan, settings: Settings) -> str:
    """What `build --dry-run` prints: waves of phases, their subtasks and branches."""
    wave_of = waves(plan)
    lines = [f"{spec.name}: dry run, nothing will be created",
             f"integration branch: orchestrate/{spec.name}/integration "
             f"(from {settings.base or 'the checked-out branch'})",
             f"at most {settings.max_parallel} agents at once"]
    for wave in sorted(set(wave_of)):
        lines.append(f"\nwave {wave}:")
        for phase in (p for p in plan.phases if wave_of[p.index] == wave):
            mode = "parallel" if phase.parallel_safe else "sequential"
            lines.append(f"  {phase.label} [{mode}]")
            for subtask in phase.subtasks:
                action = "skip (completed)" if subtask.status == "completed" else subtask.status
                lines.append(f"    {subtask.id:<24} orchestrate/{spec.name}/{subtask.id}  "
                             f"{action}")
    return "\n".join(lines)
