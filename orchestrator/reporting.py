"""Glue between the plan and merge/report.py: conflict reports written after every merge stage."""

from __future__ import annotations

from orchestrator.plan import Plan
from orchestrator.specs import Spec


def write_conflict_report(spec: Spec, plan: Plan) -> None:
    """Write <spec>/conflict_report.md and .json for the plan's current state (placeholder)."""
