"""What tokens cost (SPEC 12): a price table per model for the claude agent, which config
`[prices.<model>]` overrides, and the arithmetic. Standard library only."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.agents.base import AgentResult
from orchestrator.settings import Price, Settings


def _rates(input_usd: float, output_usd: float) -> Price:
    """Anthropic's documented multipliers: cache reads 0.1x input, 5-minute cache writes 1.25x."""
    return Price(input=input_usd, output=output_usd, cache_read=round(input_usd * 0.1, 6),
                 cache_write=round(input_usd * 1.25, 6))


# USD per million tokens, from Anthropic's price list. A model is priced by the longest entry
# its name starts with, so dated snapshots (claude-sonnet-4-5-20250929) find their family; the
# family entries (claude-sonnet, ...) carry the price of that line's newest models.
PRICES: dict[str, Price] = {
    "claude-opus-4": _rates(15.0, 75.0),
    "claude-opus-4-1": _rates(15.0, 75.0),
    "claude-opus-4-5": _rates(5.0, 25.0),
    "claude-opus-4-6": _rates(5.0, 25.0),
    "claude-opus": _rates(5.0, 25.0),
    "claude-3-opus": _rates(15.0, 75.0),
    "claude-sonnet": _rates(3.0, 15.0),
    "claude-3-7-sonnet": _rates(3.0, 15.0),
    "claude-3-5-sonnet": _rates(3.0, 15.0),
    "claude-haiku-4-5": _rates(1.0, 5.0),
    "claude-haiku": _rates(1.0, 5.0),
    "claude-3-5-haiku": _rates(0.8, 4.0),
    "claude-3-haiku": _rates(0.25, 1.25),
}
TOKEN_RATES = (("input_tokens", "input"), ("output_tokens", "output"),
               ("cache_read_input_tokens", "cache_read"),
               ("cache_creation_input_tokens", "cache_write"))


def price_of(model: str, overrides: Mapping[str, Price]) -> Price | None:
    """The configured price of `model`, else the table's; None for a model nobody priced."""
    if model in overrides:
        return overrides[model]
    known = [name for name in PRICES if model == name or model.startswith(name + "-")]
    return PRICES[max(known, key=len)] if known else None


def cost_of(usage: Mapping[str, int], price: Price) -> float:
    rates = {"input": price.input, "output": price.output, "cache_read": price.cache_read,
             "cache_write": price.cache_write}
    return sum(usage.get(key, 0) * rates[rate] for key, rate in TOKEN_RATES) / 1e6


def claude_cost(settings: Settings, usage: Mapping[str, int]) -> float | None:
    """What the claude agent's tokens cost at its model's price; None when unpriced."""
    price = price_of(settings.model, settings.prices)
    return None if price is None or not usage else round(cost_of(usage, price), 6)


def attempt_cost(settings: Settings, result: AgentResult) -> float | None:
    """What an attempt cost: what the agent said (claude-code), else the claude agent's tokens
    at its model's price; None when nobody knows (a command agent that reports nothing)."""
    if result.cost_usd is not None:
        return result.cost_usd
    return claude_cost(settings, result.usage) if settings.agent == "claude" else None
