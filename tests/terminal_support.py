"""The real `orchestrate` program in a pseudo-terminal, its output rendered by a terminal
emulator (pyte): what a user at a terminal of a given size really sees, scrollback included."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyte

from tests.conftest import ORCHESTRATE

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing
                    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, links
                    r"|\x1b[()][0-9A-Za-z]")  # character set selection


@dataclass
class Session:
    """What one run in the terminal produced."""

    raw: bytes
    returncode: int
    columns: int
    rows: int

    def lines(self) -> list[str]:
        """Every line the user can see or scroll back to, top to bottom, right-trimmed."""
        screen = pyte.HistoryScreen(self.columns, self.rows, history=100_000)
        pyte.ByteStream(screen).feed(self.raw)
        history = [_text(line, self.columns) for line in screen.history.top]
        return [*history, *(line.rstrip() for line in screen.display)]

    def text(self) -> str:
        return ESCAPE.sub("", self.raw.decode(errors="replace"))

    def widest_line(self) -> int:
        """The widest run of printed characters between line breaks in what the live display
        wrote (the closing error message, printed after it, is the terminal's to wrap)."""
        segments = re.split(r"\r\n|\r|\n", self.text().partition("orchestrate: error:")[0])
        return max((len(s) for s in segments), default=0)


def _text(line: dict[int, pyte.screens.Char], columns: int) -> str:
    return "".join(line[x].data for x in range(columns)).rstrip()


def run_in_terminal(repo: Path, *args: str, columns: int, rows: int, env: dict[str, str],
                    interrupt_when: Callable[[str], bool] | None = None,
                    timeout: float = 180) -> Session:
    """Run `orchestrate ARGS` with a pty of `columns` x `rows` as its terminal; if
    `interrupt_when(output so far)` becomes true, send it SIGINT (as Ctrl-C would)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    inherited = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full_env = {**inherited, **env, "TERM": "xterm-256color", "COLUMNS": str(columns),
                "LINES": str(rows)}
    process = subprocess.Popen([*ORCHESTRATE, *args], cwd=repo, env=full_env, stdin=slave,
                               stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    interrupted = interrupt_when is None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer of the pty has closed it
                    break
                if not data:
                    break
                chunks.append(data)
            if not interrupted and interrupt_when is not None and interrupt_when(
                    ESCAPE.sub("", b"".join(chunks).decode(errors="replace"))):
                process.send_signal(signal.SIGINT)
                interrupted = True
        else:
            raise AssertionError(f"orchestrate did not finish in {timeout} s:\n"
                                 + b"".join(chunks).decode(errors="replace")[-3000:])
        returncode = process.wait(timeout=30)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return Session(b"".join(chunks), returncode, columns, rows)
