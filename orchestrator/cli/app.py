"""The click group every command module registers with; errors become exit codes in one place.

Heavy modules (trio, the scheduler, anthropic) are imported inside the commands that need them,
so `status`, `validate`, `list` and `--help` start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator import __version__
from orchestrator.cli.support import EPILOG, run_main
from orchestrator.errors import OrchestrateError
from orchestrator.face.progress import reader_gone
from orchestrator.face.quick import repo_at, say_json, spec_at
from orchestrator.plan.parse import load_plan
from orchestrator.plan.specs import Spec

if TYPE_CHECKING:
    pass


EXIT_READER_GONE = 141  # 128 + SIGPIPE, as a shell reports a command whose reader went away


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
        except BrokenPipeError:  # `orchestrate validate 001 | head`: the reader went away
            reader_gone(sys.stdout)
            ctx.exit(EXIT_READER_GONE)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if said := _known_git_trouble(exc):
                click.echo(f"orchestrate: error: {said[0]}\n{said[1]}", err=True)
                ctx.exit(1)
            ctx.exit(_crash_note())


def _known_git_trouble(exc: Exception) -> tuple[str, str] | None:
    """A git failure the user can act on (a lock file left behind), as message and hint."""
    from merge import GitError, lock_message

    return lock_message(exc) if isinstance(exc, GitError) else None


def _crash_note() -> int:
    from orchestrator.face.quick import crash_note

    return crash_note()


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
