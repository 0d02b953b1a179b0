"""One fixed, deterministic build outcome for report, review and clean tests: real branches and
merges made by integrate() with pinned dates (so stable SHAs), and a hand-written plan whose
subtasks carry `orchestrate` records pointing at them.

    phase 1 (sequential)  setup   merged
    phase 2 (parallel)    api     merged       notes.txt line 5, the odd path line 2
                          ui      conflict     notes.txt line 5 (content conflict with api)
                          docs    merged       the odd path line 19, docs/guide.md
                          lint    failed
    phase 3 (sequential)  release blocked
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from merge.integrate import Candidate, MergeResult, integrate
from tests.conftest import git, write_plan
from tests.merge_helpers import INTEGRATION, LINES, SPEC, candidate, edit, start

ODD_PATH = "docs/a|b, `c`: d.md"
NOW = "2026-01-02T03:04:05Z"


def build_scenario(repo: Path) -> Path:
    """Make the branches and merges in `repo` and write the plan; returns the plan's path."""
    base = start(repo, {"notes.txt": LINES, ODD_PATH: LINES})
    setup = candidate(repo, base, "setup", {"config.toml": "debug = false\n"}, group=None)
    [setup_result] = integrate(repo, INTEGRATION, [setup])
    phase_base = git(repo, "rev-parse", INTEGRATION)
    api = candidate(repo, phase_base, "api", {"notes.txt": edit(LINES, 5, "five by api"),
                                              ODD_PATH: edit(LINES, 2, "two by api")}, "2")
    ui = candidate(repo, phase_base, "ui", {"notes.txt": edit(LINES, 5, "five by ui")}, "2")
    docs = candidate(repo, phase_base, "docs", {ODD_PATH: edit(LINES, 19, "nineteen by docs"),
                                                "docs/guide.md": "# Guide\n"}, "2")
    results = integrate(repo, INTEGRATION, [api, ui, docs])
    assert [r.outcome for r in results] == ["merged", "conflict", "merged"]
    git(repo, "branch", f"orchestrate/{SPEC}/lint", phase_base)
    subtasks = {c.subtask_id: _record(c, r) for c, r in
                [(setup, setup_result), *zip([api, ui, docs], results, strict=True)]}
    subtasks["lint"] = _failed(phase_base)
    plan = {
        "feature": "Demo feature",
        "orchestrate": {"integration_branch": INTEGRATION, "base": base,
                        "updated_at": NOW},
        "phases": [
            _phase(1, "Setup", False, [("setup", subtasks["setup"])]),
            _phase(2, "Features", True, [(s, subtasks[s]) for s in ("api", "ui", "docs",
                                                                     "lint")]),
            _phase(3, "Release", False, [("release", {"status": "blocked"})]),
        ],
    }
    return write_plan(repo, SPEC, plan)


def _record(c: Candidate, result: MergeResult) -> dict[str, Any]:
    merged = result.outcome != "conflict"
    meta = {"branch": c.branch, "worktree": f".orchestrate/worktrees/{SPEC}/{c.subtask_id}",
            "base": c.base, "head": c.head, "attempts": 1,
            "merge": "merged" if merged else "conflict",
            "merge_commit": result.merge_commit if merged else None,
            "overlaps": list(result.overlaps)}
    return {"status": "completed" if merged else "conflict", "orchestrate": meta}


def _failed(base: str) -> dict[str, Any]:
    return {"status": "failed", "orchestrate": {"branch": f"orchestrate/{SPEC}/lint",
                                                "base": base, "attempts": 2,
                                                "error": "exit code 1"}}


def _phase(number: int, name: str, parallel: bool,
           subtasks: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return {"phase": number, "name": name, "parallel_safe": parallel,
            "subtasks": [{"id": sid, "description": f"Do {sid}", **fields}
                         for sid, fields in subtasks]}
