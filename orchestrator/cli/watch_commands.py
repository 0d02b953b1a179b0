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
                       attempt=attempt, write=write, note=lambda line: click.echo(line, err=True)))


@cli.command(short_help="Return a subtask to pending; its branch is kept as .prev-N.")
@spec_argument()
@click.argument("subtask", shell_complete=complete_subtask)
@click.option("--drop", is_flag=True, help="Delete the subtask's branch instead of keeping it.")
@click.pass_context
def reset(ctx: click.Context, spec: str, subtask: str, drop: bool) -> None:
    """Return SUBTASK to pending: its worktree is removed and its branch kept as
    orchestrate/<spec>/<id>.prev-<n> (or deleted with --drop). The next build runs it afresh
    from the integration branch's head (`orchestrate build SPEC --only SUBTASK`)."""
    from orchestrator.workspace.reset import reset as reset_subtask

    found = spec_of(ctx, spec)
    done = reset_subtask(found, subtask, drop=drop)
    for path in done.worktrees:
        click.echo(f"removed worktree {path}")
    for note in done.kept:
        click.echo(f"kept {note}", err=True)
    if done.kept_as:
        click.echo(f"kept its branch as {done.kept_as}")
    if done.dropped:
        click.echo(f"deleted branch {done.dropped}")
    click.echo(f"{subtask}: {done.status_before} -> pending; next: "
               f"`orchestrate build {found.name} --only {subtask}`")


@cli.command(short_help="Connect to a running agent's terminal (pty = true); Ctrl-] detaches.")
@spec_argument()
@click.argument("subtask", shell_complete=complete_subtask)
@click.pass_context
def attach(ctx: click.Context, spec: str, subtask: str) -> None:
    """Show SUBTASK's running command agent and send it your keystrokes; Ctrl-] detaches and
    the agent keeps running. Needs `pty = true` in orchestrate.toml (or ORCHESTRATE_PTY=1),
    which runs command agents under a pseudo-terminal; otherwise see `orchestrate logs`."""
    from orchestrator.face.attach import attach as attach_to
    from orchestrator.face.attach import default_streams

    found = spec_of(ctx, spec)
    stdin, stdout = default_streams()
    ctx.exit(attach_to(found, load_plan(found.plan_path), subtask, stdin=stdin, stdout=stdout))
