"""Checks on what an agent left in its worktree, before anything of it is committed."""

from __future__ import annotations

from pathlib import Path

import trio

from orchestrator.door.processes import git
from orchestrator.workspace import overlay
from orchestrator.workspace.commit import NEVER_COMMITTED

SHOWN = 5


async def nested_repositories(worktree: Path) -> list[str]:
    """Untracked folders that hold a git repository of their own.

    `git ls-files --others` lists such a folder as one `path/` entry; `git add` would record it
    as a gitlink, a pointer to a commit that exists only inside that folder.
    """
    found = await trio.to_thread.run_sync(overlay.changes, worktree)
    if found is not None and not found.nested_git:
        return []  # a copy-on-write worktree: a new repository's .git would be in its upper layer
    where = [f":(top,literal){path}" for path in found.nested_git] if found else []
    listing = await git(worktree, "ls-files", "--others", "--exclude-standard", "-z", "--",
                        *where)
    private = tuple(f"{name}/" for name in NEVER_COMMITTED)
    return [entry for entry in listing.stdout.split("\0")
            if entry.endswith("/") and not entry.startswith(private)]


async def nested_repository_problem(worktree: Path) -> str | None:
    nested = await nested_repositories(worktree)
    if not nested:
        return None
    shown = ", ".join(repr(path) for path in nested[:SHOWN])
    more = f" and {len(nested) - SHOWN} more" if len(nested) > SHOWN else ""
    return (f"the agent left nested git repositories, which would be committed as links to "
            f"commits that exist nowhere else: {shown}{more}; remove their .git folders to "
            "commit the files, or add them as submodules")
