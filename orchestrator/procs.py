"""Child processes in their own process group: kept for the modules that import them from here;
the door is orchestrator/processes.py."""

from __future__ import annotations

from orchestrator.processes import (
    DRAIN_S,
    GRACE_S,
    LOG_HEAD_BYTES,
    LOG_TAIL_BYTES,
    CappedLog,
    kill_group,
    run_in_group,
)

__all__ = ["DRAIN_S", "GRACE_S", "LOG_HEAD_BYTES", "LOG_TAIL_BYTES", "CappedLog", "kill_group",
           "run_in_group"]
