"""Merges of a chain computed from the trees, without a `git merge-tree` process each.

Where a branch made from the chain's start and the chain so far changed disjoint paths since
that start, git's merge takes each path from the side that changed it: the tree is the chain's
tree with the branch's changes applied, built with one long-lived `git cat-file --batch` and
one `git mktree --batch` for the whole chain. Everything else goes to `merge-tree` as before:

* a path both sides changed, or a file on one side where the other has a folder;
* a folder one side deleted files from while the other added files under it (git's directory
  rename detection could move them);
* a submodule on either side;
* a branch whose history since the start is not its own: it forks from another commit or
  from none (a root commit), or shares commits with another branch of the chain (the merge
  base would not be the start);
* any chain commit this object did not make (the merge after a merge-tree one);
* a chain of fewer than SHORTEST_CHAIN branches, and whatever follows a git error here.

The tests compare every tree with merge-tree's on generated histories of every kind of change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from merge.conflicts import MergeTreeOutput
from merge.gitcmd import BatchGit, GitError, run_git

Entry = tuple[str, str]  # (mode, object id) of a path; mode "" where it was deleted
# Below this many branches merge-tree is quicker: a chain's quick merges start four git
# processes (rev-list, diff-tree, cat-file, mktree), each merge-tree is one.
SHORTEST_CHAIN = 4
TREE, SUBMODULE, ABSENT = "40000", "160000", "000000"


class _NotQuick(Exception):
    """The trees are not what the quick merge expects: merge-tree decides."""


@dataclass(frozen=True)
class _Side:
    tree: str  # the chain commit's root tree
    changed: dict[str, Entry]  # every path changed since the start
    added: frozenset[str] = frozenset()  # of those, the paths the start did not have


@dataclass(frozen=True)
class _Branch:
    changed: dict[str, Entry]  # since the start
    added: frozenset[str]  # of those, the paths the start did not have


class QuickMerges:
    """The quick merges of one chain that starts at `start` (see the module's docstring)."""

    def __init__(self, repo: Path, start: str, heads: Iterable[str]) -> None:
        self.repo, self.start, self.heads = repo, start, list(dict.fromkeys(heads))
        self._branches: dict[str, _Branch] | None = None
        self._chain: dict[str, _Side] = {}
        self._made: tuple[str, _Side] | None = None
        self._trees: dict[str, dict[str, Entry]] = {}  # read or written, by id
        self._lines: dict[tuple[str, str, str], bytes] = {}
        self.count = 0  # merges made here (the others went to merge-tree)
        self._given_up = False
        self._reader = BatchGit(repo, "cat-file", "--batch")
        # every entry names an object read from a tree or a diff: no need to look each up
        self._writer = BatchGit(repo, "mktree", "-z", "--missing", "--batch")

    def __enter__(self) -> QuickMerges:
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()
        self._writer.close()

    def merge(self, tip: str, head: str) -> MergeTreeOutput | None:
        """The clean merge of `head` onto `tip`, or None where merge-tree must decide."""
        self._made = None
        if len(self.heads) < SHORTEST_CHAIN or self._given_up:
            return None
        try:
            return self._merge(tip, head)
        except _NotQuick:
            return None
        except GitError:  # a git process of ours failed: merge-tree takes the rest
            self._given_up = True
            return None

    def _merge(self, tip: str, head: str) -> MergeTreeOutput | None:
        if self._branches is None:
            self._branches = {}
            self._writer.start()
            self._chain[self.start] = _Side(self._root_tree(self.start), {})
            self._branches = self._branches_since_start()
        side, branch = self._chain.get(tip), self._branches.get(head)
        if side is None or branch is None or not _apart(side, branch):
            return None
        tree = self._apply(side.tree, branch.changed, root=True)
        if tree is None:  # never for the root
            return None
        self._made = (tree, _Side(tree, {**side.changed, **branch.changed},
                                  side.added | branch.added))
        self.count += 1
        return MergeTreeOutput(tree, True, (), ())

    def made(self, commit: str, tree: str) -> None:
        """The chain's new commit, of the tree the last `merge` returned."""
        if self._made is not None and self._made[0] == tree:
            self._chain[commit] = self._made[1]
        self._made = None

    def _branches_since_start(self) -> dict[str, _Branch]:
        own = _own_histories(self.repo, self.start, self.heads)
        if not own:
            return {}
        listing = run_git(self.repo, "diff-tree", "--stdin", "--always", "-r", "-z", "--raw",
                          "--no-renames", "--no-abbrev",
                          input="".join(f"{head} {self.start}\n" for head in own).encode())
        found = {}
        for head, entries in zip(own, _pairs(listing.stdout), strict=True):
            if all(SUBMODULE not in (old, new) for _, old, new, _ in entries):
                found[head] = _Branch({path: ("" if new == ABSENT else new, oid)
                                       for path, _, new, oid in entries},
                                      frozenset(path for path, old, _, _ in entries
                                                if old == ABSENT))
        return found

    def _root_tree(self, commit: str) -> str:
        kind, data = self._object(commit)
        if kind != "commit" or not data.startswith(b"tree "):
            raise _NotQuick(commit)
        return data[5:data.index(b"\n")].decode()

    def _apply(self, tree: str | None, changes: dict[str, Entry], *, root: bool = False
               ) -> str | None:
        """`tree` (None: none yet) with `changes` (paths relative to it) applied; None where
        nothing is left (the root is the empty tree then)."""
        entries = self._entries(tree) if tree else {}
        here: dict[str, Entry] = {}
        below: dict[str, dict[str, Entry]] = {}
        for path, entry in changes.items():
            name, sep, rest = path.partition("/")
            if sep:
                below.setdefault(name, {})[rest] = entry
            else:
                here[name] = entry
        for name, inner in below.items():
            mode, oid = entries.get(name, ("", ""))
            if mode and mode != TREE and here.get(name, ("kept",))[0] != "":
                raise _NotQuick(name)  # a file left where the branch fills a folder
            subtree = self._apply(oid if mode == TREE else None, inner)
            if subtree is None:
                entries.pop(name, None)
            else:
                entries[name] = (TREE, subtree)
        for name, (mode, oid) in here.items():
            if mode and name in below and name in entries:
                raise _NotQuick(name)  # a file where the folder keeps content
            if mode:
                entries[name] = (mode, oid)
            elif name not in below:
                entries.pop(name, None)
        if not entries and not root:
            return None
        return self._write(entries)

    def _entries(self, tree: str) -> dict[str, Entry]:
        if tree not in self._trees:
            self._trees[tree] = self._read_tree(tree)
        return dict(self._trees[tree])

    def _read_tree(self, tree: str) -> dict[str, Entry]:
        kind, data = self._object(tree)
        if kind != "tree":
            raise _NotQuick(tree)
        size = len(tree) // 2  # 20 bytes of SHA-1, 32 of SHA-256
        entries, at = {}, 0
        while at < len(data):
            space = data.index(b" ", at)
            end = data.index(b"\0", space)
            name = data[space + 1:end].decode("utf-8", "surrogateescape")
            entries[name] = (data[at:space].decode(), data[end + 1:end + 1 + size].hex())
            at = end + 1 + size
        return entries

    def _object(self, oid: str) -> tuple[str, bytes]:
        header = self._reader.ask(f"{oid}\n".encode()).decode().split()
        if len(header) != 3:
            raise _NotQuick(oid)  # "<oid> missing"
        return header[1], self._reader.read(int(header[2]))

    def _write(self, entries: dict[str, Entry]) -> str:
        lines = b"".join(self._line(name, entry) for name, entry in entries.items())
        tree = self._writer.ask(lines + b"\0").decode()
        self._trees[tree] = entries
        return tree

    def _line(self, name: str, entry: Entry) -> bytes:
        """The entry as `mktree -z` reads it (kept: a folder's unchanged entries are written
        again at every merge below it)."""
        key = (name, *entry)
        if key not in self._lines:
            mode, oid = entry
            self._lines[key] = (f"{int(mode, 8):06o} {_kind(mode)} {oid}\t".encode()
                                + name.encode("utf-8", "surrogateescape") + b"\0")
        return self._lines[key]


def _kind(mode: str) -> str:
    return {TREE: "tree", SUBMODULE: "commit"}.get(f"{int(mode, 8):o}", "blob")


def _apart(side: _Side, branch: _Branch) -> bool:
    """No path both changed, no file of one where the other has a folder, no folder one side
    deleted from and the other added to."""
    ours, theirs = side.changed, branch.changed
    if not ours:
        return True
    if ours.keys() & theirs.keys():
        return False
    if set(ours) & _folders(theirs) or set(theirs) & _folders(ours):
        return False
    deleted_ours = _folders(p for p, (mode, _) in ours.items() if not mode)
    deleted_theirs = _folders(p for p, (mode, _) in theirs.items() if not mode)
    return not (_folders(branch.added) & deleted_ours
                or _folders(side.added) & deleted_theirs)


def _folders(paths: Iterable[str]) -> set[str]:
    """Every folder above each of `paths` (not the root)."""
    found: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        found.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
    return found


def _own_histories(repo: Path, start: str, heads: Sequence[str]) -> list[str]:
    """Those of `heads` whose commits since `start` descend from `start` alone and belong to
    no other of `heads`: their merge base with any chain of the others is `start`."""
    listing = run_git(repo, "rev-list", "--parents", "--stdin",
                      input=f"^{start}\n{''.join(h + chr(10) for h in heads)}".encode())
    parents = {line.split()[0]: line.split()[1:] for line in listing.stdout.splitlines()}
    owner: dict[str, str] = {}
    shared: set[str] = set()
    own = []
    for head in heads:
        commits = _history(head, parents, start)
        if commits is None:
            continue
        shared.update(c for c in commits if owner.setdefault(c, head) != head)
        own.append((head, commits))
    return [head for head, commits in own if not commits & shared]


def _history(head: str, parents: dict[str, list[str]], start: str) -> set[str] | None:
    """The commits from `head` back to `start`, or None if they reach past it elsewhere or
    begin a history of their own (a root commit: unrelated histories)."""
    if head not in parents:
        return None
    seen, todo = {head}, [head]
    while todo:
        above = parents[todo.pop()]
        if not above:
            return None
        for parent in above:
            if parent in parents:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
            elif parent != start:
                return None
    return seen


def _pairs(raw: str) -> Iterator[list[tuple[str, str, str, str]]]:
    """`diff-tree --stdin --always -r -z --raw --no-renames`: per pair a commit id, then
    (path, old mode, new mode, new object id) for each changed path."""
    fields = raw.split("\0")
    at = 0
    while at < len(fields) and fields[at]:
        at += 1
        entries = []
        while at + 1 < len(fields) and fields[at].startswith(":"):
            old, new, _, oid, _ = fields[at][1:].split(" ")
            entries.append((fields[at + 1], old, new, oid))
            at += 2
        yield entries
