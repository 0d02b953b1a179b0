"""Repository paths and globs as a plan declares them (SPEC 11): `*` and `?` inside one path
segment, `**` as a whole segment for any number of segments (none included).

A declared path also covers everything below it: declaring the folder `docs` (or `docs/`)
declares `docs/a.md`. A glob's last segment names files only: `src/*.py` does not declare
`src/a.py/x` (so `**/*.py` and `**/*.md` do not intersect), and `src/*` declares what lies
directly in `src`, `src/**` everything below it. Two declarations intersect when some path matches
both; for globs that is decided on the patterns themselves (an automaton product over
segments, and over characters inside a segment), so it needs no list of files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import TypeVar

GLOB_CHARS = frozenset("*?")
DEEP = "**"
T = TypeVar("T")


def normalize(pattern: str) -> str:
    """`./src//a.py` and `/src/a.py` -> `src/a.py`; `.` segments dropped."""
    return "/".join(s for s in pattern.strip().split("/") if s not in ("", "."))


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


@lru_cache(maxsize=4096)
def _segments(pattern: str) -> tuple[str, ...]:
    """The pattern's segments; a last segment without glob characters may name a folder, so
    a `**` follows it for everything below."""
    segments = tuple(normalize(pattern).split("/"))
    return segments if is_glob(segments[-1]) else (*segments, DEEP)


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in _segments(pattern):
        if segment == DEEP:
            parts.append("(?:/[^/]+)*")
        else:
            parts.append("/" + "".join("[^/]*" if c == "*" else "[^/]" if c == "?"
                                       else re.escape(c) for c in segment))
    return re.compile("".join(parts))


def matches(pattern: str, path: str) -> bool:
    """Whether the file `path` (literal) is declared by `pattern`."""
    return _regex(pattern).fullmatch("/" + normalize(path)) is not None


def intersect(a: str, b: str) -> bool:
    """Whether some path is declared by both `a` and `b` (each a path or a glob)."""
    if not (is_glob(a) or is_glob(b)):
        x, y = normalize(a), normalize(b)
        return x == y or x.startswith(y + "/") or y.startswith(x + "/")
    return _product_accepts(_segments(a), _segments(b), DEEP, _segments_meet)


def any_intersect(left: Iterable[str], right: Sequence[str]) -> bool:
    return any(intersect(a, b) for a in left for b in right)


@lru_cache(maxsize=8192)
def _segments_meet(a: str, b: str) -> bool:
    """Whether one path segment matches both segment patterns."""
    if a == DEEP or b == DEEP:
        return True
    return _product_accepts(_chars(a), _chars(b), "*", _chars_meet)


def _chars(segment: str) -> tuple[str, ...]:
    """`**` inside a segment (`a**b`) means what `*` means there."""
    return tuple(re.sub(r"\*+", "*", segment))


def _chars_meet(a: str, b: str) -> bool:
    return a == b or "?" in (a, b)


def _product_accepts(p: Sequence[T], q: Sequence[T], star: T,
                     meet: Callable[[T, T], bool]) -> bool:
    """Whether two patterns (sequences of items, `star` = any number of anything) accept a
    common word: a search over pairs of positions, each step consuming one common letter."""
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(p) and j == len(q):
            return True
        x = p[i] if i < len(p) else None
        y = q[j] if j < len(q) else None
        if x == star:
            todo.append((i + 1, j))
        if y == star:
            todo.append((i, j + 1))
        if x is None or y is None or (x == star and y == star):
            continue
        if x == star or y == star or meet(x, y):
            todo.append((i if x == star else i + 1, j if y == star else j + 1))
    return False


def uncovered(declared: Sequence[str], changed: Iterable[str]) -> list[str]:
    """The changed paths none of `declared` covers ([] when nothing was declared)."""
    if not declared:
        return []
    return sorted({p for p in changed if not any(matches(d, p) for d in declared)})
