"""Commands that watch and steer a build: logs, attach, reset."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.app import cli, spec_of
from orchestrator.cli.support import complete_subtask, spec_argument
from orchestrator.plan.parse import load_plan


@cli.command(short_help="A subtask's log, or every subtask's; -f follows it.")
@spec_argument()
@click.argument("subtask", required=False, shell_complete=complete_subtask)
@click.option("-f", "--follow", is_flag=True,
              help="Go on printing new lines until the subtask's attempt (or, without "
              "SUBTASK, the build) ends.")
@click.option("--attempt", type=click.IntRange(min=1), metavar="N",
              help="Only attempt N of the subtask (its latest build's).")
@click.pass_context
def logs(ctx: click.Context, spec: str, subtask: str | None, follow: bool,
         attempt: int | None) -> None:
    """SUBTASK's log (agent, setup and verification output, as written), or every subtask's
    with each line prefixed by its id."""
    from orchestrator.face.subtask_logs import show_logs

    found = spec_of(ctx, spec)
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        if data:
            out.write(data)
            out.flush()

    ctx.exit(show_logs(found, load_plan(found.plan_path), subtask, follow=follow,
                       attempt=attempt, write=write))
