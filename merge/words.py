"""merge/'s own words: what a merge came to and what a report finding is. Plain strings (the
JSON report and the plan carry them); `Literal` types in integrate.py and report.py name the
same words for mypy. orchestrator/ compares against these constants, never the bare words."""

from __future__ import annotations

from typing import Final

# a merge's outcome (MergeResult.outcome), and a finding's kind
MERGED: Final = "merged"
ALREADY_MERGED: Final = "already_merged"
CONFLICT: Final = "conflict"
OVERLAP: Final = "overlap"  # a finding: two subtasks of one batch changed the same path
CHECK: Final = "check"  # a finding: the check ejected the subtask (SPEC 9)
UNRELATED: Final = "unrelated"  # a finding: the branch shares no history with the integration
FINDING_KINDS: Final = (CONFLICT, OVERLAP, CHECK, UNRELATED)
