"""A subtask's worktree and branch: create, reuse, repair, park and remove.

Worktrees live in `<repo>/.orchestrate/worktrees/<spec>/<subtask>`. As soon as a subtask's work
is committed its worktree is parked in `.orchestrate/worktrees/.pool/` (the branch holds the
work; merging needs no worktree) and reused by the next subtask of any spec in the repository:
a `checkout -B` plus a clean is far cheaper than a fresh `git worktree add` on a large
repository, and ignored files such as `node_modules/` stay warm. The pool keeps at most
`pool_limit` worktrees. A build makes a fresh worktree only while fewer than `fresh_limit`
of its subtasks hold one; otherwise it waits for the next parked one, because on a large
repository several checkouts at once starve the disk for everybody. Nothing here ever runs in
the user's own working tree.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator.failpoints import failpoint
from orchestrator.git import GitError, GitResult, git, git_out

POOL = ".pool"


@dataclass
class Worktrees:
    repo: Path
    spec: str
    reuse: bool = True
    pool_limit: int = 8
    fresh_limit: int = 5
    in_use: int = 0  # subtasks of this build holding or obtaining a worktree
    # git's worktree bookkeeping (.git/worktrees/) is not safe against concurrent changes
    _admin_lock: trio.Lock = field(default_factory=trio.Lock)
    _changed: trio.Event = field(default_factory=trio.Event)  # set when one is parked or freed

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


    async def _admin(self, *args: str, check: bool = True) -> GitResult:
        async with self._admin_lock:
            return await git(self.repo, "worktree", *args, check=check)

    @property
    def root(self) -> Path:
        return self.repo / ".orchestrate" / "worktrees"

    def path_for(self, subtask_id: str) -> Path:
        return self.root / self.spec / subtask_id

    async def exclude_orchestrate_dir(self) -> None:
        """Make git ignore `.orchestrate/` in every worktree via the shared info/exclude."""
        common = Path(await git_out(self.repo, "rev-parse", "--path-format=absolute",
                                    "--git-common-dir"))
        exclude = common / "info" / "exclude"
        text = exclude.read_text() if exclude.exists() else ""
        if not any(line.strip() in ("/.orchestrate/", ".orchestrate/", "/.orchestrate")
                   for line in text.splitlines()):
            exclude.parent.mkdir(parents=True, exist_ok=True)
            sep = "" if not text or text.endswith("\n") else "\n"
            exclude.write_text(f"{text}{sep}/.orchestrate/\n")

    @asynccontextmanager
    async def hold(self, subtask_id: str, branch: str, base: str) -> AsyncIterator[Path]:
        """A clean worktree at `path_for(subtask_id)` on `branch`, reset to `base`: its own
        from an earlier run, a parked one, or a fresh one; held until the block ends."""
        path = self.path_for(subtask_id)
        self.in_use += 1
        try:
            await self._obtain(path, branch, base)
            yield path
        finally:
            self.in_use -= 1
            self._notify()

    async def _obtain(self, path: Path, branch: str, base: str) -> None:
        registered = await self._registered()
        if path in registered and (path / ".git").exists():
            try:
                await self._reset(path, branch, base)
                return
            except GitError:  # e.g. an agent damaged its .git file: start afresh
                pass
        if path in registered:
            await self._forget(path)
        elif await trio.Path(path).exists():
            await trio.to_thread.run_sync(_remove_tree, path)  # left by a crash, unregistered
        while not await self._take_parked(registered, path):
            if self.in_use <= self.fresh_limit:
                await self._create(path, branch, base)
                return
            changed = self._changed
            await changed.wait()
            registered = await self._registered()
        await self._reset(path, branch, base)

    async def _create(self, path: Path, branch: str, base: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await self._admin("add", "--quiet", "--force", "--no-checkout", "--no-track", "-B",
                          branch, str(path), base)
        await git(path, "reset", "--hard", "--quiet")  # the slow part, outside the lock

    async def _reset(self, path: Path, branch: str, base: str) -> None:
        await remove_stale_index_lock(path)
        await git(path, "checkout", "--quiet", "--force", "--no-track", "-B", branch, base)
        await git(path, "clean", "-ffdq")

    async def _registered(self) -> set[Path]:
        listing = (await self._admin("list", "--porcelain", "-z")).stdout
        return {Path(line.removeprefix("worktree ")) for line in listing.split("\0")
                if line.startswith("worktree ")}

    async def _forget(self, path: Path) -> None:
        await trio.to_thread.run_sync(_remove_tree, path)
        await self._admin("prune")

    async def _take_parked(self, registered: set[Path], target: Path) -> bool:
        if not self.reuse:
            return False
        pool = self.root / POOL
        parked = [p for p in registered if p.parent == pool]
        for parked_path in sorted(parked, key=lambda p: not p.name.startswith(self.spec + "--")):
            target.parent.mkdir(parents=True, exist_ok=True)
            moved = await self._admin("move", str(parked_path), str(target), check=False)
            if moved.returncode == 0:  # else another task took it first, or it is broken
                return True
        return False

    async def release(self, subtask_id: str, *, keep: bool) -> None:
        """Once the work is committed: keep the worktree, park it for reuse, or remove it."""
        path = self.path_for(subtask_id)
        if keep or not path.exists():
            return
        pool = self.root / POOL
        if self.reuse and _count_dirs(pool) < self.pool_limit:
            pool.mkdir(parents=True, exist_ok=True)
            target = pool / f"{self.spec}--{subtask_id}"
            await git(path, "checkout", "--quiet", "--detach")  # frees the branch
            failpoint("worktree-detached")
            if (await self._admin("move", str(path), str(target), check=False)).returncode == 0:
                self._notify()
                return
        await self._admin("remove", "--force", "--force", str(path), check=False)
        if path.exists():
            await self._forget(path)


async def remove_stale_index_lock(worktree: Path) -> None:
    """Delete an index.lock left in a subtask's worktree: its agent's process group is gone,
    so the lock can only be stale."""
    lock = await git_out(worktree, "rev-parse", "--path-format=absolute", "--git-path",
                         "index.lock")
    await trio.Path(lock).unlink(missing_ok=True)


def _count_dirs(folder: Path) -> int:
    try:
        return sum(1 for entry in folder.iterdir() if entry.is_dir())
    except FileNotFoundError:
        return 0


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


async def copy_untracked(repo: Path, worktree: Path, names: tuple[str, ...]) -> None:
    """Copy files like `.env` that exist in the user's checkout but not in the new worktree."""
    for name in names:
        source, target = repo / name, worktree / name
        if source.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            await trio.to_thread.run_sync(shutil.copy2, source, target)
