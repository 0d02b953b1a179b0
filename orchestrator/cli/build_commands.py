"""Commands that run work: build and merge, and the options they share."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from orchestrator import names
from orchestrator.cli.app import cli, echo_json, spec_of
from orchestrator.cli.support import EPILOG, spec_argument
from orchestrator.errors import UsageError
from orchestrator.names import AGENT_KINDS
from orchestrator.plan.parse import load_plan, require_subtasks
from orchestrator.plan.specs import Spec

if TYPE_CHECKING:
    from orchestrator.settings import Settings


def _build_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--max-parallel", type=int, metavar="N",
                     help="Agents running at once, for the whole build (default 5)."),
        click.option("--agent", type=click.Choice(AGENT_KINDS),
                     help="claude: the built-in agent on the Anthropic API (default when "
                     "ANTHROPIC_API_KEY is set); command: --agent-command; or a CLI agent "
                     "preset."),
        click.option("--agent-command", metavar="CMD",
                     help="Shell command that runs an agent in each worktree; the prompt "
                     "arrives on stdin and in ORCHESTRATE_PROMPT_FILE."),
        click.option("--model", metavar="M",
                     help="Model for --agent claude (default claude-sonnet-5-5) or a preset; "
                     "a command agent gets it as ORCHESTRATE_MODEL."),
        click.option("--base", metavar="REF", help="Start a new integration branch from REF "
                     "(default: the branch checked out in the main worktree)."),
        click.option("--timeout", type=float, metavar="S",
                     help="Seconds per agent attempt (also the limit for verification)."),
        click.option("--retries", type=int, metavar="N",
                     help="Extra attempts after a failed one (default 1)."),
        click.option("--overlap", type=click.Choice(["merge", "block"]),
                     help="A path changed by two parallel subtasks: merge it if git can and "
                     "flag it (default), or block it like a conflict."),
        click.option("--no-merge", is_flag=True, default=None,
                     help="Run and commit the ready subtasks, then stop before merging."),
        click.option("--retry-failed", is_flag=True, default=None,
                     help="Run failed and conflict subtasks again."),
        click.option("--only", metavar="ID[,ID...]",
                     help="Run just these subtasks (failed and conflict ones too); their "
                     "dependencies must be completed."),
        click.option("--keep-worktrees", is_flag=True, default=None,
                     help="Keep each merged subtask's worktree instead of removing or "
                     "parking it."),
        click.option("--dry-run", is_flag=True, default=None,
                     help="Print the schedule (phases, waves, branches); create nothing."),
        click.option("--json", is_flag=True, default=None,
                     help="Print one JSON object per event instead of the live display."),
        *_check_options(),
        click.option("--schedule", type=click.Choice(["spread", "together"]),
                     help="Parallel subtasks declaring a common file run in waves (spread, "
                          "the default) or all together."),
        click.option("--budget", type=float, metavar="USD",
                     help="Start no subtask or attempt once the spec's cost reaches USD."),
        click.option("--resolve", type=click.Choice(["agent", "manual"]),
                     help="Conflicts go back to the subtask's agent (default) or to you."),
        click.option("--resolve-attempts", type=int, metavar="N",
                     help="Resolution rounds per conflict with --resolve agent (default 2)."),
        click.option("--runner", type=click.Choice(["local", "ray"]),
                     help="Where subtasks run: local worktrees (default) or a Ray cluster."),
        click.option("--ray-address", metavar="ADDRESS",
                     help="The Ray cluster for --runner ray (default auto)."),
        click.option("--remote", metavar="NAME",
                     help="Git remote Ray workers fetch from and push to (default origin)."),
        click.option("--ui", is_flag=True, default=None,
                     help="Serve the live page of the build on 127.0.0.1 while it runs; its "
                     "URL is the first line printed."),
        *_radar_options(),
        click.option("--sandbox", type=click.Choice(["auto", "bwrap", "none"]),
                     help="Run agents, setup, verification and checks in a bubblewrap sandbox "
                          "(auto: where bwrap works; the default)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _radar_options() -> list[Callable[[Any], Any]]:
    return [
        click.option("--radar", type=click.Choice(["off", "show", "tell"]),
                     help="Watch running agents for edits to the same path: show them "
                          "(default), also tell the agents, or off."),
        click.option("--radar-interval", type=float, metavar="S",
                     help="Seconds between the radar's looks at the worktrees (default 5)."),
    ]


def _check_options() -> list[Callable[[Any], Any]]:
    return [
        click.option("--check", help="Shell command that must pass on every integrated commit."),
        click.option("--check-timeout", type=float,
                     help="Seconds per check run (default: --timeout)."),
        click.option("--check-retries", type=int,
                     help="Reruns of a failing check on the same commit (default 1)."),
    ]


def _with_check_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_check_options()):
        func = option(func)
    return func


@cli.command(short_help="Run the subtasks with agents, integrate the branches.",
             epilog=EPILOG.split("\n\n")[0])
@spec_argument()
@_build_options
@click.pass_context
def build(ctx: click.Context, /, spec: str, **options: Any) -> None:
    """Run the plan's subtasks with agents and integrate their branches."""
    from orchestrator.settings import load_settings

    found = spec_of(ctx, spec)
    require_subtasks(load_plan(found.plan_path), found.plan_path)
    settings = load_settings(found.repo, options)
    if settings.dry_run:
        _dry_run(found, settings)
        return
    from orchestrator.build.run import run_build
    from orchestrator.face.progress import sink_for

    alongside = None
    if settings.ui:
        from orchestrator.cli.ui_command import build_page

        alongside = build_page(found, settings.budget)
    ctx.exit(run_build(found, settings, alongside=alongside, open_sink=partial(
        sink_for, as_json=settings.json, events=names.events_log(found.logs))))


def _dry_run(spec: Spec, settings: Settings) -> None:
    """The schedule, after the same read-only checks as the build (repository, base, branch
    names, and an agent that was given). A dry run needs no agent: none is a note, not an
    error."""
    from orchestrator.agents import check_agent_configured
    from orchestrator.build.preflight import check_repository
    from orchestrator.face.views import schedule_json, schedule_text, shown_pairs
    from orchestrator.plan.declared import predicted_overlaps

    plan = load_plan(spec.plan_path)
    try:
        check_agent_configured(settings, spec.repo)
    except UsageError as exc:
        if settings.agent is not None:
            raise  # an agent that was given and cannot run is refused like the build
        click.echo(f"note: {exc.message} (the build will need one)", err=True)
    target = check_repository(spec, settings.base, plan)
    overlaps = predicted_overlaps(plan, spec.repo, shown_pairs(plan))
    if settings.json:
        echo_json(schedule_json(spec, plan, settings, overlaps, target))
    else:
        click.echo(schedule_text(spec, plan, settings, overlaps, target))


@cli.command(name="merge", short_help="Integrate committed work and fixed conflicts.")
@spec_argument()
@click.option("--overlap", type=click.Choice(["merge", "block"]),
              help="Merge overlapping edits git can merge and flag them (default), or block "
              "them like conflicts.")
@click.option("--json", is_flag=True, default=None, help="Print one JSON object per event.")
@_with_check_options
@click.pass_context
def merge_cmd(ctx: click.Context, /, spec: str, **options: Any) -> None:
    """Integrate committed-but-unmerged and conflict subtasks."""
    from orchestrator.build.run import run_merge
    from orchestrator.face.progress import sink_for
    from orchestrator.settings import load_settings

    found = spec_of(ctx, spec)
    remembered = {"overlap": load_plan(found.plan_path).record.overlap}
    settings = load_settings(found.repo, options, remembered=remembered)
    ctx.exit(run_merge(found, settings, open_sink=partial(
        sink_for, as_json=settings.json, events=names.events_log(found.logs))))


