"""orchestrate's own record of the refs it wrote, outside the plan (which an agent without a
sandbox can edit) and outside every path a sandbox shows: names.repo_state_dir.

A subtask branch is only merged under its subtask's name while it still contains the head
orchestrate recorded for it (commits added on top, a fix by hand, are fine)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator import names
from orchestrator.plan.specs import Spec

HEADS = "heads.json"
HOOKS = "hooks-at-start"  # the folder git took hooks from when the last build started


def _path(spec: Spec) -> Path:
    return names.repo_state_dir(spec.repo, spec.name) / HEADS


def forget(spec: Spec) -> None:
    """Drop what orchestrate recorded for the spec: its integration branch is about to be made
    anew, so heads, completions and verdicts of a repository that stood at this path before
    (deleted and made again, as tests and scripts do) say nothing about this one. (The shared
    .git fingerprint kept beside them stays: it belongs to the build that is starting.)"""
    folder = names.repo_state_dir(spec.repo, spec.name)
    for name in (HEADS, COMPLETED, VERDICTS):
        (folder / name).unlink(missing_ok=True)


def recorded_heads(spec: Spec) -> dict[str, str]:
    """Subtask id -> the last head orchestrate committed or recorded for it."""
    try:
        data = json.loads(_path(spec).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_head(spec: Spec, subtask_id: str, head: str) -> None:
    """Remember `head` as what orchestrate made of the subtask's branch."""
    def change(data: Any) -> Any:
        return {**(data if isinstance(data, dict) else {}), subtask_id: head}

    _update(_path(spec), change)


def _update(path: Path, change: Callable[[Any], Any]) -> None:
    """Read-modify-write of one JSON file under a lock (parallel subtasks record at once),
    written to a temporary file of its own and renamed over it, so no reader sees half."""
    from filelock import FileLock  # here: `status` never needs it

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_suffix(".lock")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = None
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(change(data), indent=1))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


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
    """Add `subtask_ids` to the completions orchestrate believes."""
    known = believed_completions(spec_folder) or set()
    if subtask_ids <= known and _completed_path(spec_folder).exists():
        return

    def change(data: Any) -> Any:
        before = {str(i) for i in data} if isinstance(data, list) else set()
        return sorted(before | subtask_ids)

    _update(_completed_path(spec_folder), change)


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
    def change(data: Any) -> Any:
        known = data.get(command) if isinstance(data, dict) else None
        return {command: {**(known if isinstance(known, dict) else {}), tree: verdict}}

    _update(_verdicts_path(spec_folder), change)


def hooks_at_start(spec: Spec) -> tuple[str, ...]:
    """Options for `git push`: the hooks folder as it was when the spec's last build started
    (workspace/shared_git.py writes it), so that push runs no hook path an agent set since;
    none before any build, when git's own configuration holds."""
    try:
        folder = (names.repo_state_dir(spec.repo, spec.name) / HOOKS).read_text().strip()
    except OSError:
        return ()
    return ("-c", f"core.hooksPath={folder}") if folder else ()
