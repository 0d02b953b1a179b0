"""orchestrate's own record of the refs it wrote, outside the plan (which an agent without a
sandbox can edit) and outside every path a sandbox shows: names.repo_state_dir.

A subtask branch is only merged under its subtask's name while it still contains the head
orchestrate recorded for it (commits added on top, a fix by hand, are fine)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator import names
from orchestrator.plan.specs import Spec

HEADS = "heads.json"


def _path(spec: Spec) -> Path:
    return names.repo_state_dir(spec.repo, spec.name) / HEADS


def recorded_heads(spec: Spec) -> dict[str, str]:
    """Subtask id -> the last head orchestrate committed or recorded for it."""
    try:
        data = json.loads(_path(spec).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_head(spec: Spec, subtask_id: str, head: str) -> None:
    """Remember `head` as what orchestrate made of the subtask's branch (written atomically)."""
    heads = recorded_heads(spec)
    heads[subtask_id] = head
    path = _path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(heads, indent=1))
    os.replace(temporary, path)


# --- which `completed` statuses orchestrate wrote (or found when it first saw the spec) -------

COMPLETED = "completed.json"


def _completed_path(spec_folder: Path) -> Path:
    repo = spec_folder.parents[2]  # <repo>/.orchestrate/specs/<name> (or .auto-claude/)
    return names.repo_state_dir(repo, spec_folder.name) / COMPLETED


def believed_completions(spec_folder: Path) -> set[str] | None:
    """The subtasks orchestrate made (or found) completed; None before it first saw the spec."""
    try:
        data = json.loads(_completed_path(spec_folder).read_text())
    except (OSError, ValueError):
        return None
    return {str(i) for i in data} if isinstance(data, list) else None


def record_completions(spec_folder: Path, subtask_ids: set[str]) -> None:
    """Add `subtask_ids` to the completions orchestrate believes (written atomically)."""
    known = believed_completions(spec_folder) or set()
    if subtask_ids <= known and _completed_path(spec_folder).exists():
        return
    path = _completed_path(spec_folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(sorted(known | subtask_ids), indent=1))
    os.replace(temporary, path)


# --- check verdicts orchestrate reached (a verdict in the plan counts only if here too) -------

VERDICTS = "checks.json"


def _verdicts_path(spec_folder: Path) -> Path:
    return names.repo_state_dir(spec_folder.parents[2], spec_folder.name) / VERDICTS


def recorded_verdicts(spec_folder: Path, command: str) -> dict[str, str]:
    """Tree id -> pass | fail for `command`, as orchestrate judged them."""
    try:
        data = json.loads(_verdicts_path(spec_folder).read_text())
    except (OSError, ValueError):
        return {}
    found = data.get(command) if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def record_verdict(spec_folder: Path, command: str, tree: str, verdict: str) -> None:
    path = _verdicts_path(spec_folder)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data = {command: {**(data.get(command) or {}), tree: verdict}} if isinstance(data, dict) \
        else {command: {tree: verdict}}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)
