"""Commands that show and hand over the results: report, review, clean, pr."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator import names
from orchestrator.cli.app import cli, note_rerun, spec_of
from orchestrator.cli.support import complete_subtask, plural, spec_argument
from orchestrator.plan.parse import load_plan

if TYPE_CHECKING:
    pass


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

    from orchestrator.stage.conflict_report import ReportFormat, conflict_report, render
    from orchestrator.stage.radar_report import radar_outcomes

    found = spec_of(ctx, spec)
    plan = load_plan(found.plan_path)
    built = conflict_report(found, plan)
    click.echo(render(built, cast(ReportFormat, fmt), radar_outcomes(plan)), nl=False)
    if exit_code and (built.conflicts() or built.check_failures()):
        ctx.exit(1)


@cli.command(short_help="Subtask branches' commits and diffstat, or one's diff.")
@spec_argument()
@click.argument("subtask", required=False, shell_complete=complete_subtask)
@click.pass_context
def review(ctx: click.Context, spec: str, subtask: str | None) -> None:
    """Each subtask branch's own commits and diffstat; with SUBTASK, its diff. On a terminal
    through a pager like git's (GIT_PAGER, PAGER, else less -FRX); no colour with NO_COLOR."""
    from orchestrator.face.pager import colour_wanted, page
    from orchestrator.face.review import review_diff, review_text

    found = spec_of(ctx, spec)
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
    from orchestrator.workspace.clean import clean as clean_spec

    found = spec_of(ctx, spec)
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
        note_rerun(found)
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
    from orchestrator.stage.pull_request import PullRequestOptions, open_pull_request

    found = spec_of(ctx, spec)
    options = PullRequestOptions(remote=remote, base=base, draft=draft, title=title,
                                 require_clean=require_clean)
    done = open_pull_request(found, load_plan(found.plan_path), options, say=click.echo)
    verb = "opened" if done.created else "updated"
    click.echo(f"{verb} pull request {done.url}")


