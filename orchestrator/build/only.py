"""`build --only ID[,ID...]`: just those subtasks run (a failed or conflict one too, as it was
named), and only once every subtask of the phases they depend on is completed. Everything else
is left as it is: no other subtask starts, is merged or becomes blocked."""

from __future__ import annotations

from collections.abc import Collection

from orchestrator.errors import UsageError
from orchestrator.plan.model import Phase, Plan, Status, Subtask


def check_only(spec: str, plan: Plan, only: Collection[str]) -> None:
    """Refuse (exit 2, before anything is created) unknown ids and unfinished dependencies."""
    if not only:
        return
    known = [s.id for s in plan.subtasks()]
    if unknown := [sid for sid in only if sid not in known]:
        raise UsageError(f"option --only: no subtask {', '.join(map(repr, unknown))} in {spec}; "
                         f"its subtasks are {', '.join(known[:20])}"
                         f"{' …' if len(known) > 20 else ''}",
                         f"See `orchestrate status {spec}`.")
    waiting = {d.id: d.status for s in plan.subtasks() if s.id in only
               for d in unfinished_dependencies(plan, s.phase)}
    if waiting:
        named = ", ".join(f"{sid} ({status})" for sid, status in list(waiting.items())[:10])
        raise UsageError(f"option --only: {', '.join(only)} depend(s) on subtasks that are not "
                         f"completed: {named}",
                         f"Run those first (`orchestrate build {spec} --only "
                         f"{','.join(list(waiting)[:10])}`) or build the whole plan.")


def unfinished_dependencies(plan: Plan, phase: Phase) -> list[Subtask]:
    return [s for dep in phase.depends_on for s in plan.phases[dep].subtasks
            if s.status != Status.COMPLETED]


def selected(only: Collection[str], subtask: Subtask) -> bool:
    """Whether the build may touch `subtask` (every one without --only)."""
    return not only or subtask.id in only
