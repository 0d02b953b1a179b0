"""`orchestrate attach SPEC ID`: this terminal connected to a running command agent's
pseudo-terminal (config `pty = true`). What the agent writes reaches its log as it is produced
and is shown from there; keystrokes go into the FIFO next to the log, which the build types
into the agent's terminal. Ctrl-] detaches; the agent keeps running.

Attaching is refused (exit 1, pointing to `logs`) when nobody reads that FIFO: the subtask is
not running, or its agent is not under a terminal (no `pty`, the claude agent, `--runner ray`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from orchestrator import names
from orchestrator.errors import OrchestrateError, UsageError
from orchestrator.face.subtask_logs import Tail
from orchestrator.plan.model import Plan
from orchestrator.plan.specs import Spec

DETACH = b"\x1d"  # Ctrl-]
POLL_S = 0.05
SCREEN_BYTES = 4096  # of recent output shown on attaching


class NotAttachable(OrchestrateError):
    exit_code = 1


def attach(spec: Spec, plan: Plan, subtask_id: str, *, stdin: BinaryIO,
           stdout: BinaryIO) -> int:
    known = [s.id for s in plan.subtasks()]
    if subtask_id not in known:
        raise UsageError(f"no subtask {subtask_id!r} in {spec.name}: its subtasks are "
                         f"{', '.join(known[:20])}{' …' if len(known) > 20 else ''}",
                         f"See `orchestrate status {spec.name}`.")
    log = names.subtask_log(spec.logs, subtask_id)
    keys = names.attach_keys(log)
    fifo = _open_keys(keys, spec, subtask_id, str(plan.subtask(subtask_id).status))
    try:
        _session(fifo, keys, log, stdin, stdout, subtask_id)
    finally:
        os.close(fifo)
    return 0


def _open_keys(keys: Path, spec: Spec, subtask_id: str, status: str) -> int:
    try:
        return os.open(keys, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENXIO):
            raise
    raise NotAttachable(
        f"{subtask_id} has no agent running under a terminal (it is {status}); only a "
        "running command agent with `pty = true` in orchestrate.toml (or ORCHESTRATE_PTY=1) "
        "can be attached to",
        f"Its output: `orchestrate logs {spec.name} {subtask_id}` (-f follows it).")


def _session(fifo: int, keys: Path, log: Path, stdin: BinaryIO, stdout: BinaryIO,
             subtask_id: str) -> None:
    say = _writer(stdout)
    say(f"[attached to {subtask_id}; Ctrl-] detaches, the agent keeps running]\r\n".encode())
    size = log.stat().st_size if log.exists() else 0
    tail = Tail(log, max(0, size - SCREEN_BYTES))
    with _raw(stdin):
        while True:
            say(tail.read())
            if not keys.exists():
                say(tail.read())
                say(f"\r\n[{subtask_id}: the agent's run ended]\r\n".encode())
                return
            ready = select.select([stdin], [], [], POLL_S)[0]
            if not ready:
                continue
            typed = os.read(stdin.fileno(), 1024)
            before, detached, _ = typed.partition(DETACH)
            _send(fifo, before)
            if detached or not typed:
                say(f"\r\n[detached from {subtask_id}]\r\n".encode())
                return


def _send(fifo: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fifo, data):]
        except BlockingIOError:
            time.sleep(POLL_S)
        except BrokenPipeError:
            return  # the build stopped reading: the agent ended


def _writer(stdout: BinaryIO) -> Callable[[bytes], None]:
    def say(data: bytes) -> None:
        if data:
            stdout.write(data)
            stdout.flush()
    return say


@contextlib.contextmanager
def _raw(stdin: BinaryIO) -> Iterator[None]:
    """Keystrokes one by one, unechoed (the agent's terminal echoes), while attached."""
    if not os.isatty(stdin.fileno()):
        yield
        return
    saved = termios.tcgetattr(stdin.fileno())
    try:
        tty.setraw(stdin.fileno())
        yield
    finally:
        termios.tcsetattr(stdin.fileno(), termios.TCSADRAIN, saved)


def default_streams() -> tuple[BinaryIO, BinaryIO]:
    return sys.stdin.buffer, sys.stdout.buffer
