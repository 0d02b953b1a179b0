"""The --overlap policy through a real build: two subtasks of a parallel phase edit one file in
separate hunks; git merges them cleanly; `merge` merges and flags, `block` keeps the later out."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git, phase, plan_of, read_json, run_cli, write_plan

pytestmark = pytest.mark.slow  # real builds whose agents edit one file

AGENT = ('if [ "$ORCHESTRATE_SUBTASK_ID" = a ]; then sed -i "s/^line 2$/line two/" src/app.py; '
         'else sed -i "s/^line 18$/line eighteen/" src/app.py; fi')
INTEGRATION = "orchestrate/001-overlap/integration"


def build(repo: Path, policy: str, expected_exit: int) -> dict[str, dict[str, object]]:
    path = write_plan(repo, "001-overlap", plan_of(phase(1, ["a", "b"], parallel=True)))
    # a blocked overlap left for the user (tests/build/test_resolve.py has it go back to the agent)
    run_cli(repo, "build", "001", "--agent-command", AGENT, "--overlap", policy,
            "--resolve", "manual", check=expected_exit)
    return {s["id"]: s for s in read_json(path)["phases"][0]["subtasks"]}


def test_a_clean_overlap_is_merged_and_flagged(repo: Path) -> None:
    subtasks = build(repo, "merge", 0)
    assert {i: s["status"] for i, s in subtasks.items()} == {"a": "completed", "b": "completed"}
    assert subtasks["a"]["orchestrate"]["overlaps"] == ["src/app.py"]  # type: ignore[index]
    assert subtasks["b"]["orchestrate"]["overlaps"] == ["src/app.py"]  # type: ignore[index]
    merged = git(repo, "show", f"{INTEGRATION}:src/app.py").splitlines()
    assert merged[1] == "line two"
    assert merged[17] == "line eighteen"
    report = read_json(repo / ".orchestrate/specs/001-overlap/conflict_report.json")
    overlap = next(c for c in report["conflicts"] if c["kind"] == "overlap")
    assert overlap["path"] == "src/app.py"
    assert overlap["subtasks"] == ["a", "b"]


def test_with_overlap_block_the_later_branch_is_not_merged(repo: Path) -> None:
    subtasks = build(repo, "block", 1)
    assert {i: s["status"] for i, s in subtasks.items()} == {"a": "completed", "b": "conflict"}
    error = str(subtasks["b"]["orchestrate"]["error"])  # type: ignore[index]
    assert error.startswith("not merged: ")
    assert "--overlap block" in error
    merged = git(repo, "show", f"{INTEGRATION}:src/app.py").splitlines()
    assert merged[1] == "line two"
    assert merged[17] == "line 18"
    assert (repo / ".orchestrate/worktrees/001-overlap/b/src/app.py").read_text().splitlines()[
        17] == "line eighteen"  # b keeps a worktree on its branch, to resolve there


def test_a_later_merge_keeps_the_overlap_policy_the_build_used(repo: Path) -> None:
    build(repo, "block", 1)
    plan_file = repo / ".orchestrate/specs/001-overlap/implementation_plan.json"
    assert read_json(plan_file)["orchestrate"]["overlap"] == "block"
    run_cli(repo, "merge", "001", check=1)  # still blocked: nothing changed on b's branch
    assert read_json(plan_file)["phases"][0]["subtasks"][1]["status"] == "conflict"
    run_cli(repo, "merge", "001", "--overlap", "merge", check=0)  # said otherwise: merged
    merged = git(repo, "show", f"{INTEGRATION}:src/app.py").splitlines()
    assert merged[17] == "line eighteen"
