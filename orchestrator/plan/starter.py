"""`orchestrate init NAME`: a new spec folder with a small annotated starter plan and spec.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.names import refname_problem
from orchestrator.plan.model import Status, dump_json
from orchestrator.plan.specs import SPEC_ROOTS, Spec
from orchestrator.plan.store import PLAN_FILE

ABOUT = [
    "A starter plan written by `orchestrate init`; edit it, then `orchestrate validate` it.",
    "Phases run in dependency order (`depends_on`: phase numbers or ids; [] = none).",
    "A phase with `parallel_safe: true` runs its subtasks at once, each in its own worktree "
    "and branch; other phases run their subtasks one after another.",
    "A subtask needs a unique `id` (it becomes part of a branch name) and a `description` "
    "(the first line is the commit subject; the rest is for the agent).",
    "`files_to_modify` / `files_to_create` (globs allowed) keep subtasks that touch the same "
    "files apart: they run one after the other instead of conflicting.",
    "`verification`: {\"type\": \"command\", \"run\": \"pytest -q\"} runs after the agent; "
    "a failing command fails the attempt. Types manual, browser, api and e2e are not run.",
    "Statuses are written by orchestrate: pending, in_progress, completed, failed, "
    "blocked, conflict.",
]

SPEC_MD = """# {title}

What the feature is and why, in a few sentences. Every agent gets this file with its
subtask, so say here what all of them need to know: conventions, where things live,
what not to touch.

## Acceptance

- What must be true when the whole plan is done.
"""


def create_spec(repo: Path, name: str, plan_text: str | None = None) -> Spec:
    """Write `.orchestrate/specs/NAME/` with a starter plan (or `plan_text`, already
    validated by the caller) and spec.md; never overwrite."""
    check_spec_name(name)
    for root in SPEC_ROOTS:
        if (repo / root / name).exists():
            raise UsageError(f"argument NAME: {root}/{name} already exists; nothing was "
                             "written", "Pick another name, or edit that spec's "
                             f"{PLAN_FILE}.")
    folder = repo / SPEC_ROOTS[0] / name
    folder.mkdir(parents=True)
    title = _title(name)
    text = dump_json(starter_plan(title)) if plan_text is None else plan_text
    (folder / PLAN_FILE).write_text(text, encoding="utf-8")
    (folder / "spec.md").write_text(SPEC_MD.format(title=title), encoding="utf-8")
    return Spec(repo, name, folder)


def check_spec_name(name: str) -> None:
    """Refuse (exit 2) a NAME that cannot be a spec folder and a branch name component."""
    if not name or name.startswith(".") or "/" in name:
        raise UsageError(f"argument NAME: {name!r} cannot be a spec folder name",
                         "Use a plain folder name such as 001-user-login.")
    if (reason := refname_problem(name)) is not None:
        raise UsageError(f"argument NAME: {name!r} cannot be part of a git branch name: "
                         f"{reason}", "Use letters, digits and dashes, e.g. 001-user-login.")


def _title(name: str) -> str:
    words = name.split("-")
    if words and words[0].isdigit() and len(words) > 1:
        words = words[1:]
    return " ".join(words).replace("_", " ").strip().capitalize() or name


def starter_plan(title: str) -> dict[str, Any]:
    return {
        "feature": title,
        "workflow_type": "feature",
        "_about": ABOUT,
        "phases": [
            {"phase": 1, "name": "Independent pieces", "type": "implementation",
             "parallel_safe": True, "depends_on": [],
             "subtasks": [
                 _subtask("first-piece", "Describe the first change in one line",
                          "docs/first-piece.md"),
                 _subtask("second-piece", "Describe a second change that does not depend on "
                          "the first", "docs/second-piece.md")]},
            {"phase": 2, "name": "Bring them together", "type": "integration",
             "parallel_safe": False, "depends_on": [1],
             "subtasks": [_subtask("wire-up", "Describe what uses both pieces",
                                   "docs/overview.md")]},
        ],
    }


def _subtask(subtask_id: str, description: str, creates: str) -> dict[str, Any]:
    return {"id": subtask_id, "description": description, "status": Status.PENDING,
            "files_to_modify": [], "files_to_create": [creates]}
