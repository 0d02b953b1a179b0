"""What `validate`, `status` and `list` show: plain data in, text or JSON-ready dicts out."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator import names
from orchestrator.errors import OrchestrateError
from orchestrator.plan.declared import (
    PredictedOverlap,
    declared_files,
    overlap_groups,
    overlap_partners,
    wave_numbers,
    waves,
)
from orchestrator.plan.model import Phase, Plan, Status, Subtask, status_counts
from orchestrator.plan.sandbox_note import sandbox_text
from orchestrator.plan.specs import Spec

if TYPE_CHECKING:  # preflight runs git; status and validate import this module
    from orchestrator.build.preflight import Target
    from orchestrator.settings import Settings

Json = dict[str, Any]


def validate_line(spec: Spec, plan: Plan) -> str:
    subtasks = list(plan.subtasks())
    parallel = sum(1 for p in plan.phases if p.parallel_safe)
    return (f"{spec.name}: valid plan, {_count(len(plan.phases), 'phase')} ({parallel} "
            f"parallel), {_count(len(subtasks), 'subtask')}")


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def progress_line(plan: Plan, stale: Collection[str] = ()) -> str:
    counts = status_counts(plan, stale)
    total = sum(counts.values())
    shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())
                      if status != Status.COMPLETED)
    return f"{counts[Status.COMPLETED]}/{total} completed" + (f" ({shown})" if shown else "")


def subtask_status(subtask: Subtask, stale: Collection[str] = ()) -> Json:
    """A subtask's row; `stale` (SPEC 6) shows as its status, the plan's word beside it."""
    record = subtask.record
    status = "stale" if subtask.id in stale else subtask.status
    row: Json = {"id": subtask.id, "status": status,
                 **record.written("branch", "merge"),
                 "started_at": subtask.raw.get("started_at"),
                 "completed_at": subtask.raw.get("completed_at"),
                 **record.written("duration_s", "attempts", "error"),
                 **record.present("no_changes", "overlaps", "usage", "cost_usd", "check", "wave",
                                  "resolving", "resolutions", "egress_refused", "sandbox",
                                  "sandbox_reason")}
    if status == "stale":
        row.update(stale=True, plan_status=subtask.status)
    row.update(record.present("verification"))
    return row


def status_json(spec: Spec, plan: Plan, stale: Collection[str] = ()) -> Json:
    phases = [{"phase": p.key, "name": p.name, "parallel_safe": p.parallel_safe,
               "depends_on": [plan.phases[i].key for i in p.depends_on],
               "subtasks": [subtask_status(s, stale) for s in p.subtasks]} for p in plan.phases]
    return {"spec": spec.name, "plan": str(spec.plan_path),
            "integration_branch": plan.record.integration_branch,
            "base": plan.record.base, "updated_at": plan.record.updated_at,
            "summary": dict(status_counts(plan, stale)), "cost_usd": plan.record.cost_usd,
            "sandbox": plan.record.sandbox, "sandbox_text": sandbox_text(plan),
            "phases": phases}


def steps(plan: Plan) -> list[int]:
    """For each phase, the earliest step it can run in (1 + the latest step it depends on).
    (SPEC 11's waves are something else: groups of subtasks inside one parallel phase.)"""
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


def schedule_text(spec: Spec, plan: Plan, settings: Settings,
                  overlaps: Sequence[PredictedOverlap] = (), target: Target | None = None
                  ) -> str:
    """What `build --dry-run` prints: the integration branch and its base (branch and
    commit), steps of phases, a parallel phase's waves, their subtasks and branches, and the
    predicted overlaps."""
    step_of = steps(plan)
    lines = [f"{spec.name}: dry run, nothing will be created",
             f"integration branch: {names.integration_branch(spec.name)} "
             f"({_base_text(settings, target)})",
             *([target.note] if target and target.note else []),
             f"at most {settings.max_parallel} agents at once; schedule {settings.schedule}"]
    for step in sorted(set(step_of)):
        lines.append(f"\nstep {step}:")
        for phase in (p for p in plan.phases if step_of[p.index] == step):
            lines += _phase_schedule(spec, phase, settings.schedule)
    if overlaps:
        lines.append(f"\n{len(overlaps)} predicted overlap{'s' if len(overlaps) != 1 else ''}:")
        lines += ["  " + line for line in overlap_warnings(overlaps)]
    return "\n".join(lines)


def _base_text(settings: Settings, target: Target | None) -> str:
    if target is None:
        return f"from {settings.base or 'the checked-out branch'}"
    if target.exists:
        return f"exists, at {target.base[:12]}; the build continues it"
    named = target.start_name or target.base_branch or settings.base or "?"
    return f"would be created from {named} at {target.base[:12]}"


def _phase_schedule(spec: Spec, phase: Phase, schedule: str) -> list[str]:
    if not phase.parallel_safe:
        return [f"  {phase.label} [sequential]", *(
            _scheduled_subtask(spec, s, "    ") for s in phase.subtasks)]
    found = waves(phase.subtasks, schedule)
    lines = [f"  {phase.label} [parallel, {len(found)} wave{'s' if len(found) != 1 else ''}]"]
    for number, wave in enumerate(found, 1):
        lines.append(f"    wave {number}:")
        lines += [_scheduled_subtask(spec, s, "      ") for s in wave]
    return lines


def _scheduled_subtask(spec: Spec, subtask: Subtask, indent: str) -> str:
    return (f"{indent}{subtask.id:<24} {names.subtask_branch(spec.name, subtask.id)}  "
            f"{_action(subtask)}")


def _action(subtask: Subtask) -> str:
    return "skip (completed)" if subtask.status == Status.COMPLETED else subtask.status


def schedule_json(spec: Spec, plan: Plan, settings: Settings,
                  overlaps: Sequence[PredictedOverlap] = (), target: Target | None = None
                  ) -> Json:
    """`build --dry-run --json`: the same schedule as data."""
    step_of = steps(plan)
    phases = []
    for phase in plan.phases:
        wave_of = wave_numbers(phase, settings.schedule)
        phases.append({
            "phase": phase.key, "name": phase.name, "parallel_safe": phase.parallel_safe,
            "step": step_of[phase.index], "waves": max(wave_of.values(), default=0),
            "subtasks": [{"id": s.id, "branch": names.subtask_branch(spec.name, s.id),
                          "status": s.status, "action": _action(s), "wave": wave_of.get(s.id),
                          "declared": list(declared_files(s))} for s in phase.subtasks]})
    return {"spec": spec.name, "dry_run": True,
            "integration_branch": names.integration_branch(spec.name),
            "base": settings.base, "max_parallel": settings.max_parallel,
            "schedule": settings.schedule, "phases": phases,
            **overlaps_json(plan, overlaps),
            **({} if target is None else {
                "integration_branch_exists": target.exists, "base_commit": target.base,
                "base_branch": None if target.exists else (
                    target.start_name or target.base_branch)})}


def validate_json(spec: Spec, plan: Plan, overlaps: Sequence[PredictedOverlap]) -> Json:
    return {"spec": spec.name, "valid": True, "summary": validate_line(spec, plan),
            **overlaps_json(plan, overlaps), "warnings": description_warnings(plan)}


def overlaps_json(plan: Plan, overlaps: Sequence[PredictedOverlap]) -> Json:
    """The predicted overlaps grouped per declared path or glob, and the pairs themselves
    while they are no more than the plan's subtasks: linear in the plan's size."""
    shown = overlaps[:shown_pairs(plan)]
    return {"predicted_overlaps": [o.to_json() for o in shown],
            "predicted_overlaps_total": len(overlaps),
            "predicted_overlap_groups": [g.to_json() for g in overlap_groups(overlaps)]}


def shown_pairs(plan: Plan) -> int:
    """How many predicted overlaps are shown one by one: at most one per subtask."""
    return sum(1 for _ in plan.subtasks())


def invalid_json(spec: Spec, error: OrchestrateError) -> Json:
    """`validate --json` on a plan that is not valid: the problems, one a line."""
    lines = [line.strip().removeprefix("- ") for line in error.message.splitlines()]
    return {"spec": spec.name, "valid": False, "error": lines[0] if lines else "",
            "problems": [line for line in lines[1:] if line] or lines[:1], "hint": error.hint}


def description_warnings(plan: Plan) -> list[str]:
    """A subtask without a description gives its agent no task and its commit no subject."""
    return [f"warning: subtask {s.id} ({s.phase.label}) has no description: its agent gets "
            "no task beyond the id; add `description` to the plan" for s in plan.subtasks()
            if not s.description.strip()]


def overlap_warnings(overlaps: Sequence[PredictedOverlap]) -> list[str]:
    """A line per predicted overlap, or, when there are more overlaps than subtasks in them,
    a line per subtask naming the others (the report has every pair)."""
    partners = overlap_partners(overlaps)
    if len(overlaps) <= len(partners):
        return [f"warning: predicted overlap: {o.describe()}" for o in overlaps]
    lines = []
    for (phase, subtask), (others, mine) in partners.items():
        named = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3
                                         else "")
        declared = ", ".join(list(mine)[:3]) + (f" and {len(mine) - 3} more" if len(mine) > 3
                                                else "")
        lines.append(f"warning: predicted overlap: phase {phase}: {subtask} and "
                     f"{_count(len(others), 'other subtask')} ({named}) declare intersecting "
                     f"files ({declared})")
    return lines
