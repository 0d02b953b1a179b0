"""`orchestrate pr`: push the integration branch and open or update its pull request (SPEC 13).

The body is the Markdown conflict report. An open pull request for the integration branch is
edited in place, so running `pr` after every build keeps one pull request current. Everything
that can be refused (no `gh`, not logged in, no such remote, unfinished subtasks) is checked
before anything is pushed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from merge import GitError, GitResult, child_env, is_ancestor, resolve_commit, run_command, run_git
from orchestrator import names
from orchestrator.errors import RunFailed, UsageError
from orchestrator.plan.model import Plan, Status
from orchestrator.plan.own_record import hooks_at_start
from orchestrator.plan.specs import Spec
from orchestrator.stage.conflict_report import integration_branch, render_report

BODY_LIMIT = 60_000  # GitHub refuses bodies over 65,536 characters
GITHUB_REMOTE = re.compile(r"^(?:https?://|ssh://git@|git@)(?P<host>[^/:]+)[/:]"
                           r"(?P<path>[^/]+/[^/]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class PullRequestOptions:
    remote: str = "origin"
    base: str | None = None
    draft: bool = False
    title: str | None = None
    require_clean: bool = False


@dataclass(frozen=True)
class PullRequestResult:
    url: str
    created: bool
    pushed: str  # what happened to the remote branch, one line


def open_pull_request(spec: Spec, plan: Plan, options: PullRequestOptions,
                      say: Callable[[str], None]) -> PullRequestResult:
    branch = integration_branch(spec, plan)
    head = _local_tip(spec.repo, branch, spec.name)
    _check_remote(spec.repo, options.remote)
    gh = GitHubCli(spec.repo, _repo_slug(spec.repo, options.remote))
    gh.check_ready()
    if options.require_clean:
        _check_clean(spec, plan)
    base = options.base or _default_base(spec.repo, plan)
    pushed = push_branch(spec.repo, options.remote, branch, head,
                         hooks_at_start(spec))
    say(pushed)
    body = _body(spec, plan)
    existing = gh.open_pull_request(branch)
    if existing is not None:
        gh.edit(existing.number, body, options.title)
        return PullRequestResult(existing.url, created=False, pushed=pushed)
    title = options.title or _default_title(spec, plan)
    url = gh.create(branch, base, title, body, draft=options.draft)
    return PullRequestResult(url, created=True, pushed=pushed)


def _local_tip(repo: Path, branch: str, spec_name: str) -> str:
    tip = resolve_commit(repo, names.HEADS + branch)
    if tip is None:
        raise UsageError(f"{spec_name} has no integration branch {branch} yet",
                         f"Run `orchestrate build {spec_name}` first.")
    return tip


def _check_remote(repo: Path, remote: str) -> None:
    if run_git(repo, "remote", "get-url", "--", remote, check=False).returncode != 0:
        raise UsageError(f"option --remote: this repository has no remote named {remote!r}",
                         f"Add it with `git remote add {remote} URL`, or pass --remote NAME "
                         "(see `git remote -v`).")


def _check_clean(spec: Spec, plan: Plan) -> None:
    unfinished = [f"{s.id} ({s.status})" for s in plan.subtasks() if s.status != Status.COMPLETED]
    if unfinished:
        shown = ", ".join(unfinished[:8]) + (" ..." if len(unfinished) > 8 else "")
        raise RunFailed(f"--require-clean: {len(unfinished)} subtask(s) not completed: "
                        f"{shown}; nothing was pushed",
                        f"Finish them (`orchestrate status {spec.name}`), or leave out "
                        "--require-clean to open the pull request with the report as it is.")


def _default_base(repo: Path, plan: Plan) -> str:
    """The branch the build started from, else the branch checked out in the main worktree."""
    recorded = plan.record.base_branch
    if isinstance(recorded, str) and recorded:
        return recorded
    found = run_git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if found.returncode != 0 or not found.stdout.strip():
        raise UsageError("cannot tell which branch the pull request should go into: the build "
                         "recorded no base branch and your checkout has a detached HEAD",
                         "Pass --base BRANCH.")
    return found.stdout.strip()


def _default_title(spec: Spec, plan: Plan) -> str:
    feature = plan.raw.get("feature")
    return feature.strip() if isinstance(feature, str) and feature.strip() else spec.name


def _body(spec: Spec, plan: Plan) -> str:
    body = render_report(spec, plan, "md")
    if len(body) <= BODY_LIMIT:
        return body
    report = spec.folder / names.REPORT_MD
    return (body[:BODY_LIMIT].rsplit("\n", 1)[0] + "\n\n[The report is longer than a pull "
            f"request body may be; the whole report is in `{report.relative_to(spec.repo)}` "
            f"and `orchestrate report {spec.name}`.]\n")


def push_branch(repo: Path, remote: str, branch: str, head: str,
                hooks: tuple[str, ...] = ()) -> str:
    """Push `branch` to `remote`; force (with a lease on what is there) only when the remote
    branch has commits the local one lacks. Returns a line saying what happened. `hooks`:
    git options naming the hooks folder push may run (shared_git.hooks_at_start)."""
    ref = f"refs/heads/{branch}"
    there = _remote_tip(repo, remote, ref)
    if there == head:
        return f"{remote}/{branch} is already at {head[:12]}"
    if there is None or _is_ancestor(repo, there, head):
        _git_push(repo, remote, hooks, f"{ref}:{ref}")
        return f"pushed {branch} to {remote} ({head[:12]})"
    _git_push(repo, remote, hooks, f"--force-with-lease={ref}:{there}", f"{ref}:{ref}")
    return (f"{remote}/{branch} ({there[:12]}) is not an ancestor of {branch}: replaced it "
            f"with --force-with-lease ({head[:12]})")


def _remote_tip(repo: Path, remote: str, ref: str) -> str | None:
    listing = run_git(repo, "ls-remote", "--", remote, ref, check=False)
    if listing.returncode != 0:
        raise RunFailed(f"cannot read remote {remote!r}: "
                        f"{listing.stderr.strip() or 'git ls-remote failed'}",
                        "Check the remote's URL and your access (`git ls-remote "
                        f"{remote}`).")
    for line in listing.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha
    return None


def _is_ancestor(repo: Path, commit: str, of: str) -> bool:
    try:
        return is_ancestor(repo, commit, of)
    except GitError:
        return False  # a commit we do not have cannot be an ancestor of a branch we do have


def _git_push(repo: Path, remote: str, hooks: tuple[str, ...], *refspec: str) -> None:
    done = run_git(repo, *hooks, "push", "--porcelain", remote, *refspec, check=False)
    if done.returncode != 0:
        raise RunFailed(f"git push to {remote!r} failed: "
                        f"{(done.stderr.strip() or done.stdout.strip())[-1500:]}",
                        "Fix the cause and run `orchestrate pr` again; nothing else changed.")


def _repo_slug(repo: Path, remote: str) -> str | None:
    """HOST/OWNER/REPO of a GitHub-style remote URL, for `gh --repo`; None otherwise (gh then
    picks the repository from the checkout's remotes)."""
    url = run_git(repo, "remote", "get-url", "--", remote, check=False).stdout.strip()
    match = GITHUB_REMOTE.match(url)
    return f"{match['host']}/{match['path']}" if match else None


@dataclass(frozen=True)
class OpenPullRequest:
    number: int
    url: str


class GitHubCli:
    """The few `gh` calls `pr` needs, run in the repository with prompts off."""

    def __init__(self, repo: Path, slug: str | None) -> None:
        self.repo = repo
        self.slug = slug
        self.program = shutil.which("gh")

    def check_ready(self) -> None:
        if self.program is None:
            raise UsageError("`gh` (GitHub CLI) is not on PATH; `orchestrate pr` uses it to "
                             "open the pull request",
                             "Install it (https://cli.github.com), run `gh auth login`, then "
                             "`orchestrate pr` again.")
        host = ["--hostname", self.slug.split("/")[0]] if self.slug else []
        done = self._run("auth", "status", *host)
        if done.returncode != 0:
            raise UsageError("`gh` is not logged in to GitHub: `gh auth status` says "
                             f"{_last_line(done.stderr or done.stdout)!r}",
                             "Run `gh auth login` (or set GH_TOKEN), then `orchestrate pr` "
                             "again.")

    def open_pull_request(self, branch: str) -> OpenPullRequest | None:
        done = self._checked("pr", "list", *self._repo_args(), "--head", branch, "--state",
                             "open", "--json", "number,url", "--limit", "1")
        try:
            found = json.loads(done.stdout or "[]")
            return OpenPullRequest(int(found[0]["number"]), str(found[0]["url"])) \
                if found else None
        except (ValueError, KeyError, IndexError, TypeError):
            raise RunFailed(f"`gh pr list` printed something unexpected: {done.stdout[:200]!r}",
                            "Check `gh --version` (2.x is needed).") from None

    def create(self, branch: str, base: str, title: str, body: str, *, draft: bool) -> str:
        with _body_file(body) as path:
            done = self._checked("pr", "create", *self._repo_args(), "--head", branch, "--base",
                                 base, "--title", title, "--body-file", str(path),
                                 *(["--draft"] if draft else []))
        return _last_line(done.stdout)

    def edit(self, number: int, body: str, title: str | None) -> None:
        with _body_file(body) as path:
            self._checked("pr", "edit", str(number), *self._repo_args(), "--body-file",
                          str(path), *(["--title", title] if title else []))

    def _repo_args(self) -> list[str]:
        return ["--repo", self.slug] if self.slug else []

    def _checked(self, *args: str) -> GitResult:
        done = self._run(*args)
        if done.returncode != 0:
            raise RunFailed(f"`gh {' '.join(args[:2])}` failed (exit {done.returncode}): "
                            f"{(done.stderr.strip() or done.stdout.strip())[-1500:]}",
                            "Fix the cause and run `orchestrate pr` again; the branch is "
                            "already pushed.")
        return done

    def _run(self, *args: str) -> GitResult:
        env = child_env({"GH_PROMPT_DISABLED": "1", "GH_NO_UPDATE_NOTIFIER": "1",
                         "NO_COLOR": "1"})
        return run_command([self.program or "gh", *args], self.repo, env=env)


@contextmanager
def _body_file(body: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="orchestrate-pr-", suffix=".md")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""

