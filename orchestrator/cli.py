"""The command line: one short function per command; errors become exit codes in one place.

Heavy modules (trio, the scheduler, anthropic) are imported inside the commands that need them,
so `status`, `validate`, `list` and `--help` start fast.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator import __version__, names
from orchestrator.cli_support import EPILOG, complete_subtask, plural, run_main, spec_argument
from orchestrator.errors import OrchestrateError, UsageError
from orchestrator.plan import load_plan, require_subtasks
from orchestrator.presets import AGENT_KINDS
from orchestrator.specs import Spec, all_specs, resolve_spec

if TYPE_CHECKING:
    from orchestrator.settings import Settings


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


def _repo(ctx: click.Context) -> Path:
    from merge.gitcmd import run_git

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


def _spec(ctx: click.Context, name: str) -> Spec:
    return resolve_spec(_repo(ctx), name)


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@cli.command(short_help="Check a plan and summarise it.")
@spec_argument()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def validate(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Check the plan; exit 0 with a summary line (and a warning per predicted overlap of
    declared files), or 2 naming every problem."""
    from orchestrator.declared import predicted_overlaps
    from orchestrator.views import overlap_warnings, validate_json, validate_line

    found = _spec(ctx, spec)
    plan = load_plan(found.plan_path)
    require_subtasks(plan, found.plan_path)
    overlaps = predicted_overlaps(plan, found.repo)
    if as_json:
        _echo_json(validate_json(found, plan, overlaps))
        return
    click.echo(validate_line(found, plan))
    for line in overlap_warnings(overlaps):
        click.echo(line)


@cli.command(short_help="Phases and subtasks with status, merge result, times.")
@spec_argument()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Phases and subtasks with status, branch, merge result and times."""
    from orchestrator.stale import stale_ids
    from orchestrator.status_view import Style, status_table
    from orchestrator.views import status_json

    found = _spec(ctx, spec)
    plan = load_plan(found.plan_path)
    stale = stale_ids(found, plan)
    if as_json:
        _echo_json(status_json(found, plan, stale))
    else:
        click.echo(status_table(found, plan, Style.for_stdout(), stale), color=True)


@cli.command(name="list", short_help="Specs in this repository with their progress.")
@click.pass_context
def list_specs(ctx: click.Context) -> None:
    """Specs in this repository with their progress."""
    from orchestrator.views import progress_line

    specs = all_specs(_repo(ctx))
    if not specs:
        click.echo(f"no specs (looked in {' and '.join(names.SPEC_ROOTS)})")
    for spec in specs:
        try:
            line = progress_line(load_plan(spec.plan_path))
        except OrchestrateError as exc:
            line = "invalid plan: " + exc.message.splitlines()[-1].strip(" -")
        click.echo(f"{spec.name:<32} {line}  [{spec.folder.parent.parent.name}]")


def _note_rerun(spec: Spec) -> None:
    from orchestrator.stale import rerun_note

    try:
        note = rerun_note(spec, load_plan(spec.plan_path))
    except OrchestrateError:
        return  # an unreadable plan has no statuses to rerun; build will say what is wrong
    if note:
        click.echo(note)


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
    ]
    for option in reversed(options):
        func = option(func)
    return func


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

    found = _spec(ctx, spec)
    require_subtasks(load_plan(found.plan_path), found.plan_path)
    settings = load_settings(found.repo, options)
    if settings.dry_run:
        _dry_run(found, settings)
        return
    from orchestrator.build import run_build

    ctx.exit(run_build(found, settings))


def _dry_run(spec: Spec, settings: Settings) -> None:
    """The schedule, after the same read-only checks as the build (agent, repository, base,
    branch names): a dry run that passes is a build that starts."""
    from orchestrator.agents import check_agent_configured
    from orchestrator.declared import predicted_overlaps
    from orchestrator.preflight import check_repository
    from orchestrator.views import schedule_json, schedule_text

    plan = load_plan(spec.plan_path)
    check_agent_configured(settings, spec.repo)
    target = check_repository(spec, settings.base, plan)
    overlaps = predicted_overlaps(plan, spec.repo)
    if settings.json:
        _echo_json(schedule_json(spec, plan, settings, overlaps, target))
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
    from orchestrator.build import run_merge
    from orchestrator.settings import load_settings

    found = _spec(ctx, spec)
    remembered = {"overlap": load_plan(found.plan_path).meta.get("overlap")}
    ctx.exit(run_merge(found, load_settings(found.repo, options, remembered=remembered)))


@cli.command(short_help="The conflict report (Markdown, JSON or GitHub annotations).")
@spec_argument()
@click.option("--format", "fmt", type=click.Choice(["md", "json", "github"]), default="md",
              show_default=True, help="Markdown for a pull request, JSON, or GitHub annotations.")
@click.option("--exit-code", is_flag=True,
              help="Exit 1 when the report has conflicts or check failures (0 otherwise), "
                   "like `git diff --exit-code`.")
@click.pass_context
def report(ctx: click.Context, spec: str, fmt: str, exit_code: bool) -> None:
    """Overlaps and conflicts of the last merge stage, rebuilt from the plan and git."""
    from typing import cast

    from orchestrator.reporting import ReportFormat, conflict_report, render

    found = _spec(ctx, spec)
    built = conflict_report(found, load_plan(found.plan_path))
    click.echo(render(built, cast(ReportFormat, fmt)), nl=False)
    if exit_code and (built.conflicts() or built.check_failures()):
        ctx.exit(1)


@cli.command(short_help="Subtask branches' commits and diffstat, or one's diff.")
@spec_argument()
@click.argument("subtask", required=False, shell_complete=complete_subtask)
@click.pass_context
def review(ctx: click.Context, spec: str, subtask: str | None) -> None:
    """Each subtask branch's own commits and diffstat; with SUBTASK, its diff. On a terminal
    through a pager like git's (GIT_PAGER, PAGER, else less -FRX); no colour with NO_COLOR."""
    from orchestrator.pager import colour_wanted, page
    from orchestrator.review import review_diff, review_text

    found = _spec(ctx, spec)
    plan = load_plan(found.plan_path)
    if subtask is None:
        page(review_text(found, plan), found.repo)
    else:
        page(review_diff(found, plan, subtask, color=colour_wanted()), found.repo)


@cli.command(short_help="Remove the spec's worktrees (and branches).")
@spec_argument()
@click.option("--branches", is_flag=True, help="Also delete the subtask branches.")
@click.option("--all", "all_branches", is_flag=True,
              help="Also delete the integration branch (implies --branches).")
@click.pass_context
def clean(ctx: click.Context, spec: str, branches: bool, all_branches: bool) -> None:
    """Remove the spec's worktrees (and with --branches its subtask branches), then prune."""
    from orchestrator.clean import clean as clean_spec

    found = _spec(ctx, spec)
    done = clean_spec(found, branches=branches, all_branches=all_branches)
    for path in done.worktrees:
        click.echo(f"removed worktree {path}")
    for branch in done.branches:
        click.echo(f"deleted branch {branch}")
    for note in done.kept:
        click.echo(f"kept {note}", err=True)
    click.echo(f"{found.name}: removed {plural(len(done.worktrees), 'worktree')}, "
               f"deleted {plural(len(done.branches), 'branch')}")
    if names.integration_branch(found.name) in done.branches:
        _note_rerun(found)
    ctx.exit(1 if done.kept else 0)


@cli.command(short_help="Push the integration branch; open or update its pull request.")
@spec_argument()
@click.option("--remote", default="origin", show_default=True,
              help="The git remote to push the integration branch to.")
@click.option("--base", help="The branch the pull request merges into "
              "(default: the branch the build started from).")
@click.option("--draft", is_flag=True, help="Open the pull request as a draft.")
@click.option("--title", help="Title of a new pull request (default: the plan's `feature`).")
@click.option("--require-clean", is_flag=True,
              help="Refuse (exit 1, nothing pushed) unless every subtask is completed.")
@click.pass_context
def pr(ctx: click.Context, spec: str, remote: str, base: str | None, draft: bool,
       title: str | None, require_clean: bool) -> None:
    """Push the integration branch and open (or update) its pull request with `gh`."""
    from orchestrator.pull_request import PullRequestOptions, open_pull_request

    found = _spec(ctx, spec)
    options = PullRequestOptions(remote=remote, base=base, draft=draft, title=title,
                                 require_clean=require_clean)
    done = open_pull_request(found, load_plan(found.plan_path), options, say=click.echo)
    verb = "opened" if done.created else "updated"
    click.echo(f"{verb} pull request {done.url}")


@cli.command(short_help="Start a new spec folder with a starter plan and spec.md.")
@click.argument("name")
@click.pass_context
def init(ctx: click.Context, name: str) -> None:
    """Create .orchestrate/specs/NAME/ with a starter plan and spec.md (never overwrites)."""
    from orchestrator.starter import create_spec

    spec = create_spec(_repo(ctx), name)
    where = spec.folder.relative_to(spec.repo)
    click.echo(f"created {where}/implementation_plan.json and {where}/spec.md")
    click.echo(f"Next: edit them, then `orchestrate validate {name}` and "
               f"`orchestrate build {name} --dry-run`.")


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
    from orchestrator.subtask_logs import show_logs

    found = _spec(ctx, spec)
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        if data:
            out.write(data)
            out.flush()

    ctx.exit(show_logs(found, load_plan(found.plan_path), subtask, follow=follow,
                       attempt=attempt, write=write))
