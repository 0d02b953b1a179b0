"""The real command line run in this process: the same click group and the same `run_main`
(usage errors, exit codes) as `python -m orchestrator`, without starting Python again. For
tests of commands that never start a build (validate, status, report); what differs from the
spawned program is only `__main__`'s SIGTERM handler."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.cli.support import run_main


def run_cli_in_process(repo: Path, *args: str, env: dict[str, str] | None = None,
                       check: int | None = None) -> subprocess.CompletedProcess[str]:
    """`orchestrate ARGS` in `repo`, as `tests.conftest.run_cli` would run it, in this process."""
    argv = ["orchestrate", *args]
    with contextlib.chdir(repo), CliRunner().isolation(env=env) as (out, err, _), \
            _argv(argv):
        try:
            run_main(cli)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    done = subprocess.CompletedProcess(argv, code, stdout, stderr)
    if check is not None:
        assert code == check, f"exit {code} != {check}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    return done


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved, sys.argv = sys.argv, argv
    try:
        yield
    finally:
        sys.argv = saved
