"""--budget (SPEC 12): once the spec's recorded cost (the plan's top-level
`orchestrate.cost_usd`, all builds) reaches the budget, no new subtask, attempt or resolution
round starts; running ones finish.

Whoever is about to start paid work asks `ctx.budget.reached()` (or `ctx.budget_left()`)
first; whoever records a cost reports the new total with `ctx.budget.recorded(total)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.plan.model import Plan


def recorded_cost(plan: Plan) -> float:
    """The spec's recorded cost: the plan's top-level `orchestrate.cost_usd`."""
    total = plan.meta.get("cost_usd")
    return float(total) if isinstance(total, int | float) and not isinstance(total, bool) \
        else 0.0


@dataclass
class Budget:
    limit: float | None = None  # USD; None: no budget
    spent: float = 0.0  # the recorded total, kept current by Transitions.add_cost's callers

    def left(self) -> float | None:
        """USD left before the budget is reached; None when there is no budget."""
        return None if self.limit is None else max(self.limit - self.spent, 0.0)

    def reached(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def recorded(self, total: float) -> None:
        self.spent = max(self.spent, total)

    def spend(self, cost: float | None) -> None:
        """Count a cost at once that will be recorded a little later (a successful attempt's,
        written with its commit): the agent slot it frees must not start paid work first."""
        self.spent += cost or 0.0

    def message(self) -> str:
        return f"budget reached ({self.spent:.2f} of {self.limit or 0:.2f} USD)"
