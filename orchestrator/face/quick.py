"""`status`, `validate` and `list` without click: the commands people run most often, in a
loop or a prompt, start in the time of `git status` (importing click alone would take a
third of it).

`run_quick` takes only the plain shapes of those commands: `status SPEC [--json]`,
`validate SPEC [--json]`, `list`, with no option before the command. Anything else (`--repo`,
`--help`, a missing or extra argument, an unknown option, shell completion) returns None and
goes through click, which then reports usage errors as usual. The commands' bodies live here
and the click commands call them, so both paths print the same thing and exit alike; errors
become the same messages and exit codes as in cli/app.py. The program (orchestrator/__main__.py)
calls `run_quick` before it imports the command line; it lives in face/ so that importing it
does not load orchestrator/cli/, whose package registers every command with click."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from orchestrator import names
from orchestrator.errors import OrchestrateError, UsageError
from orchestrator.plan.parse import load_plan, require_subtasks
from orchestrator.plan.specs import Spec, all_specs, resolve_spec

WITH_SPEC = ("status", "validate")


def run_quick(args: list[str]) -> int | None:
    """Run `args` if they are a plain status, validate or list; the exit code, or None."""
    shape = _plain(args)
    if shape is None or "_ORCHESTRATE_COMPLETE" in os.environ:
        return None
    command, spec, as_json = shape
    try:
        if command == "status":
            show_status(None, spec, as_json)
        elif command == "validate":
            show_validation(None, spec, as_json)
        else:
            show_specs(None)
    except (Exception, KeyboardInterrupt) as exc:
        return error_exit(exc)
    return 0


EXIT_READER_GONE = 141  # 128 + SIGPIPE, as a shell reports a command whose reader went away


def error_exit(exc: BaseException) -> int:
    """What the user sees of an exception that ends a command, and its exit code: the message
    and hint of a user error, a git failure the user can act on, "interrupted", nothing when
    the reader of stdout went away (`orchestrate validate 001 | head`), else a crash note."""
    from merge import GitError, lock_message

    if isinstance(exc, OrchestrateError):
        say(f"orchestrate: error: {exc.message}", err=True)
        if exc.hint:
            say(exc.hint, err=True)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        say("orchestrate: interrupted", err=True)
        return 130
    if isinstance(exc, BrokenPipeError):
        from orchestrator.face.progress import reader_gone

        reader_gone(sys.stdout)
        return EXIT_READER_GONE
    if isinstance(exc, GitError) and (said := lock_message(exc)):
        say(f"orchestrate: error: {said[0]}\n{said[1]}", err=True)
        return 1
    return crash_note()


def _plain(args: list[str]) -> tuple[str, str, bool] | None:
    """(command, spec, --json) for a plain shape of the three commands, else None."""
    if not args:
        return None
    command, rest = args[0], args[1:]
    if command == "list":
        return (command, "", False) if not rest else None
    if command not in WITH_SPEC:
        return None
    as_json = "--json" in rest
    positional = [arg for arg in rest if arg != "--json"]
    if len(positional) != 1 or rest.count("--json") > 1 or positional[0].startswith("-"):
        return None
    return command, positional[0], as_json


def say(text: str, err: bool = False) -> None:
    """Print a line as click.echo does (flushed)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def crash_note() -> int:
    """An unexpected exception: its traceback to a file, one line saying where; exit 1."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="orchestrate-crash-", suffix=".log")
    with os.fdopen(fd, "w") as handle:
        traceback.print_exc(file=handle)
    kind = sys.exc_info()[0]
    say(f"orchestrate: internal error ({kind.__name__ if kind else 'unknown'}); "
        f"this is a bug. Details: {path}", err=True)
    return 1


def repo_at(given: Path | None) -> Path:
    """The repository's top folder: of `given` (option --repo), else of the current folder."""
    from merge import run_git

    start = Path(given or Path.cwd())
    where = "option --repo" if given else "the current directory"
    if not start.is_dir():
        raise UsageError(f"{where}: {start} is not a folder")
    if top := plain_top(start):
        return top
    found = run_git(start, "rev-parse", "--show-toplevel", check=False)
    if found.returncode != 0 or not found.stdout.strip():
        raise UsageError(f"{where}: {start.resolve()} is not inside a git repository "
                         "with a working tree",
                         "Run orchestrate inside your repository or pass --repo PATH.")
    return Path(found.stdout.strip())


GIT_LOCATION_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_CEILING_DIRECTORIES",
                          "GIT_DISCOVERY_ACROSS_FILESYSTEM")


def plain_top(start: Path) -> Path | None:
    """What `git rev-parse --show-toplevel` says for a plain layout, without starting git: the
    nearest folder at or above `start` holding a `.git` folder (with a HEAD) or a `.git` file
    (a worktree's or a submodule's), owned by this user. None whenever git's own rules could
    differ (variables that move or bound the search, a `.git` of another owner, a
    `core.worktree`, anything unreadable): then git answers."""
    if any(name in os.environ for name in GIT_LOCATION_VARIABLES):
        return None
    try:
        folder = start.resolve()
        if ".git" in folder.parts:  # inside the admin folder: git says "not a work tree"
            return None
        for candidate in (folder, *folder.parents):
            dot_git = candidate / ".git"
            if not os.path.lexists(dot_git):
                continue
            info = dot_git.lstat()
            if info.st_uid != os.getuid():
                return None
            if dot_git.is_file() and not dot_git.is_symlink():
                return candidate
            if dot_git.is_dir() and not dot_git.is_symlink() and (dot_git / "HEAD").is_file() \
                    and "worktree" not in (dot_git / "config").read_text(errors="replace"):
                return candidate
            return None
    except OSError:
        return None
    return None


def spec_at(given: Path | None, name: str) -> Spec:
    return resolve_spec(repo_at(given), name)


def say_json(data: object) -> None:
    say(json.dumps(data, indent=2, ensure_ascii=False))


def show_status(repo: Path | None, spec: str, as_json: bool) -> None:
    """Phases and subtasks with status, branch, merge result and times."""
    from orchestrator.build.stale import stale_ids
    from orchestrator.face.status_table import Style, status_table
    from orchestrator.face.views import status_json

    found = spec_at(repo, spec)
    plan = load_plan(found.plan_path)
    stale = stale_ids(found, plan)
    if as_json:
        say_json(status_json(found, plan, stale))
    else:
        say(status_table(found, plan, Style.for_stdout(), stale))


def show_validation(repo: Path | None, spec: str, as_json: bool) -> None:
    """The plan checked: a summary line and a warning per predicted overlap of declared files
    (and per subtask without a description), or an error naming every problem; with `as_json`
    a JSON object on stdout either way."""
    from orchestrator.errors import PlanError
    from orchestrator.face.views import (
        description_warnings,
        invalid_json,
        overlap_warnings,
        shown_pairs,
        validate_json,
        validate_line,
    )
    from orchestrator.plan.declared import predicted_overlaps

    found = spec_at(repo, spec)
    try:
        plan = load_plan(found.plan_path)
        require_subtasks(plan, found.plan_path)
    except PlanError as exc:
        if as_json:
            say_json(invalid_json(found, exc))
        raise
    overlaps = predicted_overlaps(plan, found.repo, shown_pairs(plan))
    if as_json:
        say_json(validate_json(found, plan, overlaps))
        return
    say(validate_line(found, plan))
    for line in [*description_warnings(plan), *overlap_warnings(overlaps)]:
        say(line)


def show_specs(repo: Path | None) -> None:
    """Specs in this repository with their progress."""
    from orchestrator.face.views import progress_line

    specs = all_specs(repo_at(repo))
    if not specs:
        say(f"no specs (looked in {' and '.join(names.SPEC_ROOTS)})")
    for spec in specs:
        try:
            line = progress_line(load_plan(spec.plan_path))
        except OrchestrateError as exc:
            line = "invalid plan: " + exc.message.splitlines()[-1].strip(" -")
        say(f"{spec.name:<32} {line}  [{spec.folder.parent.parent.name}]")
