"""Refs an agent moved: an integration branch moved or deleted during a build stops the merge
stage (exit 1, naming the commits), and no injected commit is ever adopted silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import commit_files, git, phase, plan_of, run_cli, write_plan
from tests.fault_support import (
    INTEGRATION,
    SPEC,
    build,
    checkout_state,
    merged_subtasks,
    statuses,
    subtasks,
)
from tests.trust_support import attacked_build


@pytest.mark.slow
def test_a_commit_injected_onto_the_integration_branch_stops_the_merge_stage(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["inject", "sibling"], parallel=True)))
    base = git(repo, "rev-parse", "main")
    checkout = checkout_state(repo)
    output = attacked_build(repo, tmp_path, check=1)
    injected = git(repo, "rev-parse", INTEGRATION)
    assert f"moved outside orchestrate during the run ({base} -> {injected})" in output
    assert git(repo, "log", "--format=%s", INTEGRATION) == "injected by an agent\ninitial"
    assert "completed" not in statuses(plan_path).values()
    assert checkout_state(repo) == checkout


@pytest.mark.slow
def test_an_integration_branch_deleted_mid_build_is_a_clear_error(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["unbranch", "sibling"], parallel=True)))
    base = git(repo, "rev-parse", "main")
    output = attacked_build(repo, tmp_path, check=1)
    assert f"was deleted outside orchestrate during the run (it was at {base})" in output
    assert "completed" not in statuses(plan_path).values()
    git(repo, "branch", INTEGRATION, base)  # as the message says
    merged = run_cli(repo, "merge", "001", check=0)
    assert "internal error" not in merged.stdout + merged.stderr
    assert set(statuses(plan_path).values()) == {"completed"}


@pytest.mark.slow
def test_a_branch_with_unrelated_history_is_a_conflict_of_kind_unrelated(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["orphan", "sibling"], parallel=True)))
    attacked_build(repo, tmp_path, check=1)
    assert statuses(plan_path) == {"orphan": "conflict", "sibling": "completed"}
    assert subtasks(plan_path)["orphan"]["orchestrate"]["merge"] == "conflict"
    report = json.loads((plan_path.parent / "conflict_report.json").read_text())
    assert [c["kind"] for c in report["conflicts"] if "orphan" in c["subtasks"]] == ["unrelated"]
    for command in (["merge", "001"], ["report", "001"], ["status", "001"]):
        done = run_cli(repo, *command)
        assert done.returncode in (0, 1), done.stderr
        assert "internal error" not in done.stdout + done.stderr
    attacked_build(repo, tmp_path, "--retry-failed", "--resolve", "manual", check=1)
    assert statuses(plan_path)["orphan"] == "conflict"


@pytest.mark.slow
def test_a_sibling_branch_moved_outside_orchestrate_is_failed_not_merged(repo: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    build(repo, "--no-merge", check=0)
    recorded = str(subtasks(plan_path)["b"]["orchestrate"]["head"])
    base = str(subtasks(plan_path)["b"]["orchestrate"]["base"])
    branch = f"orchestrate/{SPEC}/b"
    moved = commit_files(repo, base, {"b.txt": "not b's work\n"}, "moved by an agent",
                         branch=branch)
    plan = json.loads(plan_path.read_text())  # the agent edits the plan to match, too
    plan["phases"][0]["subtasks"][1]["orchestrate"]["head"] = moved
    plan_path.write_text(json.dumps(plan, indent=2))
    done = run_cli(repo, "merge", "001", check=1)
    assert "internal error" not in done.stdout + done.stderr
    assert statuses(plan_path) == {"a": "completed", "b": "failed"}
    assert subtasks(plan_path)["b"]["orchestrate"]["error"] == (
        f"branch moved outside orchestrate ({recorded} -> {moved})")
    assert merged_subtasks(repo) == {"a": 1}
    assert moved not in git(repo, "rev-list", INTEGRATION)


@pytest.mark.slow
def test_commits_added_on_top_of_a_subtask_branch_are_still_merged(repo: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    build(repo, "--no-merge", check=0)
    head = str(subtasks(plan_path)["b"]["orchestrate"]["head"])
    commit_files(repo, head, {"fix.txt": "a fix by hand\n"}, "fix", branch=f"orchestrate/{SPEC}/b")
    run_cli(repo, "merge", "001", check=0)
    assert git(repo, "show", f"{INTEGRATION}:fix.txt") == "a fix by hand"


@pytest.mark.slow
def test_a_plan_edited_to_say_completed_is_not_believed(repo: Path, tmp_path: Path) -> None:
    plan = plan_of(phase(1, ["fakedone"]), phase(2, ["later", "other"], parallel=True))
    plan["phases"].insert(0, {"phase": 0, "name": "done before", "depends_on": [],
                              "subtasks": [{"id": "old", "status": "completed"}]})
    plan["phases"][1]["depends_on"] = []
    plan_path = write_plan(repo, SPEC, plan)  # `old`: completed when orchestrate first saw it
    attacked_build(repo, tmp_path, check=0)
    assert statuses(plan_path) == dict.fromkeys(["old", "fakedone", "later", "other"],
                                                "completed")
    assert merged_subtasks(repo) == {"fakedone": 1, "later": 1, "other": 1}
    assert git(repo, "show", f"{INTEGRATION}:later.txt") == "good work of later"


@pytest.mark.slow
def test_a_faked_cached_check_pass_in_the_plan_is_not_believed(repo: Path) -> None:
    check = "test ! -f bad.txt"
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["bad", "good"], parallel=True)))
    build(repo, "--check", check, "--resolve", "manual", check=1)
    assert statuses(plan_path)["bad"] == "conflict"
    plan = json.loads(plan_path.read_text())
    checks = plan["orchestrate"]["checks"]
    assert "fail" in checks.values()
    plan["orchestrate"]["checks"] = dict.fromkeys(checks, "pass")  # an agent's edit
    plan_path.write_text(json.dumps(plan, indent=2))
    run_cli(repo, "merge", "001", "--check", check, check=1)
    assert "bad.txt" not in git(repo, "ls-tree", "-r", "--name-only", INTEGRATION)
    assert statuses(plan_path)["bad"] == "conflict"


# `mover-*` waits for its sibling `victim` to be committed, then points the victim's branch at
# a commit of its own: on top of the victim's head (`mover-top`) or beside it (`mover-aside`)
MOVER = r"""
me=$ORCHESTRATE_SUBTASK_ID
echo "work of $me" > "$me.txt"
[ "$ORCHESTRATE_ATTEMPT" = 1 ] && [ "$me" != victim ] || exit 0
victim=refs/heads/orchestrate/$ORCHESTRATE_SPEC/victim
base=$(git rev-parse HEAD); i=0
while [ "$(git rev-parse $victim)" = "$base" ]; do
  i=$((i+1)); [ $i -lt 200 ] || exit 3; sleep 0.05
done
head=$(git rev-parse $victim)
blob=$(echo "injected by $me" | git hash-object -w --stdin)
tree=$(printf '100644 blob %s\tinjected.txt\n' "$blob" | git mktree)
[ "$me" = mover-top ] && parent=$head || parent=$base
git update-ref $victim "$(echo "not victim's work" | git commit-tree "$tree" -p "$parent")"
"""


@pytest.mark.slow
@pytest.mark.parametrize("mover", ["mover-top", "mover-aside"])
def test_a_siblings_branch_moved_during_the_build_is_not_merged_under_its_name(
        repo: Path, tmp_path: Path, mover: str) -> None:
    """Even a commit added on top of the head this build committed: that is no fix by hand."""
    script = tmp_path / "mover.sh"
    script.write_text(MOVER)
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["victim", mover], parallel=True)))
    checkout = checkout_state(repo)
    done = run_cli(repo, "build", "001", "--agent-command", f"sh {script}", check=1)
    assert "internal error" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    recorded = str(subtasks(plan_path)["victim"]["orchestrate"]["head"])
    moved = git(repo, "rev-parse", f"orchestrate/{SPEC}/victim")
    assert statuses(plan_path) == {"victim": "failed", mover: "completed"}
    assert subtasks(plan_path)["victim"]["orchestrate"]["error"] == (
        f"branch moved outside orchestrate ({recorded} -> {moved})")
    assert merged_subtasks(repo) == {mover: 1}
    assert "injected.txt" not in git(repo, "ls-tree", "-r", "--name-only", INTEGRATION)
    assert checkout_state(repo) == checkout
    run_cli(repo, "build", "001", "--agent-command", f"sh {script}", "--retry-failed",
            check=0)
    assert git(repo, "show", f"{INTEGRATION}:victim.txt") == "work of victim"
    assert "injected.txt" not in git(repo, "ls-tree", "-r", "--name-only", INTEGRATION)
