"""Child processes in their own process group, output copied to a bounded log, and the whole group
killed on cancellation or after the leader exits (so a backgrounded grandchild cannot outlive
its step).

Output goes through a pipe that we copy into the log: the first LOG_HEAD_BYTES, then only the
last LOG_TAIL_BYTES with a line saying how much was left out, so an agent printing without end
cannot fill the disk. Bytes are copied as they are (invalid UTF-8 included).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import trio

GRACE_S = 3.0
DRAIN_S = 1.0  # after the group is gone, how long to wait for an escaped process's output
LOG_HEAD_BYTES = 4 * 1024 * 1024
LOG_TAIL_BYTES = 1024 * 1024
CHUNK = 65536


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_alive(pgid: int, leader: trio.Process | None) -> bool:
    # reading `returncode` reaps an exited leader: as a zombie it would keep the group alive
    if leader is not None and leader.returncode is None:
        return True
    return _signal_group(pgid, 0)


async def kill_group(pgid: int, leader: trio.Process | None = None) -> None:
    """SIGTERM the group, give it GRACE_S to exit, then SIGKILL whatever is left."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    with trio.move_on_after(GRACE_S):
        while _group_alive(pgid, leader):  # noqa: ASYNC110 - no event tells when a group is empty
            await trio.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)


class CappedLog:
    """Writes the first `head` bytes it is given to `output`, then keeps only the last `tail`
    bytes, which `close` writes after a note of how many bytes were omitted. A failing write
    (disk full) stops the logging, never the process being logged."""

    def __init__(self, output: IO[bytes], head: int = LOG_HEAD_BYTES,
                 tail: int = LOG_TAIL_BYTES) -> None:
        self.output, self.room, self.tail_limit = output, head, tail
        self.tail: deque[bytes] = deque()
        self.tail_size = self.omitted = 0
        self.broken = False

    def write(self, data: bytes) -> None:
        if self.room > 0:
            head, data = data[:self.room], data[self.room:]
            self.room -= len(head)
            self._put(head)
        if not data:
            return
        self.tail.append(data)
        self.tail_size += len(data)
        while self.tail_size - len(self.tail[0]) >= self.tail_limit:
            dropped = self.tail.popleft()
            self.tail_size -= len(dropped)
            self.omitted += len(dropped)

    def close(self) -> None:
        kept = b"".join(self.tail)
        cut = max(0, len(kept) - self.tail_limit)
        if self.omitted + cut:
            self._put(f"\n[orchestrate: {self.omitted + cut} bytes of output omitted "
                      "here]\n".encode())
        self._put(kept[cut:])
        self._put(b"", flush=True)

    def _put(self, data: bytes, *, flush: bool = False) -> None:
        if self.broken:
            return
        try:
            self.output.write(data)
            if flush:
                self.output.flush()
        except OSError:
            self.broken = True


async def _copy(stream: trio.lowlevel.FdStream, log: CappedLog, done: trio.Event) -> None:
    try:
        while chunk := await stream.receive_some(CHUNK):
            log.write(chunk)
    finally:
        done.set()


async def run_in_group(command: str | Sequence[str], *, cwd: Path, output: IO[bytes],
                       stdin: IO[bytes] | None = None,
                       env: Mapping[str, str] | None = None) -> int:
    """Run `command` (a string through /bin/sh, or an argument list without a shell) in a new
    session and return its exit code; 127 or 126 when the program is missing or cannot run.

    stdout and stderr are copied into `output` (a file), bounded as described above.
    """
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    read_fd, write_fd = os.pipe()
    try:
        process = await trio.lowlevel.open_process(
            argv, cwd=cwd, stdin=stdin or subprocess.DEVNULL,
            stdout=write_fd, stderr=write_fd, env=dict(env) if env is not None else None,
            start_new_session=True)
    except (FileNotFoundError, PermissionError) as exc:
        os.close(read_fd)
        if not await trio.Path(cwd).is_dir():
            raise
        output.write(f"orchestrate: cannot run {argv[0]}: {exc.strerror}\n".encode())
        return 127 if isinstance(exc, FileNotFoundError) else 126
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    log, copied = CappedLog(output), trio.Event()
    try:
        async with trio.lowlevel.FdStream(read_fd) as stream, trio.open_nursery() as nursery:
            nursery.start_soon(_copy, stream, log, copied)
            try:
                await process.wait()
            finally:
                with trio.CancelScope(shield=True):
                    await kill_group(process.pid, process)
                    await process.wait()
                    with trio.move_on_after(DRAIN_S):
                        await copied.wait()
                    nursery.cancel_scope.cancel()
    finally:
        log.close()
    return process.returncode if process.returncode is not None else -1
