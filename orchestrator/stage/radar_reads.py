"""What the conflict radar reads: the paths a subtask changed against its base, and for a path
two subtasks changed, each side's changed lines.

A running subtask is read in its worktree, committed or not, without touching anything an
agent uses: every git command runs with GIT_OPTIONAL_LOCKS=0 and with GIT_INDEX_FILE pointing
at a private index of the radar's own (the base's tree with the worktree's stat data, made
once per subtask from a copy of the worktree's index). The worktree's index is never read
for writing, refreshed or locked.

That private index is the radar's stat cache: `git diff-files` lstat()s every path and names
only those whose stat differs from it; new files come from `git ls-files --others`. A named
path whose content still equals the base's (touched, rewritten, reverted) is remembered with
its stat, so it is not read again until its stat changes. A subtask that committed is read
from its branch (`git diff-tree`), once per head.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator import names
from orchestrator.door.processes import GitResult, git
from orchestrator.workspace import overlay

# Reads only: no optional lock (index refresh), no hook, no fsmonitor, paths taken literally.
RADAR_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_LITERAL_PATHSPECS": "1"}
QUIET = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")
DIFF_OPTIONS = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-renames")
PATCH_OPTIONS = ("-p", "-U0", "--inter-hunk-context=0", *DIFF_OPTIONS)
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", re.MULTILINE)
BINARY_PROBE = 8000
ADDED = "A"
DELETED = "D"
MOST_NAMED = 1000  # an overlay's changed paths named to git at most; more: the whole tree

StatKey = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class Lines:
    """One side's change to one path: its changed lines in its own file's numbering
    ([first, last], 1-based), the base lines it replaced (half-open spans in the base's
    numbering, for deciding whether two sides touch), and what kind of change it is."""

    status: str  # A added, M modified, D deleted, T type changed
    ranges: tuple[tuple[int, int], ...] = ()
    base_spans: tuple[tuple[int, int], ...] = ()
    binary: bool = False


def touching(a: Lines, b: Lines) -> bool:
    """Whether git would likely stop at this pair: the changed base lines intersect or are
    adjacent; a deletion, a binary file or a file both sides added always counts."""
    if DELETED in (a.status, b.status) or a.binary or b.binary:
        return True
    if a.status == ADDED and b.status == ADDED:
        return True
    return any(x[0] <= y[1] and y[0] <= x[1] for x in a.base_spans for y in b.base_spans)


def parse_hunks(patch: str, status: str) -> Lines:
    """A zero-context patch of one path as Lines."""
    if "\nBinary files " in patch or patch.startswith("Binary files ") \
            or "GIT binary patch" in patch:
        return Lines(status, binary=True)
    ranges, spans = [], []
    for match in _HUNK.finditer(patch):
        old_start, old_count, new_start, new_count = (
            int(match[1]), 1 if match[2] is None else int(match[2]),
            int(match[3]), 1 if match[4] is None else int(match[4]))
        first = new_start if new_count else max(new_start, 1)
        ranges.append((first, first + max(new_count, 1) - 1))
        start = old_start if old_count else old_start + 1
        spans.append((start, start + old_count))
    return Lines(status, tuple(ranges), tuple(spans))


async def _read(cwd: Path, *args: str, env: dict[str, str] = RADAR_ENV,
                check: bool = True) -> GitResult:
    """A git command of the radar's: read-only, at the lowest CPU priority (nothing waits)."""
    return await git(cwd, *QUIET, *args, env=env, check=check, background=True)


def _stat_key(path: Path) -> StatKey | None:
    try:
        found = path.lstat()
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_ctime_ns, found.st_size, found.st_ino, found.st_mode)


def _git_mode(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "120000"
    return "100755" if mode & stat.S_IXUSR else "100644"


def _blob_id(path: Path, mode: int, algorithm: str) -> str:
    data = os.readlink(path).encode() if stat.S_ISLNK(mode) else path.read_bytes()
    digest = hashlib.new(algorithm)
    digest.update(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def _still_base(path: Path, base_mode: str, base_blob: str) -> bool:
    """Whether the file at `path` has the base's content and mode after all."""
    try:
        mode = path.lstat().st_mode
        if _git_mode(mode) != base_mode:
            return False
        return _blob_id(path, mode, "sha256" if len(base_blob) == 64 else "sha1") == base_blob
    except OSError:
        return False


def _excluded(path: str, copied: Iterable[str]) -> bool:
    """Never the subtask's own work: orchestrate's folders and files copied in (`.env`)."""
    return path.split("/", 1)[0] in names.PRIVATE_DIRS or path in copied


@dataclass
class WorktreeReader:
    """Reads one running subtask's worktree against its base."""

    worktree: Path
    base: str
    index: Path  # the private index (in the radar's own folder)
    copied: tuple[str, ...] = ()
    # path -> (its stat when last read, whether it still had the base's content)
    unchanged: dict[str, tuple[StatKey, bool]] = field(default_factory=dict)
    # every folder holding a tracked or new file -> its mtime when `git ls-files --others` last
    # ran: a file is only ever added, removed or renamed by changing its folder's mtime
    folders: dict[str, int | None] = field(default_factory=dict)
    untracked: set[str] = field(default_factory=set)
    ready: bool = False
    lower_moves: tuple[str, ...] | None = None  # paths its overlay's lower differs in
    # an overlay's lower index, when its checkout is of the base: it serves as the private one
    shared_index: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**RADAR_ENV, "GIT_INDEX_FILE": str(self.shared_index or self.index)}

    async def _git(self, *args: str, check: bool = True) -> str:
        return (await _read(self.worktree, *args, env=self.env, check=check)).stdout

    async def _prepare(self) -> None:
        """The private index: a copy of the worktree's (for its stat data), then the base's
        tree read into it, keeping the stat data of every entry whose content matches."""
        where = (await _read(self.worktree, "rev-parse", "--git-path", "index")).stdout.strip()
        source = self.worktree / where
        try:
            await trio.to_thread.run_sync(shutil.copy2, source, self.index)
            kept = await _read(self.worktree, "read-tree", "-m", self.base, env=self.env,
                               check=False)
            copied = kept.returncode == 0
        except OSError:
            copied = False
        if not copied:
            await trio.Path(self.index).unlink(missing_ok=True)
            await self._git("read-tree", self.base)
            await self._git("update-index", "-q", "--refresh", check=False)
        folders = await self._git("ls-tree", "-r", "-d", "-z", "--name-only", self.base)
        self.folders = dict.fromkeys({".", *(f for f in folders.split("\0") if f)})
        self.ready = True

    async def changes(self) -> dict[str, str]:
        """Path -> status letter of everything the worktree changed against the base."""
        named = await self._overlay_paths()
        if named is None:
            self.shared_index = None
        if self.shared_index is None and not self.ready:
            await self._prepare()
        if named == []:
            return {}
        where = ("--", *named) if named is not None else ()
        raw = await self._git("diff-files", "-z", "--raw", "--no-abbrev", *DIFF_OPTIONS, *where)
        candidates = list(_raw_entries(raw))
        found = await trio.to_thread.run_sync(self._really_changed, candidates)
        if named is None:
            found.update((path, ADDED) for path in await self._untracked())
        else:  # new files are in the upper layer too
            others = await self._git("ls-files", "-z", "--others", "--exclude-standard", *where)
            found.update((path, ADDED) for path in others.split("\0") if path)
        return {p: s for p, s in found.items() if not _excluded(p, self.copied)}

    async def _overlay_paths(self) -> list[str] | None:
        """In a copy-on-write worktree started at the base, the only paths that can differ
        from it: those in its upper layer (git reads just these); None elsewhere."""
        found = await trio.to_thread.run_sync(overlay.changes, self.worktree)
        if found is None:
            return None
        if found.base == self.base and found.lower_index is not None and not self.ready:
            self.shared_index = found.lower_index  # read only: no lock, no refresh
        if self.lower_moves is None:  # its shared checkout is of another commit than the base
            moves = "" if found.base == self.base else await self._git(
                "diff-tree", "-r", "--name-only", "-z", "--no-renames", found.base, self.base)
            self.lower_moves = tuple(p for p in moves.split("\0") if p)
        named = sorted({*found.written, *found.removed, *found.replaced, *self.lower_moves})
        return named if len(named) <= MOST_NAMED else None

    async def _untracked(self) -> set[str]:
        """The files new against the base: `git ls-files --others`, run only when a folder's
        mtime changed since it last ran (its mtimes are taken before it runs)."""
        now = await trio.to_thread.run_sync(self._folder_times)
        if now == self.folders:
            return self.untracked
        others = await self._git("ls-files", "-z", "--others", "--exclude-standard")
        self.untracked = {path for path in others.split("\0") if path}
        new = {folder: None for folder in _folders(self.untracked) if folder not in now}
        self.folders = {**now, **new}
        return self.untracked

    def _folder_times(self) -> dict[str, int | None]:
        times: dict[str, int | None] = {}
        for folder in self.folders:
            try:
                times[folder] = (self.worktree / folder).stat().st_mtime_ns
            except OSError:
                times[folder] = None
        return times

    def _really_changed(self, entries: list[tuple[str, str, str, str]]) -> dict[str, str]:
        """Of the paths diff-files named (stat differs), those whose content or mode differs."""
        changed = {}
        for path, status, base_mode, base_blob in entries:
            if status != "M":
                changed[path] = status
                continue
            key = _stat_key(self.worktree / path)
            known = self.unchanged.get(path)
            if key is not None and known is not None and known[0] == key:
                same = known[1]
            else:
                same = _still_base(self.worktree / path, base_mode, base_blob)
                if key is not None:
                    self.unchanged[path] = (key, same)
            if not same:
                changed[path] = status
        return changed

    async def lines(self, path: str, status: str) -> Lines:
        if status == ADDED:
            return await trio.to_thread.run_sync(_new_file_lines, self.worktree / path)
        patch = await self._git("diff-files", *PATCH_OPTIONS, "--", path)
        return parse_hunks(patch, status)

    async def close(self) -> None:
        await trio.Path(self.index).unlink(missing_ok=True)


def _folders(paths: Iterable[str]) -> set[str]:
    """Every folder on the way to each path, the worktree's top (".") included."""
    found = {"."}
    for path in paths:
        parts = path.split("/")[:-1]
        for end in range(1, len(parts) + 1):
            found.add("/".join(parts[:end]))
    return found


def _raw_entries(raw: str) -> Iterable[tuple[str, str, str, str]]:
    """(path, status, base mode, base blob) of `git diff-files -z --raw` entries."""
    fields = raw.split("\0")
    for header, path in zip(fields[0::2], fields[1::2], strict=False):
        if not header.startswith(":"):
            continue
        old_mode, _, old_blob, _, status = header[1:].split(" ")
        yield path, status[:1], old_mode, old_blob


def _new_file_lines(path: Path) -> Lines:
    try:
        data = path.read_bytes() if not path.is_symlink() else b""
    except OSError:
        return Lines(ADDED)
    if b"\0" in data[:BINARY_PROBE]:
        return Lines(ADDED, binary=True)
    count = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    return Lines(ADDED, ((1, count),) if count else (), ((1, 1),))


@dataclass
class BranchReader:
    """Reads what a committed subtask's branch changed (base..head): fixed once committed."""

    repo: Path
    base: str
    head: str
    found: dict[str, str] | None = None

    async def changes(self) -> dict[str, str]:
        if self.found is None:
            raw = (await _read(self.repo, "diff-tree", "-r", "-z", "--name-status",
                               *DIFF_OPTIONS, self.base, self.head)).stdout
            fields = raw.split("\0")
            self.found = {path: status[:1] for status, path
                          in zip(fields[0::2], fields[1::2], strict=False) if status}
        return self.found

    async def lines(self, path: str, status: str) -> Lines:
        patch = (await _read(self.repo, "diff-tree", "-r", *PATCH_OPTIONS, self.base,
                             self.head, "--", path)).stdout
        return parse_hunks(patch, status)

    async def close(self) -> None:
        pass
