"""SIGTERM as Ctrl-C from the first instant: installed before anything else runs, so that a
SIGTERM during start-up (imports, checks, trio's start, the recovery of an earlier run) ends the
program like SIGINT does, with exit 130, instead of killing it outright. Once the build's
own signal receiver is installed (build.py) it takes over both signals."""

from __future__ import annotations

import signal
from types import FrameType


def term_as_interrupt() -> None:
    signal.signal(signal.SIGTERM, _as_sigint)


def _as_sigint(signum: int, frame: FrameType | None) -> None:
    # Through SIGINT's own handler: under trio that is its KeyboardInterrupt manager, which
    # delivers the interrupt at a safe point; before trio, Python's, which raises at once.
    if callable(signal.getsignal(signal.SIGINT)):
        signal.raise_signal(signal.SIGINT)
    else:  # SIGINT ignored (started in the background by a shell): still interrupt
        raise KeyboardInterrupt
