"""String-like values with their own names, so signatures say what they carry, and the status
words the plan holds."""

from enum import StrEnum
from typing import NewType

SubtaskId = NewType("SubtaskId", str)
BranchName = NewType("BranchName", str)
CommitSha = NewType("CommitSha", str)


class Status(StrEnum):
    """A subtask's `status` (SPEC 2). A StrEnum: it is written to the plan, compared, printed
    and formatted as the plain word."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    BLOCKED = "blocked"
    CONFLICT = "conflict"


class MergeState(StrEnum):
    """The `orchestrate.merge` field: where a subtask's committed work stands (SPEC 6)."""

    PENDING = "pending"  # committed, waiting to be integrated
    MERGED = "merged"
    CONFLICT = "conflict"
    CHECK_FAILED = "check_failed"  # merges cleanly, but the check ejected it (SPEC 9)


__all__ = ["BranchName", "CommitSha", "MergeState", "Status", "SubtaskId"]
