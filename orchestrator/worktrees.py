"""A subtask's worktree and branch: create, reuse, repair, park and remove.

Worktrees live in `<repo>/.orchestrate/worktrees/<spec>/<subtask>`. Finished ones are parked in
`.orchestrate/worktrees/.pool/` and reused for later subtasks (a `checkout -B` plus a clean is
far cheaper than a fresh `git worktree add` on a large repository); ignored files such as
`node_modules/` stay warm. Nothing here ever runs in the user's own working tree.
Commands that read or write the shared worktree metadata run one at a time (`Worktrees.lock`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator.git import git, git_out

POOL = ".pool"


@dataclass(frozen=True)
class Worktrees:
    repo: Path
    spec: str
    reuse: bool = True
    # `git worktree` and `checkout -B` read every worktree's metadata and fail on one that a
    # concurrent `worktree add` has half written ("failed to read .../commondir"): one at a time.
    lock: trio.Lock = field(default_factory=trio.Lock, compare=False, repr=False)

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

    async def prepare(self, subtask_id: str, branch: str, base: str) -> Path:
        """A clean worktree at `path_for(subtask_id)` on `branch`, reset to `base`."""
        async with self.lock:
            path, fresh = await self._claim(subtask_id, branch, base)
        if fresh:  # the slow part, checking out the files, runs outside the lock
            await git(path, "reset", "--hard", "--quiet")
        else:
            await git(path, "clean", "-ffdq")
        return path

    async def _claim(self, subtask_id: str, branch: str, base: str) -> tuple[Path, bool]:
        """Register the worktree on `branch` at `base`; True if it still needs a checkout."""
        path = self.path_for(subtask_id)
        registered = await self._registered()
        if path in registered:
            if not (path / ".git").exists():
                await self._forget(path)
            else:
                await self._switch(path, branch, base)
                return path, False
        elif path.exists():
            await trio.to_thread.run_sync(_remove_tree, path)  # left by a crash, unregistered
        if parked := await self._take_parked(registered, path):
            await self._switch(parked, branch, base)
            return parked, False
        path.parent.mkdir(parents=True, exist_ok=True)
        await git(self.repo, "worktree", "add", "--quiet", "--force", "--no-track",
                  "--no-checkout", "-B", branch, str(path), base)
        return path, True

    async def _switch(self, path: Path, branch: str, base: str) -> None:
        await remove_stale_index_lock(path)
        await git(path, "checkout", "--quiet", "--force", "--no-track", "-B", branch, base)

    async def _registered(self) -> set[Path]:
        listing = await git_out(self.repo, "worktree", "list", "--porcelain", "-z")
        return {Path(line.removeprefix("worktree ")) for line in listing.split("\0")
                if line.startswith("worktree ")}

    async def _forget(self, path: Path) -> None:
        await trio.to_thread.run_sync(_remove_tree, path)
        await git(self.repo, "worktree", "prune")

    async def _take_parked(self, registered: set[Path], target: Path) -> Path | None:
        if not self.reuse:
            return None
        pool = self.root / POOL
        for parked in sorted(p for p in registered if p.parent == pool
                             and p.name.startswith(self.spec + "--")):
            target.parent.mkdir(parents=True, exist_ok=True)
            moved = await git(self.repo, "worktree", "move", str(parked), str(target),
                              check=False)
            if moved.returncode == 0:  # else another task took it first, or it is broken
                return target
        return None

    async def release(self, subtask_id: str, *, keep: bool) -> None:
        """After a merge: keep the worktree, park it for reuse, or remove it."""
        path = self.path_for(subtask_id)
        if keep or not path.exists():
            return
        async with self.lock:
            await self._park_or_remove(subtask_id)

    async def _park_or_remove(self, subtask_id: str) -> None:
        path = self.path_for(subtask_id)
        if self.reuse:
            pool = self.root / POOL
            pool.mkdir(parents=True, exist_ok=True)
            target = pool / f"{self.spec}--{subtask_id}"
            await git(path, "checkout", "--quiet", "--detach")
            if (await git(self.repo, "worktree", "move", str(path), str(target),
                          check=False)).returncode == 0:
                return
        await git(self.repo, "worktree", "remove", "--force", "--force", str(path), check=False)
        if path.exists():
            await self._forget(path)


async def remove_stale_index_lock(worktree: Path) -> None:
    """Delete an index.lock left in a subtask's worktree: its agent's process group is gone,
    so the lock can only be stale."""
    lock = await git_out(worktree, "rev-parse", "--path-format=absolute", "--git-path",
                         "index.lock")
    await trio.Path(lock).unlink(missing_ok=True)


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
