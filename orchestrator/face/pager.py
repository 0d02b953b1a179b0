"""Long output through a pager, the way git does it: only when stdout is a terminal, with the
pager git would pick (`git var GIT_PAGER`: GIT_PAGER, core.pager, PAGER, else git's default)
and git's defaults for less (`LESS=FRX`: quit when it fits one screen, keep colours, no
screen clearing) and lv (`LV=-c`). `cat` or an empty pager means print directly."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from merge import child_env, run_attached, run_git


def colour_wanted() -> bool:
    """Colour on a terminal, never with NO_COLOR set (https://no-color.org) or TERM=dumb."""
    return (sys.stdout.isatty() and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb")


def page(text: str, repo: Path) -> None:
    """Show `text` through the pager on a terminal, else print it."""
    pager = _pager(repo) if sys.stdout.isatty() and text else None
    if pager is None:
        click.echo(text, nl=False, color=colour_wanted())
        return
    env = child_env()
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the pager's, as in git
    try:
        done = run_attached(pager, input=text.encode(), env=env)
    finally:
        signal.signal(signal.SIGINT, previous)
    if done is None or done in (126, 127):  # the pager could not start
        click.echo(text, nl=False, color=colour_wanted())


def _pager(repo: Path) -> str | None:
    found = run_git(repo, "var", "GIT_PAGER", check=False)
    pager = found.stdout.strip() if found.returncode == 0 else os.environ.get("PAGER", "less")
    return None if pager in ("", "cat") else pager
