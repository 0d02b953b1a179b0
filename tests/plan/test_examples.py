"""The example plans (Auto-Claude's planner, legacy `chunks`, the guide's seed): they validate,
`status --json` normalises them, and a locked update writes only the fields it changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.plan.model import Plan
from orchestrator.plan.store import PlanStore
from tests.cli_inprocess import run_cli_in_process
from tests.conftest import write_plan

DATA = Path(__file__).resolve().parents[1] / "data" / "examples"
# CI clones the repository into a fresh folder with shared/ beside it.
SHARED = Path(__file__).resolve().parents[3] / "shared" / "examples"
EXAMPLES = ["planner-style.json", "legacy-chunks.json", "seed-guide.json"]
SPEC = "001-example"

SUMMARY = {
    "planner-style.json": "valid plan, 2 phases (1 parallel), 3 subtasks",
    "legacy-chunks.json": "valid plan, 3 phases (1 parallel), 5 subtasks",
    "seed-guide.json": "valid plan, 2 phases (1 parallel), 5 subtasks",
}
# phase key -> (parallel_safe, depends_on keys, {subtask id: normalised status})
EXPECTED_STATUS: dict[str, dict[str, tuple[bool, list[str], dict[str, str]]]] = {
    "planner-style.json": {
        "phase-1-backend": (True, [], {"subtask-1-1": "pending", "subtask-1-2": "pending"}),
        "phase-2-frontend": (False, ["phase-1-backend"], {"subtask-2-1": "pending"}),
    },
    "legacy-chunks.json": {
        "1": (False, [], {"chunk-1-1": "completed", "chunk-1-2": "pending"}),
        "2": (True, ["1"], {"chunk-2-1": "pending", "chunk-2-2": "pending"}),
        "3": (False, ["2"], {"chunk-3-1": "pending"}),
    },
    "seed-guide.json": {
        "1": (False, [], {"db-1": "pending", "db-2": "pending"}),
        "2": (True, ["1"], {"svc-1": "pending", "svc-2": "pending", "svc-3": "pending"}),
    },
}
UPDATED_SUBTASK = {"planner-style.json": "subtask-2-1", "legacy-chunks.json": "chunk-2-1",
                   "seed-guide.json": "svc-2"}


def _install(repo: Path, name: str) -> Path:
    path = write_plan(repo, SPEC, "")
    path.write_bytes((DATA / name).read_bytes())
    return path


@pytest.mark.parametrize("name", EXAMPLES)
def test_committed_copy_matches_shared_examples(name: str) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent; the committed copies in {DATA} are used alone")
    assert (DATA / name).read_bytes() == (SHARED / name).read_bytes(), (
        f"tests/data/examples/{name} differs from {SHARED / name}; copy it again")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_validates(repo: Path, name: str) -> None:
    plan = _install(repo, name)
    done = run_cli_in_process(repo, "validate", "001", check=0)
    assert done.stdout.strip() == f"{SPEC}: {SUMMARY[name]}"
    assert plan.read_bytes() == (DATA / name).read_bytes()


@pytest.mark.parametrize("name", EXAMPLES)
def test_status_json_normalises_statuses_and_dependencies(repo: Path, name: str) -> None:
    plan = _install(repo, name)
    done = run_cli_in_process(repo, "status", "001", "--json", check=0)
    shown = json.loads(done.stdout)
    assert shown["spec"] == SPEC
    got = {p["phase"]: (p["parallel_safe"], p["depends_on"],
                        {s["id"]: s["status"] for s in p["subtasks"]}) for p in shown["phases"]}
    assert got == EXPECTED_STATUS[name]
    assert [p["phase"] for p in shown["phases"]] == list(EXPECTED_STATUS[name])
    assert plan.read_bytes() == (DATA / name).read_bytes()


def test_status_aliases_and_every_depends_on_form(repo: Path) -> None:
    statuses = ["pending", "in_progress", "completed", "failed", "blocked", "conflict",
                "not_started", "todo", "done", "complete"]
    raw = {"phases": [
        {"phase": 1, "subtasks": [{"id": f"s-{s}", "status": s} for s in statuses]},
        {"phase": 2, "subtasks": [{"id": "implicit"}]},  # no depends_on: the phase before
        {"id": "p-3", "phase": 3, "depends_on": [1], "subtasks": [{"id": "by-int"}]},
        {"phase": 4, "depends_on": ["2", "p-3"], "subtasks": [{"id": "by-string-and-id"}]},
        {"phase": 5, "depends_on": [], "subtasks": [{"id": "none", "status": None}]},
    ]}
    write_plan(repo, SPEC, raw)
    shown = json.loads(run_cli_in_process(repo, "status", "001", "--json", check=0).stdout)
    first = {s["id"]: s["status"] for s in shown["phases"][0]["subtasks"]}
    assert first == {f"s-{s}": s for s in statuses[:6]} | {
        "s-not_started": "pending", "s-todo": "pending", "s-done": "completed",
        "s-complete": "completed"}
    assert [p["depends_on"] for p in shown["phases"]] == [[], ["1"], ["1"], ["2", "p-3"], []]
    assert shown["phases"][4]["subtasks"][0]["status"] == "pending"
    assert shown["summary"] == {"pending": 7, "in_progress": 1, "completed": 3, "failed": 1,
                                "blocked": 1, "conflict": 1}


def _assert_same_key_order(before: Any, after: Any, where: str = "$") -> None:
    if isinstance(before, dict):
        assert isinstance(after, dict), where
        assert list(after.keys()) == list(before.keys()), where
        for key in before:
            _assert_same_key_order(before[key], after[key], f"{where}.{key}")
    elif isinstance(before, list):
        assert isinstance(after, list), where
        assert len(after) == len(before), where
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            _assert_same_key_order(b, a, f"{where}[{i}]")
    else:
        assert after == before, where


def _find_subtask(raw: dict[str, Any], subtask_id: str) -> dict[str, Any]:
    for phase_raw in raw["phases"]:
        for subtask in phase_raw.get("subtasks", phase_raw.get("chunks", [])):
            if subtask["id"] == subtask_id:
                found: dict[str, Any] = subtask
                return found
    raise KeyError(subtask_id)


@pytest.mark.parametrize("name", EXAMPLES)
def test_update_writes_only_the_changed_fields(repo: Path, name: str) -> None:
    path = _install(repo, name)
    original = json.loads((DATA / name).read_text(encoding="utf-8"))
    target = UPDATED_SUBTASK[name]
    record = {"branch": f"orchestrate/{SPEC}/{target}", "attempts": 1, "merge": "pending"}

    def change(plan: Plan) -> str:
        subtask = plan.subtask(target)
        subtask.raw["status"] = "in_progress"
        subtask.write_meta(**record)
        return "changed"

    assert PlanStore(path.parent).update(change) == "changed"
    text = path.read_text(encoding="utf-8")
    written = json.loads(text)

    subtask = _find_subtask(written, target)
    assert subtask["status"] == "in_progress"
    assert subtask["orchestrate"] == record
    assert list(subtask)[-1] == "orchestrate"
    keys_before = list(_find_subtask(original, target))
    assert list(subtask)[:-1] == keys_before  # `status` stays where it was

    subtask["status"] = _find_subtask(original, target)["status"]
    del subtask["orchestrate"]
    assert written == original
    _assert_same_key_order(original, written)

    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    assert text.startswith('{\n  "')
    indents = {len(line) - len(line.lstrip(" ")) for line in text.splitlines()}
    assert all(n % 2 == 0 for n in indents)
    assert 2 in indents
    assert 4 in indents


def test_update_keeps_aliases_and_non_ascii_text(repo: Path) -> None:
    path = _install(repo, "legacy-chunks.json")
    raw = json.loads(path.read_text())
    raw["phases"][0]["chunks"][1]["description"] = "Exportdienst für Bestellungen ✓"
    path.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    store = PlanStore(path.parent)
    store.update(lambda plan: plan.write_meta(integration_branch="orchestrate/x/integration"))
    written = json.loads(path.read_text(encoding="utf-8"))
    assert list(written) == [*raw, "orchestrate"]
    assert written["orchestrate"] == {"integration_branch": "orchestrate/x/integration"}
    statuses = [c["status"] for p in written["phases"] for c in p["chunks"]]
    assert statuses == ["completed", "not_started", "todo", "pending", "pending"]
    assert "für Bestellungen ✓" in path.read_text(encoding="utf-8")
    assert store.writes == 1
