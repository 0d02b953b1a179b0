"""After the report's own fix-up recipe (merge the integration branch into the conflicting
branch in its worktree, fix, commit, `orchestrate merge`): review and report attribute only the
subtask's own edits, the report keeps "resolved by hand in <commit>", and status says the
blocked dependent is ready. A real build with a shell agent, real git, the spawned CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_all, git, phase, plan_of, read_json, run_cli, write_plan

pytestmark = pytest.mark.slow  # real builds then hand fixes

SPEC = "001-fix"
INTEGRATION = f"orchestrate/{SPEC}/integration"
LINES = "".join(f"line {i}\n" for i in range(1, 21))
AGENT = ('case "$ORCHESTRATE_SUBTASK_ID" in '
         'a) sed -i "s/^line 5$/five by a/" src/app.py ;; '
         'b) sed -i "s/^line 5$/five by b/" src/app.py; '
         'sed -i "s/^line 18$/eighteen by b/" notes.txt ;; '
         'c) sed -i "s/^line 2$/two by c/" notes.txt ;; '
         'd) echo d > d.txt ;; esac')


def subtasks(plan_path: Path) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for p in read_json(plan_path)["phases"] for s in p["subtasks"]}


@pytest.fixture
def fixed(repo: Path) -> Path:
    """The build (b conflicts with a on src/app.py line 5; b and c overlap on notes.txt in
    separate hunks; d is blocked), then the report's recipe, then `orchestrate merge`."""
    (repo / "notes.txt").write_text(LINES)
    commit_all(repo, "notes")
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b", "c"], parallel=True),
                                               phase(2, ["d"])))
    run_cli(repo, "build", SPEC, "--agent-command", AGENT, "--resolve", "manual", check=1)
    assert {i: s["status"] for i, s in subtasks(plan_path).items()} == {
        "a": "completed", "b": "conflict", "c": "completed", "d": "blocked"}
    worktree = repo / ".orchestrate" / "worktrees" / SPEC / "b"
    merged = subprocess.run(["git", "merge", INTEGRATION], cwd=worktree, capture_output=True,
                            text=True, check=False)
    assert merged.returncode == 1, merged.stdout  # the conflict, as the report says
    (worktree / "src" / "app.py").write_text(LINES.replace("line 5\n", "five by a and b\n"))
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "--no-edit")
    merged_out = run_cli(repo, "merge", SPEC).stdout
    assert f"`orchestrate build {SPEC}` continues" in merged_out  # the next step: d is ready
    return plan_path


def test_merge_records_the_conflict_as_resolved_by_hand(repo: Path, fixed: Path) -> None:
    b = subtasks(fixed)["b"]
    assert b["status"] == "completed"
    tip = git(repo, "rev-parse", f"orchestrate/{SPEC}/b")
    record = b["orchestrate"]["resolved_by_hand"]
    assert (record["commit"], record["kind"], record["paths"]) == (tip, "conflict",
                                                                    ["src/app.py"])
    assert record["previous_head"] != tip
    assert "resolution" not in b["orchestrate"]  # the agent's (SPEC 10) record is another


def test_review_lists_only_the_subtasks_own_commits_and_edits(repo: Path, fixed: Path) -> None:
    out = run_cli(repo, "review", SPEC, check=0).stdout
    block = out.split("\nb  ")[1].split("\nc  ")[0]
    assert "b: Do b" in block
    assert "a: Do a" not in block
    assert "c: Do c" not in block
    diff = run_cli(repo, "review", SPEC, "b", check=0).stdout
    assert "+five by a and b" in diff
    assert "+eighteen by b" in diff
    assert "two by c" not in diff  # c's edit came in with the merge: not b's


def test_the_report_keeps_the_overlaps_and_the_hand_resolution(repo: Path, fixed: Path) -> None:
    data = json.loads(run_cli(repo, "report", SPEC, "--format", "json", check=0).stdout)
    overlaps = {c["path"]: c for c in data["conflicts"] if c["kind"] == "overlap"}
    assert overlaps["notes.txt"]["detail"] == "separate hunks"  # not relabelled "same lines"
    assert [(h["subtask"], h["old_start"]) for h in overlaps["notes.txt"]["hunks"]] == [
        ("b", 18), ("c", 2)]
    assert overlaps["src/app.py"]["subtasks"] == ["a", "b"]
    tip = git(repo, "rev-parse", f"orchestrate/{SPEC}/b")
    assert data["resolved_by_hand"] == [{"subtask": "b", "commit": tip, "kind": "conflict",
                                         "paths": ["src/app.py"]}]
    markdown = run_cli(repo, "report", SPEC, check=0).stdout
    section = markdown.split("`src/app.py`")[1].split("###")[0]
    assert f"the conflict was resolved by hand in `{tip[:12]}` (`b`)" in section
    assert "merged cleanly" not in section
    assert f"- `b`: conflict in `src/app.py` resolved by hand in `{tip[:12]}`" in markdown
    written = (fixed.parent / "conflict_report.md").read_text()
    assert "resolved by hand" in written  # the merge stage's own report says it too
    github = run_cli(repo, "report", SPEC, "--format", "github", check=0).stdout
    [warning] = [line for line in github.splitlines() if "file=src/app.py," in line]
    assert f"the conflict was resolved by hand in {tip[:12]} (b)" in warning
    run_cli(repo, "report", SPEC, "--exit-code", check=0)  # nothing left to resolve


def test_status_says_the_dependent_is_ready_and_build_continues(repo: Path,
                                                                fixed: Path) -> None:
    out = run_cli(repo, "status", SPEC, check=0).stdout
    assert "(conflict)" not in out
    assert f"ready: its dependencies are completed; `orchestrate build {SPEC}` runs it" in out
    assert (f"next: 1 blocked subtask is ready (the dependencies are completed): "
            f"`orchestrate build {SPEC}` continues") in out
    run_cli(repo, "build", SPEC, "--agent-command", AGENT, check=0)
    assert subtasks(fixed)["d"]["status"] == "completed"
