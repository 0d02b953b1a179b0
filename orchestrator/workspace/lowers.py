"""The lower layers of copy-on-write worktrees (workspace/overlay.py): one checkout per base
commit, found, chosen or made, one at a time per build."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator.door.processes import git, git_out
from orchestrator.workspace.overlay import (
    Lower,
    existing_lower,
    lower_root,
    lowers_of,
    remove_folder,
    touch,
)

NEAR_CHANGES = 2000  # a lower this close to a start commit is used instead of a new checkout
CHECKOUT_WORKERS = 8
DATED_AHEAD_FROM = 2000  # index entries from which a new lower's index is dated ahead


@dataclass
class Lowers:
    """The lower layers of one repository: found, chosen and made (one at a time)."""

    repo: Path
    _lock: trio.Lock = field(default_factory=trio.Lock)

    async def for_start(self, start: str) -> Lower:
        """A lower layer to start a worktree at commit `start` from: `start`'s own, else the
        one closest to it if it differs by at most NEAR_CHANGES files, else a new checkout."""
        commit = await git_out(self.repo, "rev-parse", "--verify", f"{start}^{{commit}}")
        async with self._lock:
            lower = (existing_lower(self.repo, commit) or await self._nearest(commit)
                     or await self._make(commit))
            await _until_usable(lower)
            return lower

    async def _nearest(self, commit: str) -> Lower | None:
        best: tuple[int, Lower] | None = None
        for lower in lowers_of(self.repo)[:3]:
            diff = await git(self.repo, "diff-tree", "-r", "--name-only", "-z", "--no-renames",
                             lower.commit, commit, check=False)
            if diff.returncode != 0:
                continue
            count = diff.stdout.count("\0")
            if count <= NEAR_CHANGES and (best is None or count < best[0]):
                best = (count, lower)
        if best is None:
            return None
        touch(best[1].tree.parent)
        return best[1]

    async def _make(self, commit: str) -> Lower:
        """Check `commit` out into a new lower layer: into a temporary folder, then renamed
        into place (a build killed meanwhile leaves only the temporary folder)."""
        root = lower_root(self.repo)
        temporary = root / f".tmp-{commit}-{os.getpid()}"
        await trio.to_thread.run_sync(_make_dirs, temporary / "tree")
        env = {"GIT_INDEX_FILE": str(temporary / "index"), "GIT_WORK_TREE": str(temporary / "tree")}
        await git(self.repo, "read-tree", commit, env=env)
        await git(self.repo, "-c", f"checkout.workers={CHECKOUT_WORKERS}", "checkout-index",
                  "--all", "--force", "-u", env=env)
        await trio.to_thread.run_sync(not_racy, temporary / "index")
        final = root / commit
        try:
            await trio.to_thread.run_sync(os.rename, temporary, final)
        except OSError:  # another build made it meanwhile
            if (found := existing_lower(self.repo, commit)) is None:
                raise
            await trio.to_thread.run_sync(remove_folder, temporary)
            return found
        return Lower(commit, final / "tree", final / "index")


def _make_dirs(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)
    path.mkdir(parents=True)


async def _until_usable(lower: Lower) -> None:
    """Wait for the moment `not_racy` dated the lower's index (at most a second after it
    was made)."""
    dated = (await trio.Path(lower.index).stat()).st_mtime
    await trio.sleep(max(0.0, dated - time.time()))


def not_racy(index: Path) -> None:
    """Date the index of a large checkout after every file it lists. git counts a file written
    in the same second as the index (it compares whole seconds) as possibly changed since: each
    worktree's first index write would then read and hash every such file, all of a quick
    checkout's (0.2 s per subtask at 20,000 files). The lower's files are never written again,
    but a worktree's copies of them are, and a copy written before that moment, in the second
    its original was checked out, with the same size, would look unchanged (the overlay keeps
    the original's inode number): so no worktree gets the layer before then (`_until_usable`,
    at most a second once per build). A small checkout keeps git's own check: hashing its
    few files again costs less than the wait."""
    with index.open("rb") as header:
        entries = int.from_bytes(header.read(12)[8:12], "big")  # "DIRC", version, entries
    if entries < DATED_AHEAD_FROM:
        return
    later = (int(time.time()) + 1) * 1_000_000_000
    os.utime(index, ns=(later, later))
