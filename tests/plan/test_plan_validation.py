"""Malformed plans through the real CLI (run in-process, tests/cli_inprocess.py): exit 2, a
message naming the phase/subtask and field, no traceback, and nothing changed (plan bytes,
branches, worktrees)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_inprocess import run_cli_in_process
from tests.conftest import git, phase, plan_of, write_plan

SPEC = "001-broken"


def _plan_text(plan: dict[str, Any]) -> str:
    return json.dumps(plan, indent=2) + "\n"


def _one_subtask(**fields: Any) -> str:
    return _plan_text(plan_of({"phase": 1, "name": "Only", "subtasks": [{"id": "a", **fields}]}))


def _with_id(subtask_id: str) -> str:
    return _plan_text(plan_of(phase(1, ["ok", subtask_id])))


def _two_phases(second: dict[str, Any], first: dict[str, Any] | None = None) -> str:
    return _plan_text(plan_of(phase(1, ["a"], **(first or {})), phase(2, ["b"], **second)))


DEEP = "[" * 100_000 + "]" * 100_000

# (case id, plan file content, words the error message must contain)
CASES: list[tuple[str, str | bytes, list[str]]] = [
    ("not-json", '{\n  "phases": [\n    {"phase": 1,,}\n  ]\n}\n',
     ["not valid JSON", "line 3, column 17"]),
    ("truncated-json", '{"phases": [', ["not valid JSON", "line 1, column 13"]),
    ("empty-file", "", ["not valid JSON", "line 1, column 1"]),
    ("not-utf8", b'{"phases": [], "feature": "caf\xe9"}', ["not UTF-8"]),
    ("nan-is-not-json", '{"phases": [], "estimate": NaN}', ["not valid JSON", "NaN"]),
    ("deeply-nested", '{"phases": ' + DEEP + "}", ["not valid JSON", "nested"]),
    ("top-level-list", "[]", ["JSON object", "`phases`", "not a list"]),
    ("top-level-string", '"phases"', ["JSON object", "not a string"]),
    ("missing-phases", _plan_text({"feature": "x", "subtasks": []}),
     ["missing required field `phases`"]),
    ("phases-not-list", _plan_text({"phases": {"1": phase(1, ["a"])}}),
     ["field `phases` must be a list", "not an object"]),
    ("phase-not-object", _plan_text({"phases": [phase(1, ["a"]), "setup"]}),
     ["phases[1]", "a phase must be an object", "not a string"]),
    ("phase-number-string", _plan_text(plan_of({"phase": "1", "subtasks": []})),
     ["phases[0]", "field `phase`", "integer", "not a string"]),
    ("phase-number-bool", _plan_text(plan_of({"phase": True, "subtasks": []})),
     ["phases[0]", "field `phase`", "integer", "not a boolean"]),
    ("phase-number-duplicate", _plan_text(plan_of(phase(1, ["a"]), phase(1, ["b"]))),
     ["phase 1", "field `phase`", "two phases"]),
    ("phase-id-duplicate", _plan_text(plan_of({"id": "p", "subtasks": [{"id": "a"}]},
                                              {"id": "p", "subtasks": [{"id": "b"}]})),
     ["phase p", "field `id`", "two phases"]),
    ("parallel-safe-not-bool", _plan_text(plan_of(phase(1, ["a"], parallel_safe="true"))),
     ["phase 1", "field `parallel_safe`", "true or false"]),
    ("phase-id-not-string", _plan_text(plan_of({"id": 7, "subtasks": [{"id": "a"}]})),
     ["phases[0]", "field `id`", "string"]),
    ("phase-id-empty", _plan_text(plan_of({"id": "", "subtasks": [{"id": "a"}]})),
     ["phases[0]", "field `id`", "non-empty string"]),
    ("subtasks-not-list", _plan_text(plan_of({"phase": 1, "subtasks": {"id": "a"}})),
     ["phase 1", "field `subtasks` must be a list"]),
    ("subtasks-missing", _plan_text(plan_of({"phase": 1, "name": "Empty"})),
     ["phase 1", "missing field `subtasks`"]),
    ("subtasks-and-chunks", _plan_text(plan_of({"phase": 1, "subtasks": [], "chunks": []})),
     ["phase 1", "`subtasks`", "`chunks`"]),
    ("subtask-not-object", _plan_text(plan_of({"phase": 1, "subtasks": ["do it"]})),
     ["phase 1", "subtasks[0]", "a subtask must be an object"]),
    ("subtask-id-missing",
     _plan_text(plan_of({"phase": 1, "subtasks": [{"id": "a"}, {"description": "x"}]})),
     ["phase 1", "subtasks[1]", "field `id`", "required"]),
    ("subtask-id-not-string", _plan_text(plan_of({"phase": 2, "chunks": [{"id": 12}]})),
     ["phase 2", "chunks[0]", "field `id`", "must be a string"]),
    ("duplicate-id-in-phase", _plan_text(plan_of(phase(1, ["a", "b", "a"]))),
     ["phase 1", "subtask 'a'", "duplicate subtask id"]),
    ("duplicate-id-across-phases", _plan_text(plan_of(phase(1, ["a"]), phase(2, ["b", "a"]))),
     ["phase 2", "subtask 'a'", "duplicate subtask id", "also in phase 1"]),
    ("depends-on-unknown-int", _two_phases({"depends_on": [9]}),
     ["phase 2", "field `depends_on`", "unknown phase 9"]),
    ("depends-on-unknown-numeric-string", _two_phases({"depends_on": ["1", "9"]}),
     ["phase 2", "field `depends_on`", "unknown phase '9'"]),
    ("depends-on-unknown-id", _two_phases({"depends_on": ["phase-backend"]}),
     ["phase 2", "field `depends_on`", "unknown phase 'phase-backend'"]),
    ("depends-on-unicode-digit", _two_phases({"depends_on": ["²"]}),
     ["phase 2", "field `depends_on`", "unknown phase '²'"]),
    ("depends-on-not-list", _two_phases({"depends_on": 1}),
     ["phase 2", "field `depends_on` must be a list"]),
    ("cycle-of-two", _two_phases({"depends_on": [1]}, {"depends_on": [2]}),
     ["dependency cycle: phase 1 -> phase 2 -> phase 1"]),
    ("cycle-through-implicit-dependency", _two_phases({}, {"depends_on": ["2"]}),
     ["dependency cycle: phase 1 -> phase 2 -> phase 1"]),
    ("cycle-of-three", _plan_text(plan_of(phase(1, ["a"], depends_on=[3]),
                                          phase(2, ["b"], depends_on=[1]),
                                          phase(3, ["c"], depends_on=[2]))),
     ["dependency cycle: phase 1 -> phase 3 -> phase 2 -> phase 1"]),
    ("cycle-of-three-by-id", _plan_text(plan_of(
        {"id": "p-a", "depends_on": ["p-c"], "subtasks": [{"id": "a"}]},
        {"id": "p-b", "depends_on": ["p-a"], "subtasks": [{"id": "b"}]},
        {"id": "p-c", "depends_on": ["p-b"], "subtasks": [{"id": "c"}]})),
     ["dependency cycle: phase p-a -> phase p-c -> phase p-b -> phase p-a"]),
    ("self-dependency", _plan_text(plan_of(phase(1, ["a"], depends_on=[1]))),
     ["dependency cycle: phase 1 -> phase 1"]),
    ("unknown-status", _one_subtask(status="started"),
     ["phase 1", "subtask 'a'", "field `status`", "'started'"]),
    ("status-not-string", _one_subtask(status=3),
     ["phase 1", "subtask 'a'", "field `status`", "unknown value 3"]),
    ("reserved-id-integration", _with_id("integration"),
     ["phase 1", "subtask 'integration'", "field `id`", "reserved"]),
    ("verification-without-run", _one_subtask(verification={"type": "command"}),
     ["subtask 'a'", "field `verification`", "`run`"]),
    ("verification-run-not-string",
     _one_subtask(verification={"type": "command", "run": ["pytest", "-q"]}),
     ["subtask 'a'", "field `verification`", "`run`"]),
    ("verification-not-object", _one_subtask(verification="pytest -q"),
     ["subtask 'a'", "field `verification`", "object"]),
    ("files-to-modify-not-list", _one_subtask(files_to_modify="src/app.py"),
     ["subtask 'a'", "field `files_to_modify`", "list"]),
    ("files-to-create-not-paths", _one_subtask(files_to_create=["ok.py", 3]),
     ["subtask 'a'", "field `files_to_create`", "list"]),
    ("description-not-string", _one_subtask(description=["step 1"]),
     ["subtask 'a'", "field `description`", "string"]),
]

BAD_IDS = {
    "space": "add user", "dot-dot": "a..b", "tilde": "a~1", "caret": "a^2", "colon": "a:b",
    "question": "a?", "star": "a*", "bracket": "a[1]", "backslash": "a\\b",
    "lock-suffix": "users.lock", "leading-dot": ".hidden", "trailing-dot": "v1.",
    "leading-dash": "-rf", "at-brace": "a@{1}", "control-char": "a\x01b", "newline": "a\nb",
    "delete-char": "a\x7fb", "slash": "api/users", "empty": "", "too-long": "x" * 201,
}
CASES += [(f"bad-id-{name}", _with_id(value),
           ["phase 1", f"subtask {value!r}", "field `id`", "git branch name"])
          for name, value in BAD_IDS.items()]


def _write_raw(repo: Path, content: str | bytes) -> Path:
    path = write_plan(repo, SPEC, "")
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _snapshot(repo: Path) -> tuple[str, str]:
    return git(repo, "branch", "--list", "--all"), git(repo, "worktree", "list", "--porcelain")


def _assert_rejected(repo: Path, plan: Path, before: bytes, *args: str) -> str:
    branches = _snapshot(repo)
    done = run_cli_in_process(repo, *args, SPEC.split("-")[0])
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert "internal error" not in done.stderr, done.stderr
    assert str(plan) in done.stderr, done.stderr
    assert plan.read_bytes() == before
    assert _snapshot(repo) == branches
    assert not (repo / ".orchestrate" / "worktrees").exists()
    return done.stderr


@pytest.mark.parametrize(("content", "words"), [(c, w) for _, c, w in CASES],
                         ids=[name for name, _, _ in CASES])
def test_validate_rejects_malformed_plan(repo: Path, content: str | bytes,
                                         words: list[str]) -> None:
    plan = _write_raw(repo, content)
    before = plan.read_bytes()
    stderr = _assert_rejected(repo, plan, before, "validate")
    for word in words:
        assert word in stderr, f"{word!r} not in:\n{stderr}"
    assert sorted(p.name for p in plan.parent.iterdir()) == [plan.name]


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({name for name, _, _ in CASES}) == len(CASES)


def test_every_problem_is_named_at_once(repo: Path) -> None:
    plan = _write_raw(repo, _plan_text(plan_of(
        phase(1, ["a b", "integration"]),
        {"phase": 2, "subtasks": [{"id": "c", "status": "someday", "files_to_modify": "x"}]})))
    stderr = _assert_rejected(repo, plan, plan.read_bytes(), "validate")
    for word in ["subtask 'a b'", "subtask 'integration'", "field `status`",
                 "field `files_to_modify`"]:
        assert word in stderr


MALFORMED_FOR_COMMANDS = {
    "not-json": '{"phases": [}',
    "cycle": _two_phases({"depends_on": [1]}, {"depends_on": [2]}),
    "bad-id": _with_id("a..b"),
    "unknown-status": _one_subtask(status="started"),
}


@pytest.mark.parametrize("command", [["status"], ["status", "--json"]])
@pytest.mark.parametrize("content", list(MALFORMED_FOR_COMMANDS.values()),
                         ids=list(MALFORMED_FOR_COMMANDS))
def test_status_rejects_malformed_plan(repo: Path, command: list[str], content: str) -> None:
    plan = _write_raw(repo, content)
    _assert_rejected(repo, plan, plan.read_bytes(), *command)
    assert sorted(p.name for p in plan.parent.iterdir()) == [plan.name]


@pytest.mark.parametrize("content", list(MALFORMED_FOR_COMMANDS.values()),
                         ids=list(MALFORMED_FOR_COMMANDS))
def test_build_rejects_malformed_plan(repo: Path, content: str) -> None:
    plan = _write_raw(repo, content)
    _assert_rejected(repo, plan, plan.read_bytes(), "build", "--agent-command", "true")
    assert "orchestrate/" not in git(repo, "branch", "--list", "--all")


def test_valid_plan_is_accepted(repo: Path) -> None:
    """The corpus's building blocks are themselves valid, so each case fails for its own reason."""
    write_plan(repo, SPEC, _plan_text(plan_of(
        phase(1, ["a", "ok"], verification={"type": "command", "run": "true"}),
        phase(2, ["b"], depends_on=["1"], parallel=True),
        {"id": "p-3", "subtasks": [{"id": "c", "status": "todo", "files_to_modify": ["x.py"]}]})))
    done = run_cli_in_process(repo, "validate", "001", check=0)
    assert "valid plan, 3 phases (1 parallel), 4 subtasks" in done.stdout
