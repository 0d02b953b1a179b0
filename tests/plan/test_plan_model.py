"""The typed plan model: Status words, the typed `orchestrate` record and the state predicates
of the subtask view, on plans parsed from real JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.plan.model import MergeState, Plan, Status, Subtask
from orchestrator.plan.parse import parse_plan


def subtask(status: str, **record: Any) -> Subtask:
    raw = {"phases": [{"phase": 1, "name": "P", "subtasks": [
        {"id": "a", "description": "Do a", "status": status, "orchestrate": record}]}]}
    plan: Plan = parse_plan(json.dumps(raw).encode(), Path("plan.json"))
    return plan.subtask("a")


def test_statuses_are_the_plain_words() -> None:
    assert subtask("done").status is Status.COMPLETED
    assert json.dumps([Status.IN_PROGRESS, MergeState.CHECK_FAILED]) == \
        '["in_progress", "check_failed"]'
    assert f"{Status.BLOCKED}" == "blocked"


def test_the_record_reads_only_well_formed_fields() -> None:
    record = subtask("in_progress", head="abc", base="", branch=7, merge="pending").record
    assert (record.head, record.base, record.branch, record.merge) == ("abc", None, None,
                                                                       "pending")
    assert subtask("pending").record.worktree is None


@pytest.mark.parametrize(("status", "record", "committed", "interrupted"), [
    ("in_progress", {"head": "h", "merge": "pending"}, True, False),
    ("in_progress", {"head": "h", "merge": "merged"}, False, True),
    ("in_progress", {}, False, True),
    ("conflict", {"head": "h"}, True, False),
    ("conflict", {}, False, False),
    ("completed", {"head": "h", "merge": "pending"}, False, False),
])
def test_state_predicates(status: str, record: dict[str, Any], committed: bool,
                          interrupted: bool) -> None:
    found = subtask(status, **record)
    assert found.is_committed_unmerged is committed
    assert found.is_interrupted is interrupted


def test_merged_with_changes_needs_work_beyond_the_base() -> None:
    assert subtask("completed", head="h", base="b").merged_with_changes
    assert not subtask("completed", head="b", base="b").merged_with_changes
    assert not subtask("in_progress", head="h", base="b").merged_with_changes
