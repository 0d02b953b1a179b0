"""The tests' watchdog over every `orchestrate` process they spawn.

A build that has printed its summary (`build_finished`) must exit within EXIT_BOUND_S seconds;
one that does not, or that outlives its test's timeout, fails the test with a listing of its
process tree (from /proc) and is killed with its whole process group and every descendant,
instead of leaving pytest to wait for its own timeout. Each child runs in a process group of
its own so that nothing it leaves behind outlives the kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

EXIT_BOUND_S = float(os.environ.get("ORCH_TEST_EXIT_BOUND", "30"))
POLL_S = 0.05


def finished_line(line: str) -> bool:
    """Whether `line` of a build's output is its `build_finished` event (plain or --json)."""
    if line.startswith("done: "):
        return True
    if line.startswith("{") and '"build_finished"' in line:
        with contextlib.suppress(ValueError):
            return bool(json.loads(line).get("kind") == "build_finished")
    return False


def run_watched(argv: list[str], *, cwd: Path, env: dict[str, str],
                timeout: float) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(argv, capture_output=True, text=True)` under the watchdog."""
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, process_group=0)
    assert process.stdout is not None
    assert process.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [_drain(process.stdout, out), _drain(process.stderr, err)]
    code = watch(process, lambda: b"".join(out).decode(errors="replace"), timeout,
                 " ".join(argv[3:5]))
    for reader in readers:  # a leftover process may hold the pipes: do not wait for it
        reader.join(timeout=EXIT_BOUND_S)
    return subprocess.CompletedProcess(argv, code, b"".join(out).decode(errors="replace"),
                                       b"".join(err).decode(errors="replace"))


def _drain(stream: IO[bytes], into: list[bytes]) -> threading.Thread:
    def read() -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            into.append(chunk)
        stream.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def watch(process: subprocess.Popen[bytes], output: Callable[[], str], timeout: float,
          what: str, bound: float = EXIT_BOUND_S) -> int:
    """Wait for `process` to exit; fail the test (after killing its tree) if it is still
    running `bound` seconds after its output shows `build_finished`, or after `timeout`."""
    started = time.monotonic()
    finished_at: float | None = None
    while (code := process.poll()) is None:
        now = time.monotonic()
        if finished_at is None and any(finished_line(line)
                                       for line in output().splitlines()):
            finished_at = now
        if finished_at is not None and now - finished_at > bound:
            _hung(process, output(), f"`{what}` printed its summary but was still running "
                                     f"{bound:g} s later")
        if now - started > timeout:
            _hung(process, output(), f"`{what}` still running after {timeout:g} s")
        time.sleep(POLL_S)
    return code


def _hung(process: subprocess.Popen[bytes], output: str, why: str) -> None:
    tree = process_tree(process.pid)
    kill_tree(process.pid)
    process.wait()
    pytest.fail(f"hang: {why}\nprocess tree:\n{tree}\noutput:\n{output[-4000:]}",
                pytrace=False)


def _processes() -> dict[int, tuple[int, int, str, str]]:
    """pid -> (ppid, pgid, state, command line) of every process /proc shows."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0], argv.strip())
    return found


def _descendants(root: int, table: dict[int, tuple[int, int, str, str]]) -> list[int]:
    """`root`, every process below it, and every other member of its process group."""
    chosen = [root]
    for pid in chosen:
        chosen += [p for p, info in table.items() if info[0] == pid and p not in chosen]
    chosen += [p for p, info in table.items() if info[1] == root and p not in chosen]
    return [p for p in chosen if p in table]


def process_tree(root: int) -> str:
    table = _processes()
    rows = [f"{'PID':>7} {'PPID':>7} {'PGID':>7} S  COMMAND"]
    rows += [f"{pid:>7} {table[pid][0]:>7} {table[pid][1]:>7} {table[pid][2]}  "
             f"{table[pid][3][:200]}" for pid in _descendants(root, table)]
    return "\n".join(rows)


def kill_tree(root: int) -> None:
    """SIGKILL `root`'s process group and every descendant (agents run in groups of their
    own)."""
    table = _processes()
    groups = {table[pid][1] for pid in _descendants(root, table)} | {root}
    for group in groups - {os.getpgrp()}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
