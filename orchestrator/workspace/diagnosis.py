"""What a failed subtask's line carries, so the failure explains itself: the last lines of the
agent's or verification's output, the log, and the worktree that keeps the attempt's edits."""

from __future__ import annotations

from pathlib import Path

TAIL_LINES = 5
LINE_LIMIT = 200


def failure_detail(tail: str, log: Path, worktree: Path) -> list[str]:
    lines = [line.rstrip()[:LINE_LIMIT] for line in tail.splitlines() if line.strip()]
    detail = [f"| {line}" for line in lines[-TAIL_LINES:]]
    if log.exists():
        detail.append(f"log: {log}")
    if worktree.is_dir():
        detail.append(f"worktree: {worktree} (the last attempt's edits are there)")
    return detail
