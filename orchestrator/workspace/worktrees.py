"""A subtask's worktree and branch: create, reuse, repair, park and remove.

Worktrees live in `<repo>/.orchestrate/worktrees/<spec>/<subtask>`. As soon as a subtask's work
is committed its worktree is parked in `.orchestrate/worktrees/.pool/` (the branch holds the
work; merging needs no worktree) and reused by the next subtask of any spec in the repository:
switching a clean worktree to a new branch is far cheaper than a fresh `git worktree add` on a
large repository, and ignored files such as `node_modules/` stay warm. The pool keeps at most
`pool_limit` worktrees. Subtasks wait for a worktree in line, first come first served: the
first in line takes the next parked worktree or, while fewer than `checkouts_at_once` fresh
checkouts are under way (and fewer than `pool_limit` worktrees are held), starts one of its
own, so the subtask whose agent slot opens first has its worktree first, and no checkout waits
for another to end. The bound keeps the disk from thrashing: one checkout of a large
repository already keeps two cores busy, but where the file system's latency rather than the
CPU bounds a checkout (a loaded machine, a network disk), two at once take half as long as two
in a row. A worktree handed back to a subtask after the merge stage (`on_branch`, e.g. one in
conflict) neither waits in line nor counts against the pool's limit: it stays for the user, so
only its own checkout could ever free room.

`git worktree` commands read every worktree's metadata and fail on one that a concurrent
`worktree add` has half written ("failed to read .../commondir"), so they run one at a time;
switching branches avoids `git checkout` (which reads them too) and uses symbolic-ref and
reset. Nothing here ever runs in the user's own working tree.

Checkouts use git's parallel checkout (`checkout.workers`) unless the user configured
it. Measured on a 2-core machine with 20,000 files: 0.9 s from one process against 0.6 s; and
within minutes of a mass deletion on a journal-less ext4, where every new inode costs a scan
of the recently freed ones (`recently_deleted` in fs/ext4/ialloc.c), 11 s against 0.9 s.
A build removes a worktree only when the pool is full or reuse is turned off.

Where the kernel lets orchestrate mount an overlay (`workspace = auto`, as root), a fresh
worktree is a copy-on-write one instead (workspace/overlay.py): cheap to make whatever the
tree's size, so it is never parked, and removed (unmounted) as soon as its work is committed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from merge import guard_worktrees
from orchestrator import names
from orchestrator.door.processes import (
    WORKTREE_LIST,
    GitError,
    GitResult,
    git,
    git_out,
    parse_worktree_list,
    verify,
)
from orchestrator.errors import UsageError
from orchestrator.failpoints import failpoint
from orchestrator.workspace import overlay
from orchestrator.workspace.lowers import Lowers

POOL = names.POOL
CHECKOUT_WORKERS = 8
MOST_CHECKOUTS_AT_ONCE = 4
START_REFLOG = {"GIT_REFLOG_ACTION": "orchestrate: start subtask"}
# ignored (`.orchestrate/` through info/exclude) but never committed: not kept warm either
FLAGGED = re.compile(r"(?:^|\0)[^H\0]")  # an `ls-files -v` entry whose tag is not H
NEVER_KEPT = tuple(arg for folder in names.PRIVATE_DIRS for arg in ("-e", f"!/{folder}/"))


def checkouts_at_once() -> int:
    """Fresh checkouts a build makes at the same time: two, or half the cores up to four."""
    return min(MOST_CHECKOUTS_AT_ONCE, max(2, (os.cpu_count() or 2) // 2))


@dataclass
class Worktrees:
    repo: Path
    spec: str
    reuse: bool = True
    pool_limit: int = 8
    in_use: int = 0  # subtasks of this build holding or obtaining a worktree
    creating: int = 0  # fresh checkouts under way
    checkouts_at_once: int = field(default_factory=lambda: checkouts_at_once())
    _admin_lock: trio.Lock = field(default_factory=trio.Lock)
    _changed: trio.Event = field(default_factory=trio.Event)  # set when one is parked or freed
    _claimed: set[Path] = field(default_factory=set)  # parked ones being taken right now
    _line: list[object] = field(default_factory=list)  # subtasks waiting for a worktree
    _checkout_options: tuple[str, ...] | None = None
    _home: Path | None = None  # the admin folder of the user's checkout
    workspace: str = "auto"  # auto | overlay | worktree (settings.workspace)
    _overlay: bool | None = None  # decided on first use (`uses_overlay`)
    _lowers: Lowers | None = None

    def __post_init__(self) -> None:
        guard_worktrees(self.root)  # no git command runs in a damaged one (merge/gitcmd.py)

    @property
    def root(self) -> Path:
        return names.worktree_root(self.repo)

    def path_for(self, subtask_id: str) -> Path:
        return self.root / self.spec / subtask_id

    async def _admin(self, *args: str, check: bool = True) -> GitResult:
        async with self._admin_lock:
            return await git(self.repo, "worktree", *args, check=check)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def uses_overlay(self) -> bool:
        """Whether fresh worktrees are copy-on-write overlays (tried once per build)."""
        if self._overlay is None:
            self._overlay = await trio.to_thread.run_sync(overlay.uses_overlay, self.repo,
                                                          self.workspace)
        return self._overlay

    @property
    def kind(self) -> str:
        """The workspace kind fresh worktrees get: `overlay` or `worktree` (once decided)."""
        return "overlay" if self._overlay else "worktree"

    async def prepare(self, start: str) -> None:
        """Make the lower layer for worktrees starting at `start` ahead of the first one
        (nothing without overlays; a failure is left for the first worktree to meet)."""
        try:
            if await self.uses_overlay():
                await self._lowers_of_repo().for_start(start)
        except (GitError, OSError, UsageError):
            pass

    def _lowers_of_repo(self) -> Lowers:
        if self._lowers is None:
            self._lowers = Lowers(self.repo)
        return self._lowers

    async def recover(self) -> list[Path]:
        """Before a build uses them: unmount this spec's overlays that a killed build left
        stale, drop their upper layers and collect unused lower layers."""
        if self.workspace == "worktree" and not await trio.to_thread.run_sync(
                overlay.state_root(self.repo).exists):
            return []
        registered = await self._registered()
        return await trio.to_thread.run_sync(overlay.recover, self.repo, self.spec, registered)

    async def exclude_orchestrate_dir(self) -> None:
        """Make git ignore `.orchestrate/` in every worktree via the shared info/exclude."""
        common = Path(await git_out(self.repo, "rev-parse", "--path-format=absolute",
                                    "--git-common-dir"))
        exclude = trio.Path(common / "info" / "exclude")
        text = await exclude.read_text() if await exclude.exists() else ""
        private = names.PRIVATE_DIR
        if not any(line.strip() in (f"/{private}/", f"{private}/", f"/{private}")
                   for line in text.splitlines()):
            await exclude.parent.mkdir(parents=True, exist_ok=True)
            sep = "" if not text or text.endswith("\n") else "\n"
            await exclude.write_text(f"{text}{sep}/{private}/\n")

    @asynccontextmanager
    async def hold(self, subtask_id: str, branch: str, base: str) -> AsyncIterator[Path]:
        """A clean worktree at `path_for(subtask_id)` on `branch`, reset to `base`: its own
        from an earlier run, a parked one, or a fresh one; held until the block ends."""
        path = self.path_for(subtask_id)
        self.in_use += 1
        try:
            await self._obtain(path, branch, base, reset_branch=True)
            yield path
        finally:
            self.in_use -= 1
            self._notify()

    @asynccontextmanager
    async def hold_detached(self, name: str, commit: str) -> AsyncIterator[Path]:
        """A clean worktree at `path_for(name)` with a detached HEAD at `commit` (a check
        run's), from the pool like any other; parked again when the block ends."""
        path = self.path_for(name)
        self.in_use += 1
        try:
            await self._obtain(path, None, commit, reset_branch=True)
            yield path
        finally:
            self.in_use -= 1
            self._notify()
        with trio.CancelScope(shield=True):
            await self.release(name, keep=False)

    async def restore(self, subtask_id: str, branch: str) -> None:
        """Give a subtask whose worktree was parked (e.g. one in conflict) a worktree on its
        branch again, where the user expects to resolve it."""
        await self.on_branch(subtask_id, branch)

    @asynccontextmanager
    async def hold_on_branch(self, subtask_id: str, branch: str) -> AsyncIterator[Path]:
        """The subtask's worktree on `branch` at its tip, for a resolution round (SPEC 10);
        like `on_branch` it never waits for pool capacity: the round already holds an agent
        slot, and the subtasks waiting for one may be holding every prepared worktree."""
        try:
            yield await self.on_branch(subtask_id, branch)
        finally:
            self._notify()

    async def on_branch(self, subtask_id: str, branch: str) -> Path:
        """The subtask's worktree at `path_for(subtask_id)` on `branch` at its tip (for the
        user or a resolution round): its own if it still exists, else a parked one (its own
        parked one first), else a fresh checkout. It never waits for the pool's limit and
        does not count against it: a worktree handed back outlives the build, so nothing a
        waiting task could free would ever make room for it."""
        tip = await verify(self.repo, f"refs/heads/{branch}")
        path = self.path_for(subtask_id)
        await self._obtain(path, branch, tip, reset_branch=False, limited=False)
        return path

    async def _obtain(self, path: Path, branch: str | None, start: str, *,
                      reset_branch: bool, limited: bool = True) -> None:
        """A worktree at `path` on `branch` (None: detached), clean at `start` (resetting the
        branch to it); a fresh checkout waits for room in the pool only if `limited`."""
        registered = await self._registered()
        if path in registered and await trio.Path(path / ".git").exists() \
                and not await self._emptied_overlay(path):
            try:
                await self._switch(path, branch, start, reset_branch)
                return
            except GitError:  # e.g. an agent damaged its .git file: start afresh
                pass
        if path in registered:
            await self._forget(path)  # registered, but its folder or .git file is gone
        elif await trio.Path(path).exists():
            await self._discard(path)  # left by a crash, unregistered
        if limited:
            fresh = await self._wait_in_line(path)
        else:
            fresh = await self._wait_unlimited(path)
        if fresh:
            await self._create(path, branch, start, reset_branch)
        else:
            await self._switch(path, branch, start, reset_branch)

    async def _wait_in_line(self, path: Path) -> bool:
        """Wait, first come first served, until a parked worktree was moved to `path` (False)
        or a fresh checkout may begin (True, counted in `creating`). Whoever asked first gets
        the next parked worktree or checkout slot, so the subtask whose agent slot opens first
        is the one whose worktree is ready first."""
        ticket = object()
        self._line.append(ticket)
        try:
            while True:
                if self._line[0] is ticket:
                    if await self._take_parked(path):
                        return False
                    if self._may_create(limited=True):
                        self.creating += 1
                        return True
                await self._changed.wait()
        finally:
            self._line.remove(ticket)
            self._notify()  # the next in line may go on at once

    async def _wait_unlimited(self, path: Path) -> bool:
        """Like `_wait_in_line` for a worktree handed back (`limited=False`): not in line."""
        while not await self._take_parked(path):
            if self._may_create(limited=False):
                self.creating += 1
                return True
            await self._changed.wait()
        return False

    async def _emptied_overlay(self, path: Path) -> bool:
        """An overlay worktree no longer mounted (a reboot, a killed build): its folder holds
        nothing but the `.git` file, so it is made again rather than checked out in full."""
        return (await trio.Path(overlay.state_dir(self.repo, path)).exists()
                or await self.uses_overlay()) and not await trio.to_thread.run_sync(
                    overlay.mounted, path)

    async def _discard(self, path: Path) -> None:
        """Remove a worktree's folder, unmounting its overlay first."""
        await trio.to_thread.run_sync(overlay.unmount_worktree, self.repo, path)
        await trio.to_thread.run_sync(_remove_tree, path)

    def _may_create(self, limited: bool) -> bool:
        # waiting for `creating` is safe: a checkout under way always ends and notifies
        return self.creating < self.checkouts_at_once and (
            not limited or self.in_use <= self.pool_limit)

    async def _create(self, path: Path, branch: str | None, start: str,
                      reset_branch: bool) -> None:
        """A fresh checkout; the caller counted it in `creating`."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if await self.uses_overlay():
                await self._create_overlay(path, branch, start, reset_branch)
                return
            await self._add(path, branch, start, reset_branch)
            # the slow part, outside the lock
            await git(path, *await self._parallel_checkout(), "reset", "--hard", "--quiet")
        finally:
            self.creating -= 1
            self._notify()

    async def _add(self, path: Path, branch: str | None, start: str,
                   reset_branch: bool) -> None:
        """`git worktree add` without a checkout: detached at `start`, on `branch` made (again)
        at `start`, or on the existing `branch`."""
        if branch is None:
            on_branch = ["--detach", str(path), start]
        else:
            on_branch = ["--no-track", "-B", branch, str(path), start] if reset_branch \
                else [str(path), branch]
        await self._admin("add", "--quiet", "--force", "--no-checkout", *on_branch)

    async def _create_overlay(self, path: Path, branch: str | None, start: str,
                              reset_branch: bool) -> None:
        """A copy-on-write worktree: added without checkout, the overlay of the lower layer
        closest to `start` mounted on it, then moved to HEAD's tree (only what differs)."""
        lower = await self._lowers_of_repo().for_start(start)
        await self._add(path, branch, start, reset_branch)
        failpoint("overlay-worktree-added")
        admin = await _admin_folder(path)
        if admin is None:
            raise GitError(("worktree", "add"), path, GitResult(128, "", "no .git file"))
        try:
            await trio.to_thread.run_sync(overlay.mount_worktree, self.repo, path, admin, lower)
        except OSError:  # e.g. the kernel refused this one: a full checkout, as without
            await git(path, *await self._parallel_checkout(), "reset", "--hard", "--quiet")
            return
        failpoint("overlay-mounted")
        head = await git_out(path, "rev-parse", "HEAD")
        if head != lower.commit:
            await git(path, "read-tree", "-m", "-u", lower.commit, head)

    async def _parallel_checkout(self) -> tuple[str, ...]:
        """`-c checkout.workers=N` unless the user's git configuration sets it."""
        if self._checkout_options is None:
            configured = await git(self.repo, "config", "--get", "checkout.workers", check=False)
            self._checkout_options = () if configured.stdout.strip() else (
                "-c", f"checkout.workers={CHECKOUT_WORKERS}")
        return self._checkout_options

    async def _switch(self, path: Path, branch: str | None, start: str,
                      reset_branch: bool) -> None:
        """Put an existing worktree on `branch` (None: detached) at `start`, clean (ignored
        files stay)."""
        await remove_stale_index_lock(path)
        await clear_index_flags(path)
        if branch is None:
            await git(path, "update-ref", "--no-deref", "HEAD", start)
        else:
            await git(path, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
        # on the branch, `reset --hard start` moves it (creating it if need be) and the files
        await git(path, *await self._parallel_checkout(), "reset", "--hard", "--quiet",
                  *([start] if reset_branch else []), env=START_REFLOG)
        await git(path, "clean", "-ffdq", *NEVER_KEPT)

    async def _registered(self) -> set[Path]:
        listing = (await self._admin(*WORKTREE_LIST[1:])).stdout
        return {entry.path for entry in parse_worktree_list(listing)}

    async def _forget(self, path: Path) -> None:
        await self._discard(path)
        await self._admin("prune")

    async def _take_parked(self, target: Path) -> bool:
        """Move a parked worktree (this spec's first) to `target`; False if there is none."""
        if not self.reuse or await self.uses_overlay():
            return False
        pool = self.root / POOL
        own = pool / f"{self.spec}--{target.name}"  # its own parked one switches cheapest
        found = await trio.to_thread.run_sync(_parked_in, pool, self.spec)
        for parked in sorted(found, key=lambda p: p != own):
            if parked in self._claimed:
                continue
            self._claimed.add(parked)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                moved = await self._admin("move", str(parked), str(target), check=False)
            finally:
                self._claimed.discard(parked)
            if moved.returncode == 0:  # else another build took it first, or it is broken
                return True
        return False

    async def release(self, subtask_id: str, *, keep: bool) -> None:
        """Once the work is committed: keep the worktree, park it for reuse, or remove it."""
        path = self.path_for(subtask_id)
        if keep or not await trio.Path(path).exists():
            return
        if await trio.to_thread.run_sync(overlay.mounted, path):
            await trio.to_thread.run_sync(overlay.unmount_worktree, self.repo, path)
            failpoint("overlay-unmounted")
            await self._admin("remove", "--force", "--force", str(path), check=False)
            if await trio.Path(path).exists():
                await self._forget(path)
            return
        pool = self.root / POOL
        if self.reuse and await self._parkable(path) and \
                len(await trio.to_thread.run_sync(_parked_in, pool, "")) < self.pool_limit:
            await trio.Path(pool).mkdir(parents=True, exist_ok=True)
            await git(path, "update-ref", "--no-deref", "HEAD", "HEAD")  # frees the branch
            failpoint("worktree-detached")
            target = pool / f"{self.spec}--{subtask_id}"
            if (await self._admin("move", str(path), str(target), check=False)).returncode == 0:
                self._notify()
                return
        await self._admin("remove", "--force", "--force", str(path), check=False)
        if await trio.Path(path).exists():
            await self._forget(path)

    async def _parkable(self, path: Path) -> bool:
        """Whether the worktree can pass for a fresh one: not if its agent gave it a sparse
        checkout or settings of its own (`git sparse-checkout`, `git config --worktree`),
        which `worktree add` would instead copy from the user's checkout."""
        if self._home is None:
            self._home = Path(await git_out(self.repo, "rev-parse", "--absolute-git-dir"))
        admin = await _admin_folder(path)
        try:
            return admin is not None and await _own_settings(admin) == await _own_settings(
                self._home)
        except OSError:  # unreadable: not worth a failed subtask, nor a risky reuse
            return False


def _parked_in(pool: Path, spec: str) -> list[Path]:
    """Parked worktrees, those parked by `spec` first."""
    try:
        found = [entry for entry in pool.iterdir() if (entry / ".git").is_file()]
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda p: (not p.name.startswith(spec + "--"), p.name))


async def clear_index_flags(worktree: Path) -> None:
    """Drop the assume-unchanged and skip-worktree bits an earlier agent set: they hide edits
    from `git add`, and `reset --hard` keeps them (and a skip-worktree file's edit). The
    skip-worktree bits of a sparse checkout stay."""
    listing = (await git(worktree, "ls-files", "-v", "-z")).stdout
    if not FLAGGED.search(listing):  # the usual case: no entry but "H <path>", found in C
        return
    entries = [(entry[0], entry[2:]) for entry in listing.split("\0") if entry]
    assumed = [path for tag, path in entries if tag.islower()]
    skipped = [path for tag, path in entries if tag in "Ss"]
    if skipped and await _sparse(worktree):
        skipped = []
    for flag, paths in (("--no-assume-unchanged", assumed), ("--no-skip-worktree", skipped)):
        if paths:  # one flag per call: update-index applies only the first it is given
            await git(worktree, "update-index", flag, "-z", "--stdin",
                      input="\0".join(paths).encode())


async def _sparse(worktree: Path) -> bool:
    done = await git(worktree, "config", "--get", "--bool", "core.sparseCheckout", check=False)
    return done.stdout.strip() == "true"


async def reset_worktree(worktree: Path, commit: str) -> None:
    """Put a subtask's worktree back at `commit` on its branch, clean (ignored files stay):
    nothing an attempt left there is committed by the next one."""
    await remove_stale_index_lock(worktree)
    await git(worktree, "reset", "--hard", "--quiet", commit,
              env={"GIT_REFLOG_ACTION": "orchestrate: reset after a failed attempt"})
    await git(worktree, "clean", "-ffdq", *NEVER_KEPT)


async def remove_stale_index_lock(worktree: Path) -> None:
    """Delete an index.lock left in a subtask's worktree: its agent's process group is gone,
    so the lock can only be stale."""
    if admin := await _admin_folder(worktree):
        await trio.Path(admin / "index.lock").unlink(missing_ok=True)


async def _admin_folder(worktree: Path) -> Path | None:
    """The worktree's folder in git's admin area, from its `.git` file."""
    try:
        pointer = await trio.Path(worktree / ".git").read_text()
    except (OSError, UnicodeDecodeError):
        return None  # no usable .git file: git itself will say what is wrong
    if not pointer.startswith("gitdir: "):
        return None
    return worktree / pointer.removeprefix("gitdir: ").strip()


async def _own_settings(admin: Path) -> tuple[bytes | None, ...]:
    """A worktree's own configuration and sparse-checkout patterns (None where absent)."""
    found: list[bytes | None] = []
    for name in ("config.worktree", "info/sparse-checkout"):
        try:
            found.append(await trio.Path(admin / name).read_bytes())
        except FileNotFoundError:
            found.append(None)
    return tuple(found)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


async def copy_untracked(repo: Path, worktree: Path, names: tuple[str, ...]) -> None:
    """Make each untracked file like `.env` named in `names` what it is in the user's checkout:
    a copy, or absent if the user has none, so that a reused worktree never hands one agent's
    edit of it to the next. A name the worktree's branch tracks is left alone, and so is one
    whose folder an agent turned into a link out of the worktree."""
    inside = await trio.Path(worktree).resolve()
    targets: dict[str, Path] = {}
    for name in names:
        folder = await trio.Path(worktree / name).parent.resolve()
        if folder.is_relative_to(inside):
            targets[name] = Path(folder, Path(name).name)
    present = [name for name, target in targets.items() if await _lexists(target)]
    tracked = await _tracked(worktree, present) if present else set()
    for name, target in targets.items():
        if name in tracked:
            continue
        if name in present:
            await trio.to_thread.run_sync(_remove_tree, target)  # a link, not what it names
        source = trio.Path(repo / name)
        if await source.is_file():
            await trio.Path(target.parent).mkdir(parents=True, exist_ok=True)
            await trio.to_thread.run_sync(shutil.copy2, source, target)


async def _lexists(path: Path) -> bool:
    return await trio.Path(path).is_symlink() or await trio.Path(path).exists()


async def _tracked(worktree: Path, names: list[str]) -> set[str]:
    """Those of `names` that the worktree's index tracks, as a file or as a folder."""
    listing = (await git(worktree, "ls-files", "-z", "--",
                         *(f":(top,literal){name}" for name in names))).stdout
    paths = [path for path in listing.split("\0") if path]
    return {name for name in names
            if any(path == name or path.startswith(name.rstrip("/") + "/") for path in paths)}
