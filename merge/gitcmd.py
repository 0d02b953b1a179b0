"""The process door, synchronous flavour: the one place (with its trio twin
orchestrator/processes.py) that starts child processes, signals process groups, and parses
what git prints.

It lives in merge/ because merge/ is plain synchronous code that may import neither trio nor
anything of orchestrator/; orchestrator/processes.py builds the trio flavour on the same
environment, errors and parsers.

Every error carries the command, exit code, stdout and stderr. The environment is cleaned of
variables that would point git at another repository, and git never prompts.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_LEAKY_VARS = ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY",
               "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX",
               "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES")
# A compare-and-swap that lost ("cannot lock ref ...: is at X but expected Y") is not
# contention: the same command would fail again, so it is not retried. Another process's
# `git worktree add` in progress shows as a worktree whose admin files are not written yet.
_LOCK_CONTENTION = re.compile(r"Unable to create '.*\.lock': File exists|cannot lock ref .*"
                              r"Unable to create|index\.lock|"
                              r"failed to read .*worktrees/[^/\n]+/(?:commondir|gitdir|HEAD)")
LOCK_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


class GitError(Exception):
    def __init__(self, args: tuple[str, ...], cwd: Path, result: GitResult) -> None:
        super().__init__(args, result.returncode)
        self.args_ = args
        self.cwd = cwd
        self.result = result

    def __str__(self) -> str:
        parts = [f"`git {' '.join(self.args_)}` failed with exit code {self.result.returncode} "
                 f"(in {self.cwd})"]
        if self.result.stderr.strip():
            parts.append("stderr: " + _clip(self.result.stderr))
        if self.result.stdout.strip():
            parts.append("stdout: " + _clip(self.result.stdout))
        return "\n".join(parts)


def _clip(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " [...]"


def child_env(extra: Mapping[str, str] | None = None, *,
              hidden: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment without the `hidden` variables, with `extra` on top: the
    one way every child's environment is made."""
    drop = frozenset(hidden)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if extra:
        env.update(extra)
    return env


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = child_env({"GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true",
                     "GIT_MERGE_AUTOEDIT": "no", "LC_ALL": "C"}, hidden=_LEAKY_VARS)
    if extra:
        env.update(extra)
    return env


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def is_lock_contention(result: GitResult) -> bool:
    return result.returncode != 0 and bool(_LOCK_CONTENTION.search(result.stderr))


def run_git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> GitResult:
    """Run `git ARGS` in `cwd`, retrying briefly when another git holds one of its lock files."""
    for delay in (*LOCK_RETRIES, None):
        result = run_command(["git", *args], cwd, input=input, env=git_env(env))
        if delay is None or not is_lock_contention(result):
            break
        time.sleep(delay)
    if check and result.returncode != 0:
        raise GitError(args, cwd, result)
    return result


def run_command(argv: Sequence[str], cwd: Path, *, input: bytes | None = None,
                env: Mapping[str, str] | None = None) -> GitResult:
    """Run a program to completion with its output captured (never through a shell)."""
    done = subprocess.run(list(argv), cwd=cwd, input=input or b"", capture_output=True,
                          env=None if env is None else dict(env), check=False)
    return GitResult(done.returncode, decode(done.stdout), decode(done.stderr))


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The commit `rev` names, or None when it names none (`rev-parse --verify --quiet`)."""
    found = run_git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options",
                    rev + "^{commit}", check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def rev_parse(repo: Path, rev: str) -> str:
    """The commit `rev` names; GitError when it names none."""
    return run_git(repo, "rev-parse", "--verify", "--end-of-options",
                   rev + "^{commit}").stdout.strip()


@dataclass(frozen=True)
class WorktreeEntry:
    path: Path
    branch: str | None  # the full ref (refs/heads/...), None when detached


WORKTREE_LIST = ("worktree", "list", "--porcelain", "-z")


def parse_worktree_list(listing: str) -> list[WorktreeEntry]:
    """The worktrees in the output of `git worktree list --porcelain -z`, main one first."""
    found: list[WorktreeEntry] = []
    path: Path | None = None
    branch: str | None = None
    for line in listing.split("\0"):
        if line.startswith("worktree "):
            path, branch = Path(line[len("worktree "):]), None
        elif line.startswith("branch "):
            branch = line[len("branch "):]
        elif not line and path is not None:
            found.append(WorktreeEntry(path, branch))
            path = None
    return found


def list_worktrees(repo: Path) -> list[WorktreeEntry]:
    return parse_worktree_list(run_git(repo, *WORKTREE_LIST).stdout)


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid`; False when there is no such group (or not ours)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_self() -> None:
    """SIGKILL this process: no `finally`, no atexit, no flush (the failpoints' power cut)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(os.getpid(), signal.SIGKILL)


def run_attached(command: str, *, input: bytes, env: Mapping[str, str]) -> int | None:
    """Run `command` through the shell with this process's terminal as its output (a pager,
    as git runs one); its exit code, or None when it could not be started."""
    try:
        return subprocess.run(command, shell=True, input=input, env=dict(env),
                              check=False).returncode
    except OSError:
        return None
