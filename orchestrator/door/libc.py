"""The C library, for the few system calls Python has no function for (mount, umount2,
inotify): looked up among the process's own symbols, so no `ldconfig` runs to find it."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
