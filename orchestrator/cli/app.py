"""The click group every command module registers with; errors become exit codes in one place.

Heavy modules (trio, the scheduler, anthropic) are imported inside the commands that need them,
so `status`, `validate`, `list` and `--help` start fast.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator import __version__
from orchestrator.cli.support import EPILOG, run_main
from orchestrator.errors import OrchestrateError, UsageError
from orchestrator.plan.parse import load_plan
from orchestrator.plan.specs import Spec, resolve_spec

if TYPE_CHECKING:
    pass


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OrchestrateError as exc:
            click.echo(f"orchestrate: error: {exc.message}", err=True)
            if exc.hint:
                click.echo(exc.hint, err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("orchestrate: interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception:
            ctx.exit(_crash_note())


def _crash_note() -> int:
    fd, path = tempfile.mkstemp(prefix="orchestrate-crash-", suffix=".log")
    with os.fdopen(fd, "w") as handle:
        traceback.print_exc(file=handle)
    kind = sys.exc_info()[0]
    click.echo(f"orchestrate: internal error ({kind.__name__ if kind else 'unknown'}); "
               f"this is a bug. Details: {path}", err=True)
    return 1


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="orchestrate")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The git repository (default: the one containing the current directory).")
@click.pass_context
def cli(ctx: click.Context, repo: Path | None) -> None:
    """Run an implementation plan's subtasks with coding agents in parallel git worktrees."""
    ctx.obj = repo


def main() -> None:
    from orchestrator.interrupts import term_as_interrupt

    term_as_interrupt()
    run_main(cli)


def repo_of(ctx: click.Context) -> Path:
    from merge import run_git

    start = Path(ctx.obj or Path.cwd())
    where = "option --repo" if ctx.obj else "the current directory"
    if not start.is_dir():
        raise UsageError(f"{where}: {start} is not a folder")
    found = run_git(start, "rev-parse", "--show-toplevel", check=False)
    if found.returncode != 0 or not found.stdout.strip():
        raise UsageError(f"{where}: {start.resolve()} is not inside a git repository "
                         "with a working tree",
                         "Run orchestrate inside your repository or pass --repo PATH.")
    return Path(found.stdout.strip())


def spec_of(ctx: click.Context, name: str) -> Spec:
    return resolve_spec(repo_of(ctx), name)


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def note_rerun(spec: Spec) -> None:
    from orchestrator.build.stale import rerun_note

    try:
        note = rerun_note(spec, load_plan(spec.plan_path))
    except OrchestrateError:
        return  # an unreadable plan has no statuses to rerun; build will say what is wrong
    if note:
        click.echo(note)
