"""The sandbox of a build in one line, for `status`, the end-of-run summary and the report:
the build's mode, and the subtasks whose attempts ran in another one (with `--runner ray`,
`auto` decides on each worker, so a worker without a working bwrap runs its attempts without
one): `bwrap (s03, s07 ran without a sandbox: `bwrap` is not on PATH on node 1f2e… (host))`."""

from __future__ import annotations

from orchestrator.plan.model import Plan


def other_sandbox(plan: Plan) -> dict[str, tuple[str, str]]:
    """Subtask id -> (mode, reason) for each subtask whose last attempt ran in a sandbox other
    than the build's, in plan order."""
    mode = plan.record.sandbox
    return {s.id: (ran, s.record.sandbox_reason or "") for s in plan.subtasks()
            if mode and (ran := s.record.sandbox) and ran != mode}


def sandbox_text(plan: Plan) -> str | None:
    """`bwrap`, `none`, or the mode and which subtasks ran otherwise and why; None before any
    build recorded its sandbox."""
    mode = plan.record.sandbox
    if not mode:
        return None
    groups: dict[tuple[str, str], list[str]] = {}
    for subtask_id, (ran, reason) in other_sandbox(plan).items():
        groups.setdefault((ran, reason), []).append(subtask_id)
    notes = [f"{', '.join(ids)} {_ran(ran)}" + (f": {reason}" if reason else "")
             for (ran, reason), ids in groups.items()]
    return mode + (f" ({'; '.join(notes)})" if notes else "")


def _ran(mode: str) -> str:
    return "ran without a sandbox" if mode == "none" else f"ran in a {mode} sandbox"


def without_sandbox(plan: Plan) -> dict[str, str]:
    """Subtask id -> why, for each subtask that ran without a sandbox in a build that had one."""
    return {sid: reason for sid, (ran, reason) in other_sandbox(plan).items() if ran == "none"}
