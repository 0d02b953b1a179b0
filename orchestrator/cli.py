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
from typing import Any

import click

from orchestrator import __version__
from orchestrator.errors import OrchestrateError, UsageError
from orchestrator.plan import load_plan
from orchestrator.specs import Spec, all_specs, resolve_spec


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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orchestrate")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The git repository (default: the one containing the current directory).")
@click.pass_context
def cli(ctx: click.Context, repo: Path | None) -> None:
    """Run an implementation plan's subtasks with coding agents in parallel git worktrees."""
    ctx.obj = repo


def main() -> None:
    cli(prog_name="orchestrate")


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


@cli.command()
@click.argument("spec")
@click.pass_context
def validate(ctx: click.Context, spec: str) -> None:
    """Check the plan; exit 0 with a summary line, or 2 naming every problem."""
    from orchestrator.views import validate_line

    found = _spec(ctx, spec)
    click.echo(validate_line(found, load_plan(found.plan_path)))


@cli.command()
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Phases and subtasks with status, branch, merge result and times."""
    from orchestrator.views import status_json, status_text

    found = _spec(ctx, spec)
    plan = load_plan(found.plan_path)
    if as_json:
        _echo_json(status_json(found, plan))
    else:
        click.echo(status_text(found, plan))


@cli.command(name="list")
@click.pass_context
def list_specs(ctx: click.Context) -> None:
    """Specs in this repository with their progress."""
    from orchestrator.views import progress_line

    specs = all_specs(_repo(ctx))
    if not specs:
        click.echo("no specs (looked in .orchestrate/specs and .auto-claude/specs)")
    for spec in specs:
        try:
            line = progress_line(load_plan(spec.plan_path))
        except OrchestrateError as exc:
            line = "invalid plan: " + exc.message.splitlines()[-1].strip(" -")
        click.echo(f"{spec.name:<32} {line}  [{spec.folder.parent.parent.name}]")


def _build_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--max-parallel", type=int, help="Agents at once (default 5)."),
        click.option("--agent", type=click.Choice(["claude", "command"])),
        click.option("--agent-command", help="Shell command that runs an agent (--agent command)."),
        click.option("--model", help="Model for --agent claude."),
        click.option("--base", help="Start the integration branch from REF."),
        click.option("--timeout", type=float, help="Seconds per agent attempt."),
        click.option("--retries", type=int, help="Extra attempts after a failed one (default 1)."),
        click.option("--overlap", type=click.Choice(["merge", "block"])),
        click.option("--no-merge", is_flag=True, default=None, help="Stop before merging."),
        click.option("--retry-failed", is_flag=True, default=None,
                     help="Run failed and conflict subtasks again."),
        click.option("--keep-worktrees", is_flag=True, default=None),
        click.option("--dry-run", is_flag=True, default=None, help="Print the schedule only."),
        click.option("--json", is_flag=True, default=None, help="One JSON object per event."),
        click.option("--runner", type=click.Choice(["local", "ray"]),
                     help="Where subtasks run: local worktrees (default) or a Ray cluster."),
        click.option("--ray-address", help="The Ray cluster for --runner ray (default auto)."),
        click.option("--remote", help="Git remote Ray workers fetch from and push to "
                     "(default origin)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command()
@click.argument("spec")
@_build_options
@click.pass_context
def build(ctx: click.Context, /, spec: str, **options: Any) -> None:
    """Run the plan's subtasks with agents and integrate their branches."""
    from orchestrator.settings import load_settings

    found = _spec(ctx, spec)
    settings = load_settings(found.repo, options)
    if settings.dry_run:
        from orchestrator.views import schedule_text

        click.echo(schedule_text(found, load_plan(found.plan_path), settings))
        return
    from orchestrator.build import run_build

    ctx.exit(run_build(found, settings))


@cli.command(name="merge")
@click.argument("spec")
@click.option("--overlap", type=click.Choice(["merge", "block"]))
@click.option("--json", is_flag=True, default=None, help="One JSON object per event.")
@click.pass_context
def merge_cmd(ctx: click.Context, /, spec: str, **options: Any) -> None:
    """Integrate committed-but-unmerged and conflict subtasks."""
    from orchestrator.build import run_merge
    from orchestrator.settings import load_settings

    found = _spec(ctx, spec)
    ctx.exit(run_merge(found, load_settings(found.repo, options)))


@cli.command()
@click.argument("spec")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "github"]), default="md",
              show_default=True, help="Markdown for a pull request, JSON, or GitHub annotations.")
@click.pass_context
def report(ctx: click.Context, spec: str, fmt: str) -> None:
    """Overlaps and conflicts of the last merge stage, rebuilt from the plan and git."""
    from typing import cast

    from orchestrator.reporting import ReportFormat, render_report

    found = _spec(ctx, spec)
    plan = load_plan(found.plan_path)
    click.echo(render_report(found, plan, cast(ReportFormat, fmt)), nl=False)


@cli.command()
@click.argument("spec")
@click.argument("subtask", required=False)
@click.pass_context
def review(ctx: click.Context, spec: str, subtask: str | None) -> None:
    """Each subtask branch's commits and diffstat against its base; with SUBTASK, its diff."""
    from orchestrator.review import review_diff, review_text

    found = _spec(ctx, spec)
    plan = load_plan(found.plan_path)
    if subtask is None:
        click.echo(review_text(found, plan), nl=False)
    else:
        click.echo(review_diff(found, plan, subtask, color=sys.stdout.isatty()), nl=False,
                   color=sys.stdout.isatty())


@cli.command()
@click.argument("spec")
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
    click.echo(f"{found.name}: removed {len(done.worktrees)} worktrees, "
               f"deleted {len(done.branches)} branches")
    ctx.exit(1 if done.kept else 0)
