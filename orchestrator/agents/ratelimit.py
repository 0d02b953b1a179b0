"""How many Messages API requests the build keeps in flight (SPEC 12), across all claude agents:
additive increase, multiplicative decrease. A 429 (rate limited) or 529 (overloaded) answer
halves the limit (never below 1); every 20 successful calls in a row raise it by one, up to
where it started (--max-parallel: more agents than that never run at once anyway).

Every HTTP response the client receives is counted, also the ones the SDK retries by itself
(claude.max_retries): the client's response hook calls `observe`. A turn waits for a free
request slot before it sends; the SDK's own retries of that request go out in the same slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

SLOWDOWN_STATUSES = frozenset({429, 529})
GROW_AFTER = 20

LimitChanged = Callable[[int, str], None]  # (the new limit, why)


class RequestLimit:
    def __init__(self, start: int, on_change: LimitChanged | None = None) -> None:
        self.ceiling = self.limit = max(1, start)
        self.in_flight = 0
        self.successes = 0
        self.on_change = on_change
        self._changed = trio.Event()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `limit` request slots (waiting for one) while the block runs."""
        while self.in_flight >= self.limit:
            await self._changed.wait()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._wake()

    def observe(self, status: int) -> None:
        """One HTTP response of the Messages API."""
        if status in SLOWDOWN_STATUSES:
            self.successes = 0
            self._set(max(1, self.limit // 2), f"the Messages API answered {status}")
        elif 200 <= status < 300:
            self.successes += 1
            if self.successes >= GROW_AFTER and self.limit < self.ceiling:
                self.successes = 0
                self._set(self.limit + 1, f"{GROW_AFTER} successful calls")

    def _set(self, limit: int, why: str) -> None:
        if limit == self.limit:
            return
        self.limit = limit
        self._wake()
        if self.on_change is not None:
            self.on_change(limit, why)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
