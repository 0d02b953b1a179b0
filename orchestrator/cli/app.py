"""The click group every command module registers with; errors become exit codes in one place.

Heavy modules (trio, the scheduler, anthropic) are imported inside the commands that need them,
so `status`, `validate`, `list` and `--help` start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator import __version__
from orchestrator.cli.support import EPILOG, run_main
from orchestrator.errors import OrchestrateError
from orchestrator.face.quick import error_exit, repo_at, say_json, spec_at
from orchestrator.plan.parse import load_plan
from orchestrator.plan.specs import Spec

if TYPE_CHECKING:
    pass


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            ctx.exit(error_exit(exc))


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
    return repo_at(ctx.obj)


def spec_of(ctx: click.Context, name: str) -> Spec:
    return spec_at(ctx.obj, name)


def echo_json(data: object) -> None:
    say_json(data)


def note_rerun(spec: Spec) -> None:
    from orchestrator.build.stale import rerun_note

    try:
        note = rerun_note(spec, load_plan(spec.plan_path))
    except OrchestrateError:
        return  # an unreadable plan has no statuses to rerun; build will say what is wrong
    if note:
        click.echo(note)
