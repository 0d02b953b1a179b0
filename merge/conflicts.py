"""Typed results from `git merge-tree --write-tree --name-only --messages -z`.

Measured on git 2.39, the output is:

    TREE NUL  PATH NUL ... NUL          the merged tree, then each conflicted path
    NUL                                 an empty field ends the path list
    COUNT NUL PATH NUL ... TYPE NUL TEXT NUL   per message: how many paths, the paths,
                                        a type such as `CONFLICT (contents)` and the text

The TYPE is coarse (an add/add conflict has type `CONFLICT (contents)`), so the kind is read from
the text's own `CONFLICT (kind):` prefix when there is one, else from the type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_KIND = re.compile(r"^CONFLICT \(([^)]+)\)")
_KIND_ALIASES = {"contents": "content"}


@dataclass(frozen=True)
class Conflict:
    """One conflict: where it is, what kind, and every path git named for it."""

    path: str
    kind: str  # content, add/add, modify/delete, rename/delete, rename/rename, file/directory,
    #            binary, distinct types, overlap, ...
    paths: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class MergeMessage:
    paths: tuple[str, ...]
    type: str
    text: str

    @property
    def is_conflict(self) -> bool:
        return self.type.startswith("CONFLICT")

    @property
    def kind(self) -> str:
        match = _KIND.match(self.text) or _KIND.match(self.type)
        kind = match.group(1) if match else self.type
        return _KIND_ALIASES.get(kind, kind)


@dataclass(frozen=True)
class MergeTreeOutput:
    tree: str
    clean: bool
    conflicted_paths: tuple[str, ...]
    messages: tuple[MergeMessage, ...]

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        return conflicts_from(self.messages, self.conflicted_paths)


class UnexpectedOutput(ValueError):
    """merge-tree's output does not have the documented shape."""


def is_oid(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def parse_merge_tree(stdout: str, *, clean: bool) -> MergeTreeOutput:
    fields = stdout.split("\0")
    if not is_oid(fields[0]):
        raise UnexpectedOutput(f"no tree id on the first line: {fields[0][:80]!r}")
    end = fields.index("", 1) if "" in fields[1:] else len(fields)
    paths = tuple(dict.fromkeys(fields[1:end]))
    return MergeTreeOutput(fields[0], clean, paths, tuple(_messages(fields[end + 1:])))


def _messages(fields: list[str]) -> Iterable[MergeMessage]:
    i = 0
    while i < len(fields) and fields[i].isdigit():
        count = int(fields[i])
        if i + count + 2 >= len(fields):
            raise UnexpectedOutput(f"message truncated after {fields[i:]!r}")
        paths = tuple(fields[i + 1:i + 1 + count])
        yield MergeMessage(paths, fields[i + 1 + count], fields[i + 2 + count].rstrip("\n"))
        i += count + 3
    if any(fields[i:]):
        raise UnexpectedOutput(f"unparsed message fields: {fields[i:i + 4]!r}")


def conflicts_from(messages: Iterable[MergeMessage],
                   conflicted_paths: Iterable[str] = ()) -> tuple[Conflict, ...]:
    """One Conflict per place in conflict, with the most specific kind git gave it.

    A path gets several messages (a binary file: `binary`, then `content`); the first kind
    other than plain `content` wins. A message about a path that an earlier conflict already
    names (the `fd~BRANCH` copy of a file/directory conflict) is folded into that conflict.
    """
    found: dict[str, Conflict] = {}
    for message in messages:
        if not message.is_conflict or not message.paths:
            continue
        path = _primary_path(message)
        owner = next((c for c in found.values() if path in c.paths), None)
        if owner is None:
            found[path] = Conflict(path, message.kind, _paths(path, message), message.text)
        elif owner.kind == "content" and message.kind != "content":
            found[owner.path] = Conflict(owner.path, message.kind, owner.paths, message.text)
    known = {p for c in found.values() for p in c.paths}
    for path in conflicted_paths:
        if path not in known:
            found[path] = Conflict(path, "unknown", (path,))
    return tuple(found.values())


def _primary_path(message: MergeMessage) -> str:
    # git names the moved-aside copy (`fd~BRANCH`) first; the user knows the original path.
    if message.kind == "file/directory" and len(message.paths) > 1:
        return message.paths[1]
    return message.paths[0]


def _paths(primary: str, message: MergeMessage) -> tuple[str, ...]:
    return (primary, *(p for p in message.paths if p != primary))


def blocked_overlap(path: str, others: Sequence[str]) -> Conflict:
    """An overlap `--overlap block` treats as a conflict: `path` was also changed by `others`,
    merged before this branch, whose work the branch does not contain."""
    return Conflict(path, "overlap", (path,),
                    f"{path} was also changed by {', '.join(others)} (--overlap block)")
