"""Every status change of a run, each one locked read-modify-write of the plan (SPEC 6).

Each method runs its whole locked section in ONE worker thread (see store.py). A subtask's
plan is written a bounded number of times: start, each failed attempt, commit, merge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from merge.integrate import MergeResult
from orchestrator.plan import Plan, Subtask
from orchestrator.store import PlanStore, utc_now

T = TypeVar("T")
ERROR_LIMIT = 500
OPEN_FIELDS = ("head", "merge", "merge_commit", "error", "overlaps", "no_changes", "duration_s")


def short_error(text: str) -> str:
    text = text.strip()
    return text if len(text) <= ERROR_LIMIT else text[:ERROR_LIMIT] + " [...]"


@dataclass
class Records:
    store: PlanStore

    async def update(self, change: Callable[[Plan], T]) -> T:
        return await trio.to_thread.run_sync(self.store.update, change)

    async def read(self) -> Plan:
        return await trio.to_thread.run_sync(self.store.read)

    async def _each(self, ids: Iterable[str], change: Callable[[Subtask], None]) -> None:
        wanted = list(ids)

        def apply(plan: Plan) -> None:
            plan.write_meta(updated_at=utc_now())
            for subtask_id in wanted:
                change(plan.subtask(subtask_id))
        await self.update(apply)

    async def run_started(self, integration_branch: str, base: str) -> None:
        def apply(plan: Plan) -> None:
            plan.write_meta(integration_branch=integration_branch,
                            base=plan.meta.get("base") or base, updated_at=utc_now())
        await self.update(apply)

    async def started(self, subtask_id: str, *, branch: str, worktree: str, base: str) -> None:
        def change(subtask: Subtask) -> None:
            subtask.raw["status"] = "in_progress"
            subtask.raw["started_at"] = utc_now()
            subtask.raw.pop("completed_at", None)
            attempts = subtask.meta.get("attempts", 0)
            for name in OPEN_FIELDS:
                subtask.meta.pop(name, None)
            subtask.write_meta(branch=branch, worktree=worktree, base=base,
                               attempts=attempts if isinstance(attempts, int) else 0)
        await self._each([subtask_id], change)

    async def attempt_failed(self, subtask_id: str, error: str) -> None:
        await self._each([subtask_id], lambda s: _count_attempt(s, error))

    async def finished_agent(self, subtask_id: str, *, ok: bool, head: str | None,
                             error: str, duration_s: float, usage: dict[str, int]) -> None:
        def change(subtask: Subtask) -> None:
            fields: dict[str, Any] = {"duration_s": round(duration_s, 3)}
            if usage:
                fields["usage"] = _add_usage(subtask.meta.get("usage"), usage)
            if ok:
                _count_attempt(subtask, None)
                no_changes = head == subtask.meta.get("base")
                fields.update(head=head, merge="merged" if no_changes else "pending",
                              no_changes=no_changes)
                if no_changes:
                    _close(subtask, "completed")
            else:
                fields.update(error=short_error(error))
                _close(subtask, "failed")
            subtask.write_meta(**fields)
        await self._each([subtask_id], change)

    async def blocked(self, subtask_ids: Sequence[str], reason: str) -> None:
        def change(subtask: Subtask) -> None:
            subtask.raw["status"] = "blocked"
            subtask.write_meta(error=short_error(reason))
        await self._each(subtask_ids, change)

    async def merged(self, results: Sequence[MergeResult], heads: dict[str, str]) -> None:
        by_id = {r.subtask_id: r for r in results}

        def change(subtask: Subtask) -> None:
            subtask.write_meta(head=heads[subtask.id])
            _record_merge(subtask, by_id[subtask.id])
        await self._each(by_id, change)

    async def set_status(self, subtask_ids: Sequence[str], status: str, **meta: Any) -> None:
        def change(subtask: Subtask) -> None:
            if status == "completed":
                _close(subtask, status)
            else:
                subtask.raw["status"] = status
            subtask.write_meta(**meta)
        await self._each(subtask_ids, change)

    async def recovered_commit(self, subtask_id: str, head: str) -> None:
        """The subtask's commit, made before a crash that lost its status write (adoption)."""
        def change(subtask: Subtask) -> None:
            _count_attempt(subtask, None)
            subtask.meta.pop("error", None)
            subtask.write_meta(head=head, merge="pending", no_changes=False, recovered=True)
        await self._each([subtask_id], change)


def _count_attempt(subtask: Subtask, error: str | None) -> None:
    attempts = subtask.meta.get("attempts")
    subtask.write_meta(attempts=(attempts if isinstance(attempts, int) else 0) + 1)
    if error is not None:
        subtask.write_meta(error=short_error(error))


def _close(subtask: Subtask, status: str) -> None:
    subtask.raw["status"] = status
    subtask.raw["completed_at"] = utc_now()


def _add_usage(old: object, new: dict[str, int]) -> dict[str, int]:
    total = dict(old) if isinstance(old, dict) else {}
    for key, value in new.items():
        total[key] = int(total.get(key, 0)) + value
    return total


def _conflict_error(result: MergeResult) -> str:
    if result.conflicts and all(c.kind == "overlap" for c in result.conflicts):
        return "not merged: " + "; ".join(result.messages)  # --overlap block
    return "merge conflict in " + (", ".join(result.conflicted_paths) or "unknown paths")


def _record_merge(subtask: Subtask, result: MergeResult) -> None:
    overlaps = list(result.overlaps)
    if result.outcome == "conflict":
        subtask.write_meta(merge="conflict", overlaps=overlaps,
                           error=short_error(_conflict_error(result)))
        _close(subtask, "conflict")
        return
    subtask.write_meta(merge="merged", merge_commit=result.merge_commit, overlaps=overlaps)
    subtask.meta.pop("error", None)
    _close(subtask, "completed")
