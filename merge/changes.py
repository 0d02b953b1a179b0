"""What a branch changed against its base: the paths (renames detected) and, for text files,
the changed line ranges on each side, read from `git diff -U0` hunks.

Paths come from `git diff --raw -z`, so no quoted name is ever parsed. Hunks are matched to
paths through the blob ids in each patch section's `index OLD..NEW` line: the hunks of a diff
depend only on the two blobs, so this needs no parsing of the patch's file names either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from merge.gitcmd import run_git

EXCERPT_LINES = 6
NULL_OID = "0" * 40
KNOWN_LIMIT = 4096
_KNOWN: dict[tuple[Path, str, str], BranchChanges] = {}  # (repo, base, head) -> changes
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_INDEX_LINE = re.compile(r"^index ([0-9a-f]+)\.\.([0-9a-f]+)")
_DIFF_OPTIONS = ("-M", "--no-color", "--no-ext-diff", "--no-textconv", "--no-relative",
                 "--inter-hunk-context=0")


@dataclass(frozen=True)
class Hunk:
    """One `@@ -old_start,old_lines +new_start,new_lines @@` hunk of a zero-context diff."""

    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    excerpt: tuple[str, ...] = ()  # the first few `-`/`+` lines

    def old_span(self) -> tuple[int, int]:
        """Half-open [start, end) on the base's lines; a pure insertion is an empty span."""
        start = self.old_start if self.old_lines else self.old_start + 1
        return start, start + self.old_lines


@dataclass(frozen=True)
class FileChange:
    path: str  # the path on the branch (the old path for a deletion)
    status: str  # A added, M modified, D deleted, R renamed, C copied, T type changed
    old_path: str | None = None  # the path in the base, when renamed or copied
    old_blob: str = NULL_OID
    new_blob: str = NULL_OID
    binary: bool = False
    hunks: tuple[Hunk, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path this change touches: the old one too, for a rename."""
        return (self.path,) if self.old_path in (None, self.path) else (self.old_path, self.path)


@dataclass(frozen=True)
class BranchChanges:
    base: str
    head: str
    files: tuple[FileChange, ...]

    def touching(self, path: str) -> FileChange | None:
        return next((f for f in self.files if path in f.paths), None)

    def paths(self) -> set[str]:
        return {p for f in self.files for p in f.paths}


def branch_changes(repo: Path, base: str, head: str) -> BranchChanges:
    """The changes from `base` to `head` (commits or any revisions git resolves)."""
    if _OID.fullmatch(base) and _OID.fullmatch(head):
        return branch_changes_many(repo, [(base, head)])[(base, head)]
    return _diff(repo, base, head)


def branch_changes_many(repo: Path, pairs: Iterable[tuple[str, str]]
                        ) -> dict[tuple[str, str], BranchChanges]:
    """Changes for many (base, head) commit-id pairs, with two git calls for all of them.

    Between two commit ids the answer never changes, so each pair is computed once per
    process: the merge stage and every report after it share the result.
    """
    wanted = list(dict.fromkeys(pairs))
    missing = [pair for pair in wanted if (repo, *pair) not in _KNOWN]
    if missing:
        if len(_KNOWN) > KNOWN_LIMIT:
            _KNOWN.clear()
        stdin = "".join(f"{head} {base}\n" for base, head in missing).encode()
        raw = run_git(repo, "diff-tree", "--stdin", "--always", "-r", "-z", "--raw",
                      "--no-abbrev", *_DIFF_OPTIONS, input=stdin).stdout
        patch = run_git(repo, "diff-tree", "--stdin", "--always", "-r", "-p", "-U0",
                        "--full-index", *_DIFF_OPTIONS, input=stdin).stdout
        hunks, binary = parse_patch(patch)
        for (base, head), entries in zip(missing, _split_pairs(raw), strict=True):
            files = tuple(_with_hunks(entry, hunks, binary) for entry in entries)
            _KNOWN[(repo, base, head)] = BranchChanges(base, head, files)
    return {pair: _KNOWN[(repo, *pair)] for pair in wanted}


def _split_pairs(raw: str) -> Iterator[list[FileChange]]:
    """`git diff-tree --stdin --always --raw -z` output: per pair a commit id, then entries."""
    sections = raw.split("\0")
    i = 0
    while i < len(sections) and sections[i]:
        i += 1  # the commit id that opens the pair's section
        entries: list[FileChange] = []
        while i < len(sections) and sections[i].startswith(":"):
            count = 3 if sections[i].split(" ")[-1][:1] in "RC" else 2
            entries += parse_raw("\0".join(sections[i:i + count]))
            i += count
        yield entries


def _diff(repo: Path, base: str, head: str) -> BranchChanges:
    raw = run_git(repo, "diff", "--raw", "-z", "--no-abbrev", *_DIFF_OPTIONS, base, head,
                  "--").stdout
    patch = run_git(repo, "diff", "-U0", "--full-index", *_DIFF_OPTIONS, base, head,
                    "--").stdout
    hunks, binary = parse_patch(patch)
    files = tuple(_with_hunks(entry, hunks, binary) for entry in parse_raw(raw))
    return BranchChanges(base, head, files)


def parse_raw(raw: str) -> Iterator[FileChange]:
    """Entries of `git diff --raw -z`: `:OLDMODE NEWMODE OLD NEW STATUS\\0PATH\\0[PATH2\\0]`."""
    fields = raw.split("\0")
    i = 0
    while i < len(fields) and fields[i].startswith(":"):
        _, _, old_blob, new_blob, status = fields[i][1:].split(" ")
        kind = status[0]
        if kind in "RC":
            old_path, path = fields[i + 1], fields[i + 2]
            i += 3
        else:
            old_path, path = None, fields[i + 1]
            i += 2
        yield FileChange(path, kind, old_path, old_blob, new_blob)


def parse_patch(patch: str) -> tuple[dict[tuple[str, str], tuple[Hunk, ...]],
                                      set[tuple[str, str]]]:
    """Hunks per (old blob, new blob), and the blob pairs git called binary."""
    hunks: dict[tuple[str, str], tuple[Hunk, ...]] = {}
    binary: set[tuple[str, str]] = set()
    for section in _sections(patch):
        blobs = next((m.groups() for line in section if (m := _INDEX_LINE.match(line))), None)
        if blobs is None:
            continue  # a pure rename or mode change: no content changed
        key = (blobs[0], blobs[1])
        if any(line.startswith("Binary files ") or line == "GIT binary patch"
               for line in _header(section)):
            binary.add(key)
        hunks[key] = tuple(_hunks(section))
    return hunks, binary


def _sections(patch: str) -> Iterator[list[str]]:
    section: list[str] = []
    for line in patch.split("\n"):
        if line.startswith("diff --git ") and section:
            yield section
            section = []
        section.append(line)
    if section and section[0].startswith("diff --git "):
        yield section


def _header(section: list[str]) -> Iterator[str]:
    for line in section:
        if line.startswith("@@ "):
            return
        yield line


def _hunks(section: list[str]) -> Iterator[Hunk]:
    current: tuple[int, int, int, int] | None = None
    body: list[str] = []
    for line in section:
        match = _HUNK_HEADER.match(line)
        if match:
            if current:
                yield Hunk(*current, excerpt=tuple(body))
            a, b, c, d = match.groups()
            current = (int(a), 1 if b is None else int(b), int(c), 1 if d is None else int(d))
            body = []
        elif current and line[:1] in ("+", "-") and len(body) < EXCERPT_LINES:
            body.append(line)
    if current:
        yield Hunk(*current, excerpt=tuple(body))


def _with_hunks(entry: FileChange, hunks: dict[tuple[str, str], tuple[Hunk, ...]],
                binary: set[tuple[str, str]]) -> FileChange:
    # A type change (file <-> symlink) is shown as a deletion plus an addition.
    null = "0" * len(entry.old_blob)  # 40 or 64 (SHA-256 repositories)
    keys = ([(entry.old_blob, null), (null, entry.new_blob)] if entry.status == "T"
            else [(entry.old_blob, entry.new_blob)])
    found = tuple(h for key in keys for h in hunks.get(key, ()))
    is_binary = any(key in binary for key in keys)
    return FileChange(entry.path, entry.status, entry.old_path, entry.old_blob, entry.new_blob,
                      binary=is_binary, hunks=() if is_binary else found)
