"""What every worktree shares and agents have no business changing: the common git dir's
`config` (and the folder `core.hooksPath` names), `hooks/` and `info/` (exclude, attributes).

A build fingerprints them when it starts (kept in orchestrate's own state folder too, so a
build killed with SIGKILL is undone by the next one) and checks them around every attempt. A
change is undone from the fingerprint, and every attempt running when it was found is failed
with `changed the shared repository: <what>` (and retried as usual). Refs are not part of it,
except the stash, which every worktree shares (workspace/shared_stash.py): a stash pushed or
popped while attempts run fails them too, and whatever was taken out of it is stored again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator import names
from orchestrator.door.processes import GitError, git, git_out
from orchestrator.failpoints import failpoint
from orchestrator.plan.own_record import HOOKS
from orchestrator.workspace.shared_stash import WHY, StashGuard

# path -> (kind, content or link target, mode); kind is "file", "link" or "dir"
Entry = tuple[str, bytes, int]
Fingerprint = dict[str, Entry]
RECORD = "shared-git.json"
STASH_RECORD = "shared-stash.json"
EXCLUDES = "excludes-at-start"


def take(roots: list[Path]) -> Fingerprint:
    """Every file, link and folder under `roots` (a root may be a single file)."""
    found: Fingerprint = {}
    for root in roots:
        _add(found, root)
        if root.is_dir() and not root.is_symlink():
            for folder, dirs, files in os.walk(root):
                for name in [*dirs, *files]:
                    _add(found, Path(folder) / name)
    return found


def _add(found: Fingerprint, path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        found[str(path)] = ("link", os.readlink(path).encode(), 0)
    elif stat.S_ISDIR(info.st_mode):
        found[str(path)] = ("dir", b"", stat.S_IMODE(info.st_mode))
    elif stat.S_ISREG(info.st_mode):
        found[str(path)] = ("file", path.read_bytes(), stat.S_IMODE(info.st_mode))
    else:
        found[str(path)] = ("other", b"", 0)


def changes(before: Fingerprint, after: Fingerprint, common: Path) -> list[str]:
    """What differs, in words: `hooks/pre-commit added`, `config changed`, ..."""
    said = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path):
            continue
        verb = ("added" if path not in before else "removed" if path not in after
                else "changed")
        said.append(f"{_shown(Path(path), common)} {verb}")
    return said


def _shown(path: Path, common: Path) -> str:
    try:
        return str(path.relative_to(common))
    except ValueError:
        return str(path)


def restore(before: Fingerprint, after: Fingerprint) -> None:
    """Put back what `before` had, removing what was added; never writes through a link."""
    for path in sorted(set(after) - set(before), reverse=True):
        _remove(Path(path))
    for path in sorted(before):
        if after.get(path) != before[path]:
            _put(Path(path), before[path])


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _put(path: Path, entry: Entry) -> None:
    kind, content, mode = entry
    keep = kind == "dir" and path.is_dir() and not path.is_symlink()
    if (path.is_symlink() or path.exists()) and not keep:
        _remove(path)
    if kind == "dir":
        path.mkdir(exist_ok=True)
        path.chmod(mode)
    elif kind == "link":
        os.symlink(content.decode(), path)
    elif kind == "file":
        temporary = path.with_name(f"{path.name}.restoring")
        temporary.unlink(missing_ok=True)
        temporary.write_bytes(content)
        temporary.chmod(mode)
        os.replace(temporary, path)


def save(fingerprint: Fingerprint, where: Path) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    data = {path: [kind, base64.b64encode(content).decode(), mode]
            for path, (kind, content, mode) in fingerprint.items()}
    temporary = where.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, where)


def load(where: Path) -> Fingerprint | None:
    try:
        data = json.loads(where.read_text())
        return {path: (str(kind), base64.b64decode(content), int(mode))
                for path, (kind, content, mode) in data.items()}
    except (OSError, ValueError, TypeError):
        return None


async def pin_excludes(repo: Path, copy: Path, *, keep: bool) -> Path:
    """A copy of the user's own excludes file (`core.excludesFile`, else git's default under
    XDG_CONFIG_HOME) as it is now; a killed build's copy is `kept` (the file may hold what
    its agents added since)."""
    configured = (await git(repo, "config", "--path", "--get", "core.excludesFile",
                            check=False)).stdout.strip()
    source = repo / configured if configured else _default_excludes()  # `--path`: no ~
    if keep and await trio.Path(copy).is_file():
        return copy
    await trio.to_thread.run_sync(_copy_file, source, copy)
    return copy


async def users_hooks_path(repo: Path) -> str:
    """`core.hooksPath` as the user set it, if at all: not the `-c core.hooksPath=/dev/null`
    with which orchestrate's own git runs (that one has the command line's scope)."""
    listing = await git(repo, "config", "--show-scope", "--type=path", "--get-all",
                        "core.hooksPath", check=False)
    values = [value for scope, _, value in (line.partition("\t")
                                            for line in listing.stdout.splitlines())
              if scope != "command"]
    return values[-1] if values else ""


async def pin_hooks(folder: Path, record: Path, *, keep: bool) -> None:
    """Remember `folder`, where git takes hooks from now, for the one git command of
    orchestrate's that runs hooks: `git push`. A hook path an agent sets in your global config
    later is not followed; what the folder holds is in the fingerprint. A killed build's
    record is `kept`."""
    if keep and await trio.Path(record).is_file():
        return
    await trio.to_thread.run_sync(_write_text, record, f"{folder}\n")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _default_excludes() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "git" / "ignore"


def _copy_file(source: Path, copy: Path) -> None:
    try:
        content = source.read_bytes()
    except OSError:
        content = b""
    copy.parent.mkdir(parents=True, exist_ok=True)
    temporary = copy.with_suffix(".tmp")
    temporary.write_bytes(content)
    os.replace(temporary, copy)


@dataclass
class Watch:
    """One attempt under watch: what changed in the shared repository while it ran."""

    changed: list[str] = field(default_factory=list)
    stash: bool = False  # the stash changed: the worktree may hold another attempt's work

    def pin(self, found: list[str], *, stash: bool = False) -> None:
        """Add what was `found`; a fuller account replaces a shorter one it starts with."""
        self.changed = [c for c in self.changed
                        if not any(f != c and f.startswith(c) for f in found)]
        self.changed += [c for c in found if not any(e.startswith(c) for e in self.changed)]
        self.stash = self.stash or stash

    @property
    def error(self) -> str:
        return "changed the shared repository: " + "; ".join(self.changed[:5]) + (
            f" (and {len(self.changed) - 5} more)" if len(self.changed) > 5 else "")


class SharedGit:
    """The build's fingerprint of the shared repository and the attempts it watches."""

    def __init__(self, common: Path, roots: list[Path], baseline: Fingerprint,
                 record: Path, stash: StashGuard | None = None) -> None:
        self.common, self.roots, self.baseline, self.record = common, roots, baseline, record
        self.stash = stash
        self.excludes: Path | None = None
        self.running: dict[int, Watch] = {}
        self.lock = trio.Lock()
        self.asked = self.checked = 0  # calls of check(); the last call a check covered
        self.last_found: list[str] = []

    @classmethod
    async def open(cls, repo: Path, spec_name: str) -> tuple[SharedGit, list[str]]:
        """Fingerprint the shared repository; undo first what a build that was killed left
        changed (its record says what it saw). Returns the guard and what was undone."""
        common = Path(await git_out(repo, "rev-parse", "--path-format=absolute",
                                    "--git-common-dir"))
        roots = [common / "config", common / "hooks", common / "info"]
        hooks_path = await users_hooks_path(repo)
        if hooks_path:
            roots.append(repo / hooks_path)
        record = names.repo_state_dir(repo, spec_name) / RECORD
        earlier = await trio.to_thread.run_sync(load, record)
        undone: list[str] = []
        if earlier is not None:
            now = await trio.to_thread.run_sync(take, roots)
            undone = changes(earlier, now, common)
            if undone:
                await trio.to_thread.run_sync(restore, earlier, now)
        baseline = await trio.to_thread.run_sync(take, roots)
        await trio.to_thread.run_sync(save, baseline, record)
        stash, unstashed = await StashGuard.open(repo, common, record.with_name(STASH_RECORD))
        guard = cls(common, roots, baseline, record, stash)
        guard.excludes = await pin_excludes(repo, record.with_name(EXCLUDES),
                                            keep=earlier is not None)
        hooks = repo / hooks_path if hooks_path else common / "hooks"
        await pin_hooks(hooks, record.with_name(HOOKS), keep=earlier is not None)
        return guard, undone + unstashed

    @property
    def pinned(self) -> tuple[str, ...]:
        """Options for orchestrate's `git add`: the user's own excludes file as it was when
        the build started (an agent's `*.py` added to it drops no later subtask's files)."""
        return () if self.excludes is None else ("-c", f"core.excludesFile={self.excludes}")

    async def check(self) -> list[str]:
        """Compare with the fingerprint; undo a change and pin it on every running attempt.

        Callers that ask while a check runs share the next one, which begins after they all
        asked: five attempts ending together as five others start cost two or three checks
        (each a `git rev-parse` and a read of the folders), not fifteen in a row."""
        self.asked += 1
        asked = self.asked
        async with self.lock:
            if self.checked >= asked:  # a check that began after this call is done
                return self.last_found
            began = self.asked
            self.last_found = await self._check_now()
            self.checked = began
            return self.last_found

    async def _check_now(self) -> list[str]:
        stashed = [] if self.stash is None else await self.stash.check(bool(self.running))
        for watch in self.running.values():
            watch.pin(stashed, stash=bool(stashed))
        now = await trio.to_thread.run_sync(take, self.roots)
        found = changes(self.baseline, now, self.common)
        if not found:
            return stashed
        for watch in self.running.values():
            watch.pin(found)
        failpoint("shared-git-changed")
        await trio.to_thread.run_sync(restore, self.baseline, now)
        failpoint("shared-git-undone")
        return found + stashed

    async def watch_stash(self) -> None:
        """For the whole build: pin a write to the stash, as the kernel reports it, on every
        attempt running at that moment (the next check says what changed and restores)."""
        if self.stash is None or self.stash.events is None:
            return
        while True:
            names = await self.stash.events.names()
            if not await self.stash.written(names):
                continue
            for watch in self.running.values():
                watch.pin([WHY], stash=True)
            if not self.running:
                with contextlib.suppress(GitError, OSError):  # the next check says it again
                    await self.check()  # no attempt runs: the user's own stash

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[Watch]:
        """Watch one attempt: a change found before it starts is not its doing."""
        await self.check()
        watch = Watch()
        self.running[id(watch)] = watch
        try:
            yield watch
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.check()
                finally:
                    del self.running[id(watch)]

    def close(self) -> None:
        """The build ended (not killed): the next one starts from a new fingerprint."""
        self.record.unlink(missing_ok=True)
        if self.stash is not None:
            self.stash.close()
