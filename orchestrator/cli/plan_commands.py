"""Commands that read or start a plan: validate, status, list, init."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator import names
from orchestrator.cli.app import cli, echo_json, repo_of, spec_of
from orchestrator.cli.support import spec_argument
from orchestrator.errors import OrchestrateError, PlanError
from orchestrator.plan.parse import load_plan, require_subtasks
from orchestrator.plan.specs import all_specs

if TYPE_CHECKING:
    pass


@cli.command(short_help="Check a plan and summarise it.")
@spec_argument()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def validate(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Check the plan; exit 0 with a summary line (and a warning per predicted overlap of
    declared files), or 2 naming every problem."""
    from orchestrator.face.views import (
        description_warnings,
        invalid_json,
        overlap_warnings,
        validate_json,
        validate_line,
    )
    from orchestrator.plan.declared import predicted_overlaps

    found = spec_of(ctx, spec)
    try:
        plan = load_plan(found.plan_path)
        require_subtasks(plan, found.plan_path)
    except PlanError as exc:
        if not as_json:
            raise
        echo_json(invalid_json(found, exc))  # a JSON object on stdout either way
        ctx.exit(exc.exit_code)
    overlaps = predicted_overlaps(plan, found.repo)
    if as_json:
        echo_json(validate_json(found, plan, overlaps))
        return
    click.echo(validate_line(found, plan))
    for line in [*description_warnings(plan), *overlap_warnings(overlaps)]:
        click.echo(line)


@cli.command(short_help="Phases and subtasks with status, merge result, times.")
@spec_argument()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Phases and subtasks with status, branch, merge result and times."""
    from orchestrator.build.stale import stale_ids
    from orchestrator.face.status_table import Style, status_table
    from orchestrator.face.views import status_json

    found = spec_of(ctx, spec)
    plan = load_plan(found.plan_path)
    stale = stale_ids(found, plan)
    if as_json:
        echo_json(status_json(found, plan, stale))
    else:
        click.echo(status_table(found, plan, Style.for_stdout(), stale), color=True)


@cli.command(name="list", short_help="Specs in this repository with their progress.")
@click.pass_context
def list_specs(ctx: click.Context) -> None:
    """Specs in this repository with their progress."""
    from orchestrator.face.views import progress_line

    specs = all_specs(repo_of(ctx))
    if not specs:
        click.echo(f"no specs (looked in {' and '.join(names.SPEC_ROOTS)})")
    for spec in specs:
        try:
            line = progress_line(load_plan(spec.plan_path))
        except OrchestrateError as exc:
            line = "invalid plan: " + exc.message.splitlines()[-1].strip(" -")
        click.echo(f"{spec.name:<32} {line}  [{spec.folder.parent.parent.name}]")


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
