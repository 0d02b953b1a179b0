"""String-like values with their own names, so signatures say what they carry."""

from typing import NewType

SubtaskId = NewType("SubtaskId", str)
BranchName = NewType("BranchName", str)
CommitSha = NewType("CommitSha", str)
