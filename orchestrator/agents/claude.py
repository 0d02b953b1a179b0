"""Placeholder until the claude agent lands (see the claude-agent work)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from orchestrator.agents.base import Agent
from orchestrator.errors import UsageError
from orchestrator.settings import Settings


@asynccontextmanager
async def open_claude_agent(settings: Settings) -> AsyncIterator[Agent]:
    raise UsageError("the claude agent is not available in this version")
    yield  # pragma: no cover
