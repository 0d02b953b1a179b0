"""Commands that read or start a plan: validate, status, list, init."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import cli, repo_of
from orchestrator.cli.support import spec_argument
from orchestrator.face.quick import show_specs, show_status, show_validation

if TYPE_CHECKING:
    pass


@cli.command(short_help="Check a plan and summarise it.")
@spec_argument()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def validate(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Check the plan; exit 0 with a summary line (and a warning per predicted overlap of
    declared files), or 2 naming every problem."""
    show_validation(ctx.obj, spec, as_json)


@cli.command(short_help="Phases and subtasks with status, merge result, times.")
@spec_argument()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Phases and subtasks with status, branch, merge result and times."""
    show_status(ctx.obj, spec, as_json)


@cli.command(name="list", short_help="Specs in this repository with their progress.")
@click.pass_context
def list_specs(ctx: click.Context) -> None:
    """Specs in this repository with their progress."""
    show_specs(ctx.obj)


@cli.command(short_help="Start a new spec folder with a starter plan and spec.md.")
@click.argument("name")
@click.pass_context
def init(ctx: click.Context, name: str) -> None:
    """Create .orchestrate/specs/NAME/ with a starter plan and spec.md (never overwrites)."""
    from orchestrator.plan.starter import create_spec

    spec = create_spec(repo_of(ctx), name)
    where = spec.folder.relative_to(spec.repo)
    click.echo(f"created {where}/implementation_plan.json and {where}/spec.md")
    click.echo(f"Next: edit them, then `orchestrate validate {name}` and "
               f"`orchestrate build {name} --dry-run`.")
