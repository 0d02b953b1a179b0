"""Plans as Auto-Claude writes them in the wild (SPEC 2a): `subtask_id`/`subtaskId`, phases keyed
by `phase_id`/`phaseId` with a `title`, its status words, verification types that are not
commands, and the base branch `auto-claude/<spec>` of a spec Auto-Claude already worked on.

Every test runs the real CLI on a real repository; builds use the scripted agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Recorder,
    agent_command,
    branch_files,
    build,
    orchestrate_branches,
)
from tests.conftest import commit_files, git, plan_of, run_cli, write_plan

DATA = Path(__file__).resolve().parents[1] / "data" / "examples"
ID_FIELDS = ("id", "subtask_id", "subtaskId")


def _install(repo: Path, name: str, spec: str = SPEC, root: str = ".orchestrate/specs") -> Path:
    path = write_plan(repo, spec, "", root=root)
    path.write_bytes((DATA / name).read_bytes())
    return path


def _subtask_id(raw: dict[str, Any]) -> str:
    return str(raw[next(f for f in ID_FIELDS if f in raw)])


def _subtasks(path: Path) -> dict[str, dict[str, Any]]:
    plan = json.loads(path.read_text())
    return {_subtask_id(s): s for p in plan["phases"] for s in p["subtasks"]}


def _status_rows(repo: Path, spec: str = "001") -> dict[str, dict[str, Any]]:
    shown = json.loads(run_cli(repo, "status", spec, "--json", check=0).stdout)
    return {s["id"]: s for p in shown["phases"] for s in p["subtasks"]}


@pytest.mark.parametrize(("name", "summary"), [
    ("autoclaude-subtask-id.json", "valid plan, 2 phases (1 parallel), 3 subtasks"),
    ("autoclaude-phase-keys.json", "valid plan, 3 phases (1 parallel), 4 subtasks"),
])
def test_alias_plans_validate_and_are_not_rewritten(repo: Path, name: str, summary: str) -> None:
    plan = _install(repo, name)
    done = run_cli(repo, "validate", "001", check=0)
    assert done.stdout.strip() == f"{SPEC}: {summary}"
    assert plan.read_bytes() == (DATA / name).read_bytes()


def test_status_reads_phase_ids_titles_and_depends_on_by_each_kind_of_key(repo: Path) -> None:
    _install(repo, "autoclaude-phase-keys.json")
    shown = json.loads(run_cli(repo, "status", "001", "--json", check=0).stdout)
    got = [(p["phase"], p["name"], p["depends_on"], [s["id"] for s in p["subtasks"]])
           for p in shown["phases"]]
    assert got == [("1", "Theme tokens", [], ["tokens"]),
                   ("2", "Components", ["1"], ["buttons", "cards"]),
                   ("phase-settings", "Settings toggle", ["2", "1"], ["toggle"])]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["autoclaude-subtask-id.json", "autoclaude-phase-keys.json"])
def test_alias_plan_builds_in_dependency_order_and_gets_no_id_key(
        repo: Path, recorder: Recorder, name: str) -> None:
    path = _install(repo, name)
    before = _subtasks(path)
    # Each later phase's agent needs the work of the phase its depends_on names.
    require = {"autoclaude-subtask-id.json": ["subtask-2-1=subtask-1-1.txt,subtask-1-2.txt"],
               "autoclaude-phase-keys.json": ["buttons=tokens.txt", "cards=tokens.txt",
                                              "toggle=buttons.txt,cards.txt"]}[name]
    build(repo, recorder, *(arg for r in require for arg in ("--require", r)))
    after = _subtasks(path)
    assert {sid: s["status"] for sid, s in after.items()} == dict.fromkeys(before, "completed")
    for sid, old in before.items():
        assert [k for k in after[sid] if k in old] == list(old), f"{sid}: key order changed"
        assert ("id" in after[sid]) == ("id" in old), f"{sid}: an `id` key was added"
    assert {f"{sid}.txt" for sid in before} <= branch_files(repo, INTEGRATION)
    raw = json.loads(path.read_text())
    original = json.loads((DATA / name).read_text())
    for new, old in zip(raw["phases"], original["phases"], strict=True):
        assert {k: v for k, v in new.items() if k != "subtasks"} == {
            k: v for k, v in old.items() if k != "subtasks"}


def test_a_subtask_with_none_of_the_id_fields_is_refused_naming_all_three(repo: Path) -> None:
    text = json.dumps(plan_of({"phase_id": "p1", "subtasks": [
        {"subtask_id": "a"}, {"description": "no id at all"}]}), indent=2)
    path = write_plan(repo, SPEC, text)
    for command in (("validate", "001"), ("build", "001", "--agent-command", "true")):
        done = run_cli(repo, *command, check=2)
        assert "phase p1, subtasks[1]" in done.stderr
        assert all(f"`{field}`" in done.stderr for field in ID_FIELDS), done.stderr
        assert "Traceback" not in done.stderr
    assert path.read_text() == text
    assert orchestrate_branches(repo) == []


# Every alias of SPEC 2a, spelled with the odd case and spaces seen in real plans.
ALIASES = {"not_started": "pending", " Not Started ": "pending", "TODO": "pending",
           "to_do": "pending", "Backlog": "pending", "in-progress": "in_progress",
           "InProgress": "in_progress", "working ": "in_progress", "DONE": "completed",
           "complete": "completed", "Completed_Successfully": "completed",
           " pending": "pending", "Completed": "completed"}


def _alias_plan() -> dict[str, Any]:
    subtasks = [{"subtask_id": f"s{n}", "description": f"status {word!r}", "status": word}
                for n, word in enumerate(ALIASES)]
    return plan_of({"phase_id": "only", "title": "Statuses", "parallel_safe": True,
                    "subtasks": subtasks})


@pytest.mark.slow
def test_every_status_alias_is_read_and_every_written_status_is_canonical(
        repo: Path, recorder: Recorder) -> None:
    path = write_plan(repo, SPEC, _alias_plan())
    words = list(ALIASES.values())
    rows = _status_rows(repo)
    assert [rows[f"s{n}"]["status"] for n in range(len(words))] == words
    build(repo, recorder)
    after = _subtasks(path)
    ran = {f"s{n}" for n, canonical in enumerate(words) if canonical != "completed"}
    assert set(recorder.invocations()) == ran
    for n, word in enumerate(ALIASES):
        written = after[f"s{n}"]["status"]
        # What orchestrate wrote is the canonical word; what it did not touch stays as it was.
        assert written == ("completed" if f"s{n}" in ran else word)


@pytest.mark.slow
def test_an_unknown_status_is_exit_2_and_the_plan_is_unchanged(repo: Path) -> None:
    commands = [("validate", "001"), ("status", "001"),
                ("build", "001", "--agent-command", "true")]
    for word, tried in (("started", commands), ("in progress", commands[:1]),
                        ("", commands[:1])):
        plan = _alias_plan()
        plan["phases"][0]["subtasks"][3]["status"] = word
        text = json.dumps(plan, indent=2) + "\n"
        path = write_plan(repo, SPEC, text)
        for command in tried:
            done = run_cli(repo, *command, check=2)
            assert "subtask 's3'" in done.stderr
            assert "field `status`" in done.stderr
            assert repr(word) in done.stderr
            assert "backlog" in done.stderr
        assert path.read_text() == text
    assert orchestrate_branches(repo) == []


def _verification_plan() -> dict[str, Any]:
    def subtask(sid: str, **verification: str) -> dict[str, Any]:
        return {"subtask_id": sid, "description": f"Do {sid}", "status": "pending",
                "verification": verification}
    return plan_of({"phase_id": 1, "title": "Checks", "parallel_safe": True, "subtasks": [
        subtask("by-hand", type="manual", instructions="open the page and look"),
        subtask("in-browser", type="browser", scenario="click save", expected="a toast"),
        subtask("auto-ok", type="automated", command="test -f auto-ok.txt",
                expected="the marker file of auto-ok exists"),
        subtask("auto-bad", type="automated", run="echo checking; exit 3"),
        subtask("plain", type="command", run="test -f plain.txt"),
    ]})


@pytest.mark.slow
def test_verification_types_run_or_are_recorded_as_skipped(repo: Path,
                                                           recorder: Recorder) -> None:
    path = write_plan(repo, SPEC, _verification_plan())
    run_cli(repo, "validate", "001", check=0)
    out = build(repo, recorder, options=("--retries", "0"), check=1)
    meta = {sid: s.get("orchestrate", {}) for sid, s in _subtasks(path).items()}
    statuses = {sid: s["status"] for sid, s in _subtasks(path).items()}
    assert statuses == {"by-hand": "completed", "in-browser": "completed",
                        "auto-ok": "completed", "auto-bad": "failed", "plain": "completed"}
    assert {sid: m.get("verification") for sid, m in meta.items()} == {
        "by-hand": "skipped (manual)", "in-browser": "skipped (browser)",
        "auto-ok": "passed", "auto-bad": "failed (exit 3)", "plain": "passed"}
    assert "verification `echo checking; exit 3` failed (exit 3)" in meta["auto-bad"]["error"]
    assert "auto-bad" in out
    assert "failed" in out
    text = run_cli(repo, "status", "001", check=0).stdout
    rows = text.splitlines()

    def notes(subtask_id: str) -> list[str]:  # status shows a subtask's notes under its row
        row = next(n for n, line in enumerate(rows) if line.startswith(f"  {subtask_id} "))
        return [note.strip() for note in rows[row + 1:row + 6]]

    assert "verification: skipped (manual)" in notes("by-hand")
    assert "verification: skipped (browser)" in notes("in-browser")
    assert "verification: failed (exit 3)" in notes("auto-bad")
    assert _status_rows(repo)["in-browser"]["verification"] == "skipped (browser)"
    prompts = {e["id"]: e["prompt"] for e in recorder.starts()}
    assert "Expected result: the marker file of auto-ok exists" in prompts["auto-ok"]
    assert "`test -f auto-ok.txt`" in prompts["auto-ok"]
    assert "not run by the orchestrator" in prompts["in-browser"]
    assert "a toast" in prompts["in-browser"]


def test_verification_types_other_than_command_need_no_command(repo: Path) -> None:
    kinds = ["manual", "browser", "api", "e2e", "component", "none", "automated"]
    subtasks = [{"subtask_id": k, "verification": {"type": k}} for k in kinds]
    write_plan(repo, SPEC, plan_of({"phase_id": 1, "subtasks": subtasks}))
    run_cli(repo, "validate", "001", check=0)
    write_plan(repo, SPEC, plan_of({"phase_id": 1, "subtasks": [
        {"subtask_id": "x", "verification": {"type": "command"}}]}))
    assert "`run`" in run_cli(repo, "validate", "001", check=2).stderr


AC_SPEC = "002-csv-export"
AC_BRANCH = f"auto-claude/{AC_SPEC}"


def _auto_claude_spec(repo: Path, completed: bool) -> Path:
    """An Auto-Claude spec: subtask-1-1 done by Auto-Claude on its branch (if `completed`)."""
    path = _install(repo, "autoclaude-subtask-id.json", spec=AC_SPEC, root=".auto-claude/specs")
    plan = json.loads(path.read_text())
    if completed:
        plan["phases"][0]["subtasks"][0]["status"] = "completed_successfully"
    path.write_text(json.dumps(plan, indent=2) + "\n")
    main = git(repo, "rev-parse", "main")
    commit_files(repo, main, {"reports/query.py": "# by Auto-Claude\n"},
                 "auto-claude: subtask-1-1", branch=AC_BRANCH)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("completed", [True, False])
def test_auto_claude_branch_is_the_base_only_when_the_spec_has_completed_subtasks(
        repo: Path, recorder: Recorder, completed: bool) -> None:
    _auto_claude_spec(repo, completed)
    main = git(repo, "rev-parse", "main")
    done = run_cli(repo, "build", "002", "--agent-command", agent_command(),
                   env=recorder.env, check=0)
    integration = f"orchestrate/{AC_SPEC}/integration"
    files = branch_files(repo, integration)
    announced = [line for line in done.stdout.splitlines() if AC_BRANCH in line]
    ac_tip = git(repo, "rev-parse", AC_BRANCH)
    if completed:
        assert len(announced) == 1, done.stdout
        assert announced[0].startswith("base: "), done.stdout
        assert "reports/query.py" in files
        assert git(repo, "merge-base", "--is-ancestor", ac_tip, integration) == ""
        assert set(recorder.invocations()) == {"subtask-1-2", "subtask-2-1"}
    else:
        assert announced == [], done.stdout
        assert "reports/query.py" not in files
        assert set(recorder.invocations()) == {"subtask-1-1", "subtask-1-2", "subtask-2-1"}
    assert git(repo, "rev-parse", "main") == main
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"


@pytest.mark.slow
def test_base_option_wins_over_the_auto_claude_branch(repo: Path, recorder: Recorder) -> None:
    _auto_claude_spec(repo, completed=True)
    done = run_cli(repo, "build", "002", "--base", "main", "--agent-command", agent_command(),
                   env=recorder.env, check=0)
    assert AC_BRANCH not in done.stdout
    assert "reports/query.py" not in branch_files(repo, f"orchestrate/{AC_SPEC}/integration")
