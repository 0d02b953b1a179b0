"""The command line's manners: click's own usage errors in the project's error style, shell
completion of spec names and subtask ids, and the help epilog. Light imports only: this runs
on every `--help` and every completion request."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

EPILOG = """\b
Exit codes: 0 every subtask completed; 1 a subtask failed, is blocked or in
conflict; 2 bad input (plan, option, setting, repository state); 3 another
build of the spec holds its run lock; 130 interrupted (Ctrl-C, SIGTERM).

\b
Settings come from options, then ORCHESTRATE_<OPTION> environment variables
(ORCHESTRATE_MAX_PARALLEL=3), then orchestrate.toml at the repository root
(max_parallel = 3, agent_command = "..."), then defaults.

\b
Shell completion (spec names, subtask ids), e.g. in ~/.bashrc:
  eval "$(_ORCHESTRATE_COMPLETE=bash_source orchestrate)"
(zsh: zsh_source, fish: fish_source)."""


def run_main(group: click.Group) -> None:
    """Run the CLI; print click's usage errors like the project's own (`orchestrate: error:`,
    then what to do) and exit with click's code (2)."""
    try:
        code = group.main(prog_name="orchestrate", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        message, hint = _usage_message(exc)
        _error(message, hint)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _error(exc.format_message(), "")
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("orchestrate: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _error(message: str, hint: str) -> None:
    message = message.strip()
    message = message[:1].lower() + message[1:] if message[1:2].islower() else message
    click.echo(f"orchestrate: error: {message}", err=True)
    if hint:
        click.echo(hint, err=True)


def _usage_message(exc: click.UsageError) -> tuple[str, str]:
    ctx = exc.ctx
    command = ctx.command_path if ctx else "orchestrate"
    if (isinstance(exc, click.NoSuchOption) and exc.option_name == "--repo" and ctx
            and ctx.parent is not None):
        return ("option --repo belongs to `orchestrate` itself, before the command",
                f"Write: {_repo_first(sys.argv[1:])}")
    usage = ctx.get_usage() if ctx else ""
    return exc.format_message(), f"{usage}\nSee `{command} --help`.".lstrip()


def _repo_first(args: list[str]) -> str:
    """The command line typed, with --repo moved before the command."""
    import shlex

    repo, rest, skip = ["--repo", "PATH"], [], False
    for n, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == "--repo":
            repo, skip = ["--repo", *args[n + 1:n + 2]], True
        elif arg.startswith("--repo="):
            repo = ["--repo", arg.removeprefix("--repo=")]
        else:
            rest.append(arg)
    return shlex.join(["orchestrate", *repo, *rest])


def _repo_root(ctx: click.Context) -> Path | None:
    from merge import run_git

    given = ctx.find_root().params.get("repo")
    start = Path(given) if given else Path.cwd()
    if not start.is_dir():
        return None
    found = run_git(start, "rev-parse", "--show-toplevel", check=False)
    return Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else None


def complete_spec(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:
    """Spec folder names (both roots) starting with what was typed."""
    from orchestrator.plan.specs import all_specs

    try:
        repo = _repo_root(ctx)
        names = sorted({spec.name for spec in all_specs(repo)}) if repo else []
    except Exception:  # a completion must never print a traceback into the shell
        return []
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def complete_subtask(ctx: click.Context, param: click.Parameter,
                     incomplete: str) -> list[CompletionItem]:
    """The ids of the subtasks in the plan of the SPEC typed before."""
    from orchestrator.plan.parse import load_plan
    from orchestrator.plan.specs import resolve_spec

    spec_name: Any = ctx.params.get("spec")
    try:
        repo = _repo_root(ctx)
        if repo is None or not isinstance(spec_name, str):
            return []
        plan = load_plan(resolve_spec(repo, spec_name).plan_path)
    except Exception:  # unknown spec, invalid plan: nothing to offer
        return []
    return [CompletionItem(s.id, help=s.title) for s in plan.subtasks()
            if s.id.startswith(incomplete)]


F = TypeVar("F", bound=Callable[..., Any])


def spec_argument() -> Callable[[F], F]:
    return click.argument("spec", shell_complete=complete_spec)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 'es' if word.endswith('ch') else 's'}"
