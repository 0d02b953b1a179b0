"""The subtasks of a wave start in plan order: each takes its place in the queue for a worktree
(the lookahead) only after the subtask before it has taken its place there, and asks for an
agent slot (the CapacityLimiter) only after the subtask before it has started its agent.
trio's Semaphore wakes waiters first come first served, and nothing yields between "my turn is
passed on" and "I am queued", so that queue holds the wave in plan order. Worktrees are still
prepared side by side."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import trio


class Queue(IntEnum):
    WORKTREE = 0
    AGENT = 1


class PlanOrder:
    def __init__(self, subtask_ids: Sequence[str]) -> None:
        self.before = dict(zip(subtask_ids[1:], subtask_ids, strict=False))
        self.queued = {sid: (trio.Event(), trio.Event()) for sid in subtask_ids}

    async def my_turn(self, subtask_id: str, queue: Queue) -> None:
        """Wait until the subtask before this one is queued (for WORKTREE; the caller queues
        right after `queued_in` without an await in between) or has started (AGENT)."""
        if (previous := self.before.get(subtask_id)) is not None:
            await self.queued[previous][queue].wait()

    def queued_in(self, subtask_id: str, queue: Queue) -> None:
        if subtask_id in self.queued:
            self.queued[subtask_id][queue].set()

    def gone(self, subtask_id: str) -> None:
        """The subtask leaves the wave (done, failed, out of budget): nobody waits for it."""
        for queue in Queue:
            self.queued_in(subtask_id, queue)


ANY_ORDER = PlanOrder(())  # a subtask alone (a sequential phase) waits for nobody
