"""A run header in each subtask log, at the build's first write to it: logs are appended
across builds, and the header says which build (start time, pid, agent) the lines below
belong to. Attempt headers (runner._write_header) follow it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator.plan.store import utc_now


@dataclass
class RunLogs:
    started_at: str = field(default_factory=utc_now)
    pid: int = field(default_factory=os.getpid)
    headed: set[Path] = field(default_factory=set)

    async def start(self, path: Path, subtask_id: str, agent: str) -> None:
        """Write the run header to `path` unless this build already wrote to it."""
        if path in self.headed:
            return
        self.headed.add(path)
        async with await trio.open_file(path, "a", encoding="utf-8") as log:
            await log.write(self.header(subtask_id, agent))

    def header(self, subtask_id: str, agent: str) -> str:
        return (f"\n######## build of {subtask_id} started {self.started_at}, "
                f"pid {self.pid}, agent {agent} ########\n")
