"""Commit what an agent left in its worktree, with plumbing (no hooks, no signing, one scan of
the working tree): never `.orchestrate/` or `.auto-claude/`, nor files copied in from the
user's checkout (`.env`: secrets) unless the branch already tracks them.

In a copy-on-write worktree (workspace/overlay.py) nothing scans the tree: the paths its upper
layer holds, and those whose index entry differs from the lower layer's commit (what the
agent's own git commands staged or committed), are all that can differ from `git add --all`'s
view, so exactly those are staged (`update-index --add --remove`), less the ignored ones."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import trio

from orchestrator import names
from orchestrator.door.processes import git, git_out
from orchestrator.workspace import overlay
from orchestrator.workspace.worktrees import remove_stale_index_lock

NEVER_COMMITTED = names.PRIVATE_DIRS
PATHSPECS_AT_ONCE = 1000


async def commit_work(worktree: Path, message: str, copied: tuple[str, ...],
                      pinned: tuple[str, ...] = ()) -> str:
    """Commit everything left in `worktree` on its branch; return the new head. `pinned`:
    git options for `add` (SharedGit.pinned)."""
    await remove_stale_index_lock(worktree)
    head, head_tree = (await git_out(worktree, "rev-parse", "HEAD", "HEAD^{tree}")).split()
    staged = await stage_everything(worktree, pinned, head)
    if unwanted := await _unwanted(worktree, staged, copied):
        await git(worktree, "reset", "--quiet", "--", *unwanted)
    tree = await git_out(worktree, "write-tree")
    if tree == head_tree:  # nothing staged, or nothing that belongs in the commit
        return head
    made = await git(worktree, "commit-tree", "--no-gpg-sign", tree, "-p", head,
                     input=message.encode())
    commit = made.stdout.strip()
    await git(worktree, "update-ref", "-m", "orchestrate: commit the agent's work", "HEAD",
              commit, head)
    return commit


async def stage_everything(worktree: Path, pinned: tuple[str, ...] = (),
                           head: str | None = None) -> set[str] | None:
    """`git add --all`: from the upper layer's changes in a copy-on-write worktree.
    `pinned`: git options for the exclude rules (SharedGit.pinned). Returns the paths staged
    when they are all that differs from `head` (a copy-on-write worktree whose index and
    HEAD no git command of the agent's moved), else None."""
    found = await trio.to_thread.run_sync(overlay.changes, worktree)
    if found is None:
        await git(worktree, *pinned, "add", "--all")
        return None
    staged = await stage_changes(worktree, found, pinned)
    return staged if found.index_untouched and head == found.base else None


async def stage_changes(worktree: Path, found: overlay.Changes,
                        pinned: tuple[str, ...] = ()) -> set[str] | None:
    """Stage what `git add --all` would, reading only the paths that can have changed;
    return the paths staged (None if it had to fall back on `git add --all`)."""
    paths = set(found.written) | set(found.removed)
    paths.update(await _tracked_under(worktree, found.removed + found.replaced))
    if not found.index_untouched:  # the agent's git commands may have staged or committed
        moved = await git(worktree, "diff-index", "--cached", "--name-only", "-z",
                          "--no-renames", found.base)
        paths.update(p for p in moved.stdout.split("\0") if p)
    paths = {p for p in paths if p.split("/", 1)[0] not in NEVER_COMMITTED}
    if not paths:
        return paths
    ignored = await _ignored(worktree, paths, pinned, found)
    if ignored is None:
        await git(worktree, *pinned, "add", "--all")  # the exclude rules could not be read
        return None
    paths -= ignored
    if not found.index_untouched:  # the shared index has no flags of an agent
        paths -= await _flagged(worktree, sorted(paths))
    if paths:
        await git(worktree, "update-index", "--add", "--remove", "-z", "--stdin",
                  input=_nul_list(paths))
    return paths


async def _ignored(worktree: Path, paths: set[str], pinned: tuple[str, ...],
                   found: overlay.Changes) -> set[str] | None:
    """Those of `paths` that `git add --all` leaves out, untracked and ignored (None: the
    exclude rules could not be read). While the index is still the lower layer's, check-ignore
    does not read it (0.08 s a commit at 200,000 entries): what it names that the base's tree
    has is tracked, so not left out."""
    untouched = found.index_untouched
    listed = await git(worktree, *pinned, "check-ignore", *(["--no-index"] if untouched else []),
                       "-z", "--stdin", check=False, input=_nul_list(paths))
    if listed.returncode not in (0, 1):
        return None
    ignored = {path for path in listed.stdout.split("\0") if path}
    if untouched and ignored:
        ignored -= await _in_tree(worktree, found.base, sorted(ignored))
    return ignored


async def _in_tree(worktree: Path, commit: str, paths: list[str]) -> set[str]:
    """Those of `paths` that `commit`'s tree has as a file or link, as the index would (read
    from the tree, not the index)."""
    found: set[str] = set()
    for start in range(0, len(paths), PATHSPECS_AT_ONCE):
        chunk = paths[start:start + PATHSPECS_AT_ONCE]
        listed = await git(worktree, "ls-tree", "-z", "--full-tree", commit, "--",
                           *(f":(top,literal){path}" for path in chunk))
        found.update(path for info, _, path in (entry.partition("\t") for entry in
                                                listed.stdout.split("\0") if entry)
                     if info.split(" ")[1] != "tree")
    return found


async def _unwanted(worktree: Path, staged: set[str] | None,
                    copied: tuple[str, ...]) -> list[str]:
    """Pathspecs of what is staged but never committed: orchestrate's folders, and files
    copied in from the user's checkout that HEAD does not track. `staged`: the paths staged
    against HEAD, when known (no private folder among them); else git lists them."""
    if staged is None:
        changes = await _staged(worktree)
        return sorted({spec for status, path in changes
                       if (spec := _unwanted_spec(status, path, copied))})
    maybe_added = sorted(staged & set(copied))
    tracked = await _in_tree(worktree, "HEAD", maybe_added) if maybe_added else set()
    return [f":(top,literal){path}" for path in maybe_added if path not in tracked]


async def _tracked_under(worktree: Path, folders: list[str]) -> set[str]:
    """The index entries at or under each of `folders` (deleted or replaced in the tree)."""
    found: set[str] = set()
    for start in range(0, len(folders), PATHSPECS_AT_ONCE):
        chunk = folders[start:start + PATHSPECS_AT_ONCE]
        listed = await git(worktree, "ls-files", "-z", "--cached", "--",
                           *(f":(top,literal){path}" for path in chunk))
        found.update(p for p in listed.stdout.split("\0") if p)
    return found


async def _flagged(worktree: Path, paths: list[str]) -> set[str]:
    """Those of `paths` whose index entry is marked assume-unchanged or skip-worktree, which
    `git add --all` leaves as they are."""
    found: set[str] = set()
    for start in range(0, len(paths), PATHSPECS_AT_ONCE):
        chunk = paths[start:start + PATHSPECS_AT_ONCE]
        listed = await git(worktree, "ls-files", "-v", "-z", "--",
                           *(f":(top,literal){path}" for path in chunk))
        found.update(entry[2:] for entry in listed.stdout.split("\0")
                     if entry and (entry[0].islower() or entry[0] == "S"))
    return found


def _nul_list(paths: Iterable[str]) -> bytes:
    return "".join(f"{path}\0" for path in sorted(paths)).encode("utf-8", "surrogateescape")


async def _staged(worktree: Path) -> list[tuple[str, str]]:
    """(status letter, path) of every change staged against HEAD."""
    fields = (await git(worktree, "diff", "--cached", "--name-status", "--no-renames", "-z",
                        "HEAD")).stdout.split("\0")
    return [(fields[i][:1], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


def _unwanted_spec(status: str, path: str, copied: tuple[str, ...]) -> str | None:
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
    if unwanted := await _unwanted(worktree, None, copied):
        await git(worktree, "reset", "--quiet", "--", *unwanted)
    tree = await git_out(worktree, "write-tree")
    parents = ["-p", head, *(["-p", merging] if merging else [])]
    made = await git(worktree, "commit-tree", "--no-gpg-sign", tree, *parents,
                     input=message.encode())
    commit = made.stdout.strip()
    await git(worktree, "update-ref", "-m", "orchestrate: commit the resolution", "HEAD",
              commit, head)
    return commit
