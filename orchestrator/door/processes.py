"""The process door, trio flavour: every child process the orchestrator starts under trio
(git, agents, setup and check commands, the claude agent's bash tool) starts here, and here is
the one process-group killer (SIGTERM, a grace period, SIGKILL).

Its synchronous twin is merge/gitcmd.py (merge/ cannot import trio); both make environments
with `child_env`/`git_env` and raise the same GitError.

Agent and command output goes through a pipe that we copy into a log as it arrives (flushed
at once, so `orchestrate logs -f` shows each line as the agent wrote it): the first
LOG_HEAD_BYTES, then only the last LOG_TAIL_BYTES with a line saying how much was left out, so
an agent printing without end cannot fill the disk. Bytes are copied as they are (invalid
UTF-8 included). Each such child runs in its own process group, killed on cancellation or
after the leader exits, so a backgrounded grandchild cannot outlive its step.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import termios
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO

import trio

from merge import (
    DRIVER_QUERY,
    HOOKLESS,
    LOCK_RETRIES,
    WORKTREE_LIST,
    GitError,
    GitResult,
    WorktreeEntry,
    check_worktree,
    decode,
    git_env,
    hardened_argv,
    is_lock_contention,
    may_run_drivers,
    parse_worktree_list,
    signal_group,
    untrusted_driver_overrides,
)
from orchestrator.door.sandbox import Confinement, confined_argv, sandbox_env
from orchestrator.door.seccomp import filter_fd, unix_socket_filter

SandboxedStart = tuple[list[str], Mapping[str, str] | None, tuple[int, ...]]

__all__ = ["WORKTREE_LIST", "CappedLog", "GitError", "GitResult", "WorktreeEntry", "git", "git_out",
           "kill_group", "parse_worktree_list", "resolve", "run_in_group", "run_in_pty",
           "run_with_time_limit",
           "verify"]

GRACE_S = 3.0
DRAIN_S = 1.0  # after the group is gone, how long to wait for an escaped process's output
LOG_HEAD_BYTES = 4 * 1024 * 1024
LOG_TAIL_BYTES = 1024 * 1024
CHUNK = 65536


def _group_alive(pgid: int, leader: trio.Process | None) -> bool:
    # reading `returncode` reaps an exited leader: as a zombie it would keep the group alive
    if leader is not None and leader.returncode is None:
        return True
    return signal_group(pgid, 0)


async def kill_group(pgid: int, leader: trio.Process | None = None) -> None:
    """SIGTERM the group, give it GRACE_S to exit, then SIGKILL whatever is left."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    with trio.move_on_after(GRACE_S):
        while _group_alive(pgid, leader):  # noqa: ASYNC110 - no event tells when a group is empty
            await trio.sleep(0.05)
    signal_group(pgid, signal.SIGKILL)


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
            self._put(head, flush=True)  # as produced: `logs -f` and `attach` read it live
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
                       env: Mapping[str, str] | None = None,
                       confinement: Confinement | None = None,
                       on_start: Callable[[int], None] | None = None) -> int:
    """Run `command` (a string through /bin/sh, or an argument list without a shell) in a new
    session and return its exit code; 127 or 126 when the program is missing or cannot run.
    With a `confinement` it runs in a bubblewrap sandbox (door/sandbox.py).

    stdout and stderr are copied into `output` (a file), bounded as described above.
    `on_start` gets the process id (= its group id) once it runs, e.g. to signal the group.
    """
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    read_fd, write_fd = os.pipe()
    try:
        with _sandboxed(argv, cwd, env, confinement) as (words, environment, fds):
            process = await trio.lowlevel.open_process(
                words, cwd=cwd, stdin=stdin or subprocess.DEVNULL, stdout=write_fd,
                stderr=write_fd, env=dict(environment) if environment is not None else None,
                start_new_session=True, pass_fds=fds)
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
    if on_start is not None:
        on_start(process.pid)
    log, copied = CappedLog(output), trio.Event()
    try:
        async with trio.lowlevel.FdStream(read_fd) as stream, trio.open_nursery() as nursery:
            nursery.start_soon(_copy, stream, log, copied)
            await _until_exit(process, copied, nursery)
    finally:
        log.close()
    return process.returncode if process.returncode is not None else -1


async def _until_exit(process: trio.Process, copied: trio.Event,
                      nursery: trio.Nursery) -> None:
    """Wait for the process; then, however the wait ended, kill what is left of its group,
    give its output a moment to drain into the log, and stop copying."""
    try:
        await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            await kill_group(process.pid, process)
            await process.wait()
            with trio.move_on_after(DRAIN_S):
                await copied.wait()
            nursery.cancel_scope.cancel()


PTY_SIZE = (40, 120)  # rows, columns of an agent's pseudo-terminal


async def run_in_pty(command: str | Sequence[str], *, cwd: Path, output: IO[bytes],
                     keys: Path, env: Mapping[str, str] | None = None,
                     confinement: Confinement | None = None) -> int:
    """Like `run_in_group`, but the child's stdin, stdout and stderr are a pseudo-terminal
    (its controlling terminal) whose output is logged as it comes. Bytes written to the FIFO
    `keys` (made here, removed at the end) are typed into it: `orchestrate attach`. With a
    `confinement` it runs in a bubblewrap sandbox, as `run_in_group` does."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *PTY_SIZE, 0, 0))
    keys_fd = _open_keys(keys)
    try:
        with _sandboxed(argv, cwd, env, confinement) as (words, environment, fds):
            process = await trio.lowlevel.open_process(
                words, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, pass_fds=fds,
                start_new_session=True, preexec_fn=_take_terminal,
                env=dict(environment) if environment is not None else None)
    except BaseException:
        for fd in (master, keys_fd):
            os.close(fd)
        _remove_keys(keys)
        raise
    finally:
        os.close(slave)
    log, copied = CappedLog(output), trio.Event()
    try:
        async with trio.lowlevel.FdStream(master) as terminal, \
                trio.lowlevel.FdStream(keys_fd) as typed, trio.open_nursery() as nursery:
            nursery.start_soon(_copy_terminal, terminal, log, copied)
            nursery.start_soon(_type_into, typed, terminal)
            await _until_exit(process, copied, nursery)
    finally:
        log.close()
        _remove_keys(keys)
    return process.returncode if process.returncode is not None else -1


def _open_keys(keys: Path) -> int:
    """The FIFO `attach` types into, opened for reading and writing: never at EOF."""
    _remove_keys(keys)
    os.mkfifo(keys, 0o600)
    return os.open(keys, os.O_RDWR | os.O_NONBLOCK)


def _remove_keys(keys: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(keys)


def _take_terminal() -> None:
    """In the child, after setsid: make its stdin (the pty) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def _copy_terminal(terminal: trio.lowlevel.FdStream, log: CappedLog,
                         done: trio.Event) -> None:
    try:
        while chunk := await terminal.receive_some(CHUNK):
            log.write(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # EIO: every process holding the terminal has exited
    finally:
        done.set()


async def _type_into(typed: trio.lowlevel.FdStream, terminal: trio.lowlevel.FdStream) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while chunk := await typed.receive_some(CHUNK):
            await terminal.send_all(chunk)


async def git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True,
              env: Mapping[str, str] | None = None, background: bool = False) -> GitResult:
    """`git ARGS` in `cwd` (hardened: merge/gitcmd.py), retrying briefly when another git
    holds one of its lock files. `background`: work nothing waits for (the conflict radar),
    at the lowest CPU priority."""
    check_worktree(cwd, args)
    overrides: tuple[str, ...] = ()
    if may_run_drivers(args):
        listing = await _capture(["git", *HOOKLESS, *DRIVER_QUERY], cwd, None, env)
        overrides = untrusted_driver_overrides(cwd, listing, args)
    argv = [*(["nice", "-n", "19"] if background else []), *hardened_argv(args, overrides)]
    for delay in (*LOCK_RETRIES, None):
        result = await _capture(argv, cwd, input, env)
        if delay is None or not is_lock_contention(result):
            break
        await trio.sleep(delay)
    if check and result.returncode != 0:
        raise GitError(args, cwd, result)
    return result


async def _capture(argv: list[str], cwd: Path, input: bytes | None,
                   env: Mapping[str, str] | None) -> GitResult:
    done = await trio.run_process(argv, cwd=cwd, stdin=input or b"", capture_stdout=True,
                                  capture_stderr=True, check=False, env=git_env(env))
    return GitResult(done.returncode, decode(done.stdout), decode(done.stderr))


async def git_out(cwd: Path, *args: str) -> str:
    """The stripped stdout of a git command that must succeed."""
    return (await git(cwd, *args)).stdout.strip()


async def verify(cwd: Path, rev: str) -> str:
    """The object `rev` names (`rev-parse --verify`); GitError when it names none."""
    return await git_out(cwd, "rev-parse", "--verify", rev)


async def is_ancestor(cwd: Path, commit: str, of: str) -> bool:
    """Whether `of` contains `commit` (`merge-base --is-ancestor`); a commit the repository
    does not have is no ancestor."""
    found = await git(cwd, "merge-base", "--is-ancestor", commit, of, check=False)
    return found.returncode == 0


async def resolve(cwd: Path, rev: str) -> str | None:
    """The object `rev` names, or None when it names none (`rev-parse --verify --quiet`)."""
    found = await git(cwd, "rev-parse", "-q", "--verify", rev, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


async def run_with_time_limit(argv: Sequence[str], *, cwd: Path, output: IO[bytes],
                              time_limit: float, env: Mapping[str, str],
                              confinement: Confinement | None = None) -> int | None:
    """Run `argv` in a new session with stdout and stderr into `output` (a file); its exit
    code, or None when `time_limit` ran out and the command was killed. Whatever it leaves
    running in its group is killed when it ends. With a `confinement`, in a sandbox."""
    pgid: int | None = None
    try:
        async with trio.open_nursery() as nursery:
            with _sandboxed(list(argv), cwd, env, confinement) as (words, environment, fds):
                start = partial(trio.run_process, words, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                check=False, env=dict(environment or {}), pass_fds=fds,
                                deliver_cancel=_kill_leader_group)
                process: trio.Process = await nursery.start(start)
            pgid = process.pid
            with trio.move_on_after(time_limit) as limit_scope:
                await process.wait()
            if limit_scope.cancelled_caught:
                nursery.cancel_scope.cancel()
        return None if limit_scope.cancelled_caught else process.returncode
    finally:
        if pgid is not None:
            signal_group(pgid, signal.SIGKILL)  # background jobs the command left behind


@contextmanager
def _sandboxed(argv: list[str], cwd: Path, env: Mapping[str, str] | None,
               confinement: Confinement | None) -> Iterator[SandboxedStart]:
    """The argument list, environment and inherited descriptors that start `argv` in
    `confinement` (the seccomp filter's descriptor is closed once the child has it)."""
    if confinement is None:
        yield argv, env, ()
        return
    fd = filter_fd(unix_socket_filter())
    try:
        yield (confined_argv(confinement, argv, cwd=cwd, seccomp_fd=fd),
               sandbox_env(os.environ if env is None else env, confinement), (fd,))
    finally:
        os.close(fd)


async def _kill_leader_group(process: trio.Process) -> None:
    await kill_group(process.pid, process)
