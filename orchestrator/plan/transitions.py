"""Every status change of a run, each one locked read-modify-write of the plan (SPEC 6).

Each method runs its whole locked section in ONE worker thread (see store.py). A subtask's
plan is written a bounded number of times: start, each failed attempt, commit, merge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from merge import MergeResult, words
from orchestrator.plan.budget import recorded_cost
from orchestrator.plan.model import MergeState, Plan, Status, Subtask
from orchestrator.plan.own_record import (
    believed_completions,
    record_completions,
    record_verdict,
    recorded_verdicts,
)
from orchestrator.plan.store import PlanStore, utc_now

T = TypeVar("T")
ERROR_LIMIT = 500
STALE_FIELDS = ("merge", "merge_commit", "no_changes", "overlaps")
OPEN_FIELDS = ("head", "merge", "merge_commit", "error", "overlaps", "no_changes", "duration_s",
               "check", "resolving", "resolutions", "resolution", "conflict_paths",
               "resolved_by_hand", "radar", "sandbox", "sandbox_reason")


def completed_ids(plan: Plan) -> set[str]:
    return {s.id for s in plan.subtasks() if s.status == Status.COMPLETED}


def short_error(text: str) -> str:
    text = text.strip()
    return text if len(text) <= ERROR_LIMIT else text[:ERROR_LIMIT] + " [...]"


@dataclass
class Transitions:
    store: PlanStore

    async def update(self, change: Callable[[Plan], T]) -> T:
        return await trio.to_thread.run_sync(self._update_noting_completions, change)

    def _update_noting_completions(self, change: Callable[[Plan], T]) -> T:
        """Every `completed` orchestrate writes also goes to its own record (own_record.py),
        so one an agent wrote into the plan is told apart from orchestrate's."""
        newly: set[str] = set()

        def noting(plan: Plan) -> T:
            before = completed_ids(plan)
            result = change(plan)
            newly.update(completed_ids(plan) - before)
            return result
        result = self.store.update(noting)
        if newly:
            record_completions(self.store.path.parent, newly)
        return result

    async def distrust_completions(self) -> list[str]:
        """Subtasks `completed` in the plan that orchestrate never made so (and did not find so
        when it first saw the spec) go back to pending: an agent may have written it. The ids."""
        folder = self.store.path.parent
        believed = await trio.to_thread.run_sync(believed_completions, folder)
        plan = await self._read()
        if believed is None:  # first sight: what is completed now is trusted (Auto-Claude)
            await trio.to_thread.run_sync(record_completions, folder, completed_ids(plan))
            return []
        doubted = sorted(completed_ids(plan) - believed)
        if doubted:
            await self.set_status(doubted, Status.PENDING, error="marked completed outside "
                                  "orchestrate: not believed, run again")
        return doubted

    async def read(self) -> Plan:
        """The plan, after sending back to pending what an agent marked completed."""
        await self.distrust_completions()
        return await self._read()

    async def _read(self) -> Plan:
        return await trio.to_thread.run_sync(self.store.read)

    async def _each(self, ids: Iterable[str], change: Callable[[Subtask], None]) -> None:
        wanted = list(ids)

        def apply(plan: Plan) -> None:
            plan.write_meta(updated_at=utc_now())
            for subtask_id in wanted:
                change(plan.subtask(subtask_id))
        await self.update(apply)

    async def run_started(self, integration_branch: str, base: str,
                          base_branch: str | None = None, *, overlap: str,
                          sandbox: str = "none") -> None:
        def apply(plan: Plan) -> None:
            plan.write_meta(integration_branch=integration_branch,
                            base=plan.meta.get("base") or base, overlap=overlap,
                            sandbox=sandbox, updated_at=utc_now())
            if base_branch and not plan.meta.get("base_branch"):
                plan.write_meta(base_branch=base_branch)
        await self.update(apply)

    async def started(self, subtask_id: str, *, branch: str, worktree: str, base: str) -> None:
        def change(subtask: Subtask) -> None:
            subtask.set_status(Status.IN_PROGRESS)
            subtask.raw["started_at"] = utc_now()
            subtask.raw.pop("completed_at", None)
            attempts = subtask.meta.get("attempts", 0)
            for name in OPEN_FIELDS:
                subtask.meta.pop(name, None)
            subtask.write_meta(branch=branch, worktree=worktree, base=base,
                               attempts=attempts if isinstance(attempts, int) else 0)
        await self._each([subtask_id], change)

    async def attempt_failed(self, subtask_id: str, error: str, *,
                             usage: dict[str, int] | None = None,
                             cost_usd: float | None = None) -> float:
        """Record a failed attempt and what it spent; return the spec's total cost."""
        def apply(plan: Plan) -> float:
            plan.write_meta(updated_at=utc_now())
            subtask = plan.subtask(subtask_id)
            _count_attempt(subtask, error)
            return _spend(plan, subtask, usage or {}, cost_usd)
        return await self.update(apply)

    async def add_cost(self, subtask_id: str, *, usage: dict[str, int],
                       cost_usd: float | None) -> float:
        """Add what some paid work for the subtask spent (e.g. a resolution round) to its
        and the spec's records; return the spec's total cost (for ctx.budget.recorded)."""
        def apply(plan: Plan) -> float:
            plan.write_meta(updated_at=utc_now())
            return _spend(plan, plan.subtask(subtask_id), usage, cost_usd)
        return await self.update(apply)

    async def finished_agent(self, subtask_id: str, *, ok: bool, head: str | None,
                             error: str, duration_s: float, usage: dict[str, int],
                             verification: str | None = None,
                             cost_usd: float | None = None, egress_refused: int = 0,
                             sandbox: str | None = None, sandbox_reason: str = "") -> float:
        """Record how the subtask's agent ended (and the sandbox its last attempt ran in);
        return the spec's total cost."""
        def change(subtask: Subtask) -> None:
            fields: dict[str, Any] = {"duration_s": round(duration_s, 3)}
            if sandbox is not None:
                fields["sandbox"] = sandbox
                if sandbox_reason:
                    fields["sandbox_reason"] = short_error(sandbox_reason)
            if egress_refused:
                fields["egress_refused"] = egress_refused
            if verification:
                fields["verification"] = verification
            if ok:
                _count_attempt(subtask, None)
                no_changes = head == subtask.meta.get("base")
                merge = MergeState.MERGED if no_changes else MergeState.PENDING
                fields.update(head=head, merge=merge, no_changes=no_changes)
                if no_changes:
                    _close(subtask, Status.COMPLETED)
            else:
                fields.update(error=short_error(error))
                _close(subtask, Status.FAILED)
            subtask.write_meta(**fields)

        def apply(plan: Plan) -> float:
            plan.write_meta(updated_at=utc_now())
            subtask = plan.subtask(subtask_id)
            change(subtask)
            return _spend(plan, subtask, usage, cost_usd)
        return await self.update(apply)

    async def budget_stopped(self, subtask_ids: Sequence[str], message: str, *,
                             usage: dict[str, int] | None = None,
                             cost_usd: float | None = None) -> float:
        """Subtasks the budget kept from starting (or from another attempt) stay pending."""
        def apply(plan: Plan) -> float:
            plan.write_meta(updated_at=utc_now())
            for subtask_id in subtask_ids:
                subtask = plan.subtask(subtask_id)
                subtask.set_status(Status.PENDING)
                subtask.write_meta(error=short_error(message))
            total = recorded_cost(plan)
            if subtask_ids and (usage or cost_usd is not None):
                total = _spend(plan, plan.subtask(subtask_ids[0]), usage or {}, cost_usd)
            return total
        return await self.update(apply)

    async def blocked(self, subtask_ids: Sequence[str], reason: str) -> None:
        def change(subtask: Subtask) -> None:
            subtask.set_status(Status.BLOCKED)
            subtask.write_meta(error=short_error(reason))
        await self._each(subtask_ids, change)

    async def merged(self, results: Sequence[MergeResult], heads: dict[str, str],
                     check_failures: dict[str, dict[str, Any]] | None = None,
                     gate: tuple[int, int] | None = None) -> None:
        """Record a merge stage's results; `check_failures` (subtask id -> its
        `orchestrate.check` record) names the branches the check ejected (SPEC 9); `gate`,
        (culprits, branches judged) by the check, adds to the spec's culprit rate and to
        the runs a sequential gate would have needed (one per branch judged)."""
        by_id = {r.subtask_id: r for r in results}
        ejected = check_failures or {}

        def change(subtask: Subtask) -> None:
            if subtask.id not in ejected:
                _note_hand_resolution(subtask, by_id[subtask.id], heads[subtask.id])
            subtask.write_meta(head=heads[subtask.id])
            if subtask.id in ejected:
                _record_check_failure(subtask, ejected[subtask.id])
            else:
                subtask.meta.pop("check", None)
                _record_merge(subtask, by_id[subtask.id])

        def apply(plan: Plan) -> None:  # one write: a crash counts a stage once or not at all
            plan.write_meta(updated_at=utc_now())
            for subtask_id in by_id:
                change(plan.subtask(subtask_id))
            if gate is not None:
                _count_gate(*gate, plan)
        await self.update(apply)

    async def gate_history(self) -> tuple[int, int]:
        """(culprits, branches judged) by the check in the spec's merge stages so far."""
        return (await self.read()).record.gate_rate

    async def radar_predicted(self, subtasks: tuple[str, str], path: str,
                              overlapping: bool) -> None:
        """The radar saw both subtasks change `path`: each one's `orchestrate.radar` gets
        {with, path, overlapping} (one entry per other subtask and path)."""
        first, second = subtasks

        def note(subtask: Subtask, other: str) -> None:
            kept = [entry for entry in subtask.record.radar
                    if (entry.with_, entry.path) != (other, path)]
            subtask.write_meta(radar=[*(e.to_json() for e in kept),
                                      {"with": other, "path": path,
                                       "overlapping": overlapping}])

        def apply(plan: Plan) -> None:
            plan.write_meta(updated_at=utc_now())
            note(plan.subtask(first), second)
            note(plan.subtask(second), first)
        await self.update(apply)

    async def check_judged(self, command: str, tree: str, verdict: str,
                           detail: dict[str, Any] | None = None,
                           flaky: dict[str, Any] | None = None, *, runs: int = 1,
                           sequential: int = 0) -> None:
        """Cache the check's verdict on `tree` in the plan's `orchestrate.checks` (emptied
        when the check command changed), with the failing run's `detail`, any flaky run, the
        number of check runs it took added to `orchestrate.check_runs` and `sequential` (the
        runs a sequential gate needed for it) to `orchestrate.check_runs_sequential`."""
        def apply(plan: Plan) -> None:
            meta = plan.meta
            same = meta.get("check_command") == command
            checks = dict(meta.get("checks") or {}) if same else {}
            details = dict(meta.get("check_details") or {}) if same else {}
            flakies = list(meta.get("check_flaky") or []) if same else []
            checks[tree] = verdict
            if detail is not None:
                details[tree] = detail
            if flaky is not None:
                flakies.append(flaky)
            plan.write_meta(check_command=command, checks=checks, check_details=details,
                            check_flaky=flakies, updated_at=utc_now(),
                            check_runs=_count(meta, "check_runs", same) + runs,
                            check_runs_sequential=_count(meta, "check_runs_sequential", same)
                            + sequential)
        await self.update(apply)
        await trio.to_thread.run_sync(record_verdict, self.store.path.parent, command, tree,
                                      verdict)

    async def believed_verdicts(self, command: str) -> dict[str, str]:
        """The cached verdicts orchestrate itself reached: one only in the plan (an agent may
        have written it) does not count."""
        return await trio.to_thread.run_sync(recorded_verdicts, self.store.path.parent, command)

    async def set_status(self, subtask_ids: Sequence[str], status: Status, **meta: Any) -> None:
        def change(subtask: Subtask) -> None:
            if status == Status.COMPLETED:
                _close(subtask, status)
            else:
                subtask.set_status(status)
            subtask.write_meta(**meta)
        await self._each(subtask_ids, change)

    async def recovered_commit(self, subtask_id: str, head: str) -> None:
        """The subtask's commit, made before a crash that lost its status write (adoption)."""
        def change(subtask: Subtask) -> None:
            _count_attempt(subtask, None)
            subtask.meta.pop("error", None)
            subtask.write_meta(head=head, merge=MergeState.PENDING, no_changes=False,
                               recovered=True)
        await self._each([subtask_id], change)

    async def resolution_started(self, subtask_id: str, round_: int, worktree: str) -> None:
        """SPEC 10: `conflict` -> `in_progress` with `orchestrate.resolving` = the round."""
        def change(subtask: Subtask) -> None:
            subtask.set_status(Status.IN_PROGRESS)
            subtask.write_meta(resolving=round_, resolutions=resolutions_of(subtask),
                               worktree=worktree)
        await self._each([subtask_id], change)

    async def resolution_failed(self, subtask_id: str, round_: int, error: str,
                                usage: dict[str, int]) -> None:
        def change(subtask: Subtask) -> None:
            _end_round(subtask, round_, usage)
            subtask.write_meta(error=_round_error(subtask, error))
            _close(subtask, Status.CONFLICT)
        await self._each([subtask_id], change)

    async def resolution_committed(self, subtask_id: str, round_: int, head: str,
                                   usage: dict[str, int], resolution: dict[str, Any],
                                   base: str | None = None) -> None:
        """The round's merge commit is on the branch: committed work waiting to be merged.
        `base` becomes the integration commit merged in: what the branch adds to it is the
        subtask's own work (its overlaps, its diffstat), not the others' work it merged."""
        def change(subtask: Subtask) -> None:
            _end_round(subtask, round_, usage)
            subtask.set_status(Status.IN_PROGRESS)
            subtask.write_meta(head=head, merge=MergeState.PENDING, resolution=resolution)
            if base:
                subtask.write_meta(base=base)
        await self._each([subtask_id], change)

    async def rounds_interrupted(self, subtask_ids: Sequence[str]) -> None:
        """Rounds cut short (Ctrl-C, a killed build) go back to `conflict`, not counted."""
        def change(subtask: Subtask) -> None:
            round_ = subtask.meta.pop("resolving", None)
            subtask.write_meta(error=_round_error(
                subtask, f"resolution round {round_} was interrupted"))
            subtask.set_status(Status.CONFLICT)
        await self._each(subtask_ids, change)


def resolutions_of(subtask: Subtask) -> int:
    """How many resolution rounds the subtask has had (`orchestrate.resolutions`)."""
    count = subtask.meta.get("resolutions")
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def _round_error(subtask: Subtask, what: str) -> str:
    """What went wrong in the round, then why the merge stage did not merge the branch."""
    earlier = str(subtask.meta.get("error") or "")
    if earlier.startswith("resolution round"):
        earlier = earlier.partition(" -- ")[2]
    return short_error(f"{what} -- {earlier}" if earlier else what)


def _end_round(subtask: Subtask, round_: int, usage: dict[str, int]) -> None:
    subtask.meta.pop("resolving", None)
    subtask.write_meta(resolutions=max(round_, resolutions_of(subtask)))
    if usage:
        subtask.write_meta(usage=_add_usage(subtask.meta.get("usage"), usage))


RESET_FIELDS = (*OPEN_FIELDS, "branch", "worktree", "base", "verification", "wave",
                "recovered")


def reset_to_pending(plan: Plan, subtask_id: str, kept_as: str | None) -> None:
    """`orchestrate reset`: the subtask back to `pending`, its work forgotten (tokens and cost
    it spent stay counted); `kept_as` names the branch its old work was kept on."""
    subtask = plan.subtask(subtask_id)
    subtask.set_status(Status.PENDING)
    for key in ("started_at", "completed_at"):
        subtask.raw.pop(key, None)
    for key in RESET_FIELDS:
        subtask.meta.pop(key, None)
    resets = subtask.meta.get("resets")
    subtask.write_meta(resets=(resets if isinstance(resets, int) else 0) + 1,
                       previous_branch=kept_as)


def _count_attempt(subtask: Subtask, error: str | None) -> None:
    attempts = subtask.meta.get("attempts")
    subtask.write_meta(attempts=(attempts if isinstance(attempts, int) else 0) + 1)
    if error is not None:
        subtask.write_meta(error=short_error(error))


def _close(subtask: Subtask, status: Status) -> None:
    subtask.set_status(status)
    subtask.raw["completed_at"] = utc_now()


def _spend(plan: Plan, subtask: Subtask, usage: dict[str, int], cost_usd: float | None) -> float:
    """Add tokens and cost to the subtask and the cost to the plan's total; return the total."""
    if usage:
        subtask.write_meta(usage=_add_usage(subtask.meta.get("usage"), usage))
    if cost_usd is None:
        return recorded_cost(plan)
    old = subtask.meta.get("cost_usd")
    mine = float(old) if isinstance(old, int | float) and not isinstance(old, bool) else 0.0
    subtask.write_meta(cost_usd=round(mine + cost_usd, 6))
    total = round(recorded_cost(plan) + cost_usd, 6)
    plan.write_meta(cost_usd=total)
    return total


def _add_usage(old: object, new: dict[str, int]) -> dict[str, int]:
    total = dict(old) if isinstance(old, dict) else {}
    for key, value in new.items():
        total[key] = int(total.get(key, 0)) + value
    return total


def _conflict_error(result: MergeResult) -> str:
    if result.conflicts and all(c.kind == "overlap" for c in result.conflicts):
        return "not merged: " + "; ".join(result.messages)  # --overlap block
    return "merge conflict in " + (", ".join(result.conflicted_paths) or "unknown paths")


def _record_check_failure(subtask: Subtask, check: dict[str, Any]) -> None:
    subtask.write_meta(merge="check_failed", check=check, error=short_error(
        f"the check `{check.get('command')}` failed (exit {check.get('exit_code')}) on "
        f"{str(check.get('commit'))[:12]}; log: {check.get('log')}"))
    _close(subtask, Status.CONFLICT)


def _note_hand_resolution(subtask: Subtask, result: MergeResult, head: str) -> None:
    """A `conflict` subtask whose branch tip moved (the user fixed it, e.g. with the report's
    recipe) and now merges: keep `orchestrate.resolved_by_hand`, so the report still says
    what conflicted and where it was resolved. (An agent's resolution, SPEC 10, is recorded
    apart, as `orchestrate.resolution` with its round.)"""
    meta = subtask.meta
    if (subtask.status != Status.CONFLICT or result.outcome == words.CONFLICT
            or not meta.get("head") or meta.get("head") == head):
        return
    kind = ("check" if meta.get("merge") == MergeState.CHECK_FAILED else "overlap"
            if str(meta.get("error") or "").startswith("not merged: ") else words.CONFLICT)
    paths = meta.get("conflict_paths")
    subtask.write_meta(resolved_by_hand={
        "commit": head, "previous_head": meta.get("head"), "kind": kind,
        "paths": list(paths) if isinstance(paths, list) else [], "at": utc_now()})


def _record_merge(subtask: Subtask, result: MergeResult) -> None:
    overlaps = list(result.overlaps)
    if result.outcome == words.CONFLICT:
        subtask.write_meta(merge=MergeState.CONFLICT, overlaps=overlaps,
                           conflict_paths=list(result.conflicted_paths) or overlaps,
                           error=short_error(_conflict_error(result)))
        _close(subtask, Status.CONFLICT)
        return
    subtask.write_meta(merge=MergeState.MERGED, merge_commit=result.merge_commit, overlaps=overlaps)
    subtask.meta.pop("error", None)
    subtask.meta.pop("conflict_paths", None)
    _close(subtask, Status.COMPLETED)


def mark_stale(stale: list[str], remerge: dict[str, str], branch: str, plan: Plan) -> None:
    """Completed subtasks whose work is not in the integration branch `branch`: those in
    `remerge` (subtask -> its branch tip) wait to be merged again, the others run again."""
    plan.write_meta(updated_at=utc_now())
    for subtask_id in stale:
        subtask = plan.subtask(subtask_id)
        if subtask.status != Status.COMPLETED:
            continue
        subtask.raw.pop("completed_at", None)
        for name in STALE_FIELDS:
            subtask.meta.pop(name, None)
        if subtask_id in remerge:
            subtask.set_status(Status.IN_PROGRESS)
            subtask.write_meta(head=remerge[subtask_id], merge=MergeState.PENDING,
                               error=f"stale: its work was not in {branch}")
        else:
            subtask.set_status(Status.PENDING)
            subtask.meta.pop("head", None)
            subtask.write_meta(error=f"stale: its work was not in {branch} and its branch "
                               "is gone")


def _count(meta: dict[str, Any], key: str, keep: bool) -> int:
    value = meta.get(key) if keep else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _count_gate(culprits: int, judged: int, plan: Plan) -> None:
    """The culprits and branches the check judged in one merge stage (SPEC 9)."""
    meta = plan.meta
    plan.write_meta(gate_culprits=_count(meta, "gate_culprits", True) + culprits,
                    gate_judged=_count(meta, "gate_judged", True) + judged,
                    check_runs_sequential=_count(meta, "check_runs_sequential", True) + judged)
