"""Commit what an agent left in its worktree, with plumbing (no hooks, no signing, one scan of
the working tree): never `.orchestrate/` or `.auto-claude/`, nor files copied in from the
user's checkout (`.env`: secrets) unless the branch already tracks them."""

from __future__ import annotations

from pathlib import Path

from orchestrator import names
from orchestrator.door.processes import git, git_out
from orchestrator.workspace.worktrees import remove_stale_index_lock

NEVER_COMMITTED = names.PRIVATE_DIRS


async def commit_work(worktree: Path, message: str, copied: tuple[str, ...],
                      pinned: tuple[str, ...] = ()) -> str:
    """Commit everything left in `worktree` on its branch; return the new head. `pinned`:
    git options for `add` (SharedGit.pinned)."""
    await remove_stale_index_lock(worktree)
    await git(worktree, *pinned, "add", "--all")
    head = await git_out(worktree, "rev-parse", "HEAD")
    excluded = [_unwanted(status, path, copied) for status, path in await _staged(worktree)]
    if unwanted := sorted({spec for spec in excluded if spec}):
        await git(worktree, "reset", "--quiet", "--", *unwanted)
    if all(excluded):  # nothing staged, or nothing that belongs in the commit
        return head
    tree = await git_out(worktree, "write-tree")
    made = await git(worktree, "commit-tree", "--no-gpg-sign", tree, "-p", head,
                     input=message.encode())
    commit = made.stdout.strip()
    await git(worktree, "update-ref", "-m", "orchestrate: commit the agent's work", "HEAD",
              commit, head)
    return commit


async def _staged(worktree: Path) -> list[tuple[str, str]]:
    """(status letter, path) of every change staged against HEAD."""
    fields = (await git(worktree, "diff", "--cached", "--name-status", "--no-renames", "-z",
                        "HEAD")).stdout.split("\0")
    return [(fields[i][:1], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


def _unwanted(status: str, path: str, copied: tuple[str, ...]) -> str | None:
    """The pathspec that takes `path` out of the commit, or None if it belongs in it."""
    top = path.split("/", 1)[0]
    if top in NEVER_COMMITTED:
        return f":(top,literal){top}"
    if status == "A" and path in copied:
        return f":(top,literal){path}"
    return None


async def commit_merge(worktree: Path, message: str, copied: tuple[str, ...], *, head: str,
                       merging: str | None, pinned: tuple[str, ...] = ()) -> str:
    """Commit the merge in progress in `worktree` (everything left there staged, as for
    commit_work): a merge commit of `head` and `merging`, or a plain commit on `head` when
    there was nothing to merge. Moves the branch from `head` only; returns the new commit."""
    await remove_stale_index_lock(worktree)
    await git(worktree, *pinned, "add", "--all")
    excluded = [_unwanted(status, path, copied) for status, path in await _staged(worktree)]
    if unwanted := sorted({spec for spec in excluded if spec}):
        await git(worktree, "reset", "--quiet", "--", *unwanted)
    tree = await git_out(worktree, "write-tree")
    parents = ["-p", head, *(["-p", merging] if merging else [])]
    made = await git(worktree, "commit-tree", "--no-gpg-sign", tree, *parents,
                     input=message.encode())
    commit = made.stdout.strip()
    await git(worktree, "update-ref", "-m", "orchestrate: commit the resolution", "HEAD",
              commit, head)
    return commit
