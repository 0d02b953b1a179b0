"""The command line: the click group (app.py) and the modules that register its commands
(`register`: one import per module). `--version` is answered before click is even imported,
and the plain shapes of `status`, `validate` and `list` without it (quick.py)."""

from __future__ import annotations

import sys


def register() -> None:
    """Import every command module; each registers its commands with the click group."""
    from orchestrator.cli import build_commands, plan_commands, review_commands  # noqa: F401


def main() -> None:
    """The program (the `orchestrate` script and `python -m orchestrator`)."""
    if sys.argv[1:] == ["--version"]:  # what click's version option prints, without click
        from orchestrator import __version__

        print(f"orchestrate, version {__version__}")
        return
    from orchestrator.cli.quick import run_quick

    if (code := run_quick(sys.argv[1:])) is not None:
        sys.exit(code)
    from orchestrator.cli.app import main as run

    run()
