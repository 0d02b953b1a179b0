"""Names written, renamed or removed in a few folders, as the kernel reports them (Linux
inotify, through ctypes): nothing is missed between two looks, even a file made and removed
again at once. Where inotify is unavailable `DirEvents.open` returns None and callers fall
back to comparing what they see at their own checks.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import trio

from orchestrator.door.libc import libc

IN_MODIFY, IN_MOVED_FROM, IN_MOVED_TO = 0x2, 0x40, 0x80
IN_CLOSE_WRITE, IN_CREATE, IN_DELETE = 0x8, 0x100, 0x200
WRITES = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
HEADER = struct.Struct("iIII")  # watch, mask, cookie, length of the name that follows
READ_SIZE = 65536


class DirEvents:
    """An inotify descriptor watching folders for writes; `names` waits for the next ones."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, folders: Iterable[Path]) -> DirEvents | None:
        """Watch the `folders` that exist; None where the kernel offers no inotify."""
        try:
            calls = libc()
            fd = calls.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        watched = [folder for folder in folders if folder.is_dir()
                   and calls.inotify_add_watch(fd, os.fsencode(folder), WRITES) >= 0]
        if not watched:
            os.close(fd)
            return None
        return cls(fd)

    async def names(self) -> list[str]:
        """The names of the next writes (waits for at least one)."""
        while not (found := self.pending()):
            await trio.lowlevel.wait_readable(self.fd)
        return found

    def pending(self) -> list[str]:
        """The names of the writes reported so far and not yet read (no wait)."""
        found: list[str] = []
        while True:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return found
            found += _names(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _names(data: bytes) -> list[str]:
    found, at = [], 0
    while at + HEADER.size <= len(data):
        _, _, _, length = HEADER.unpack_from(data, at)
        at += HEADER.size
        found.append(os.fsdecode(data[at:at + length].rstrip(b"\0")))
        at += length
    return found
