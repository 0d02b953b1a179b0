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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tempfile import TemporaryDirectory

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


class CommitWriter:
    """Writes commit objects as `git commit-tree --no-gpg-sign` would, through one
    `git hash-object -w -t commit --stdin-paths` process for a whole chain of merges instead
    of one process per commit (git flushes each id as soon as the object is written).

    The author and committer are git's own (`git var`: the GIT_AUTHOR_* / GIT_COMMITTER_*
    variables, else the configuration), read once. Where a commit encoding other than UTF-8
    is configured, or git cannot name an identity, every commit goes through commit-tree."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: TemporaryDirectory[str] | None = None
        self._header: str | None = None
        self._count = 0

    def __enter__(self) -> CommitWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def commit(self, tree: str, parents: Sequence[str], message: str) -> str:
        if self._header is None:
            self._header = _identity_header(self.repo)
        if not self._header:
            args = ["commit-tree", "--no-gpg-sign", tree]
            for parent in parents:
                args += ["-p", parent]
            return run_git(self.repo, *args, input=message.encode()).stdout.strip()
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents), self._header, "", ""]
        return self._write("\n".join(lines).encode() + message.encode())

    def _write(self, content: bytes) -> str:
        if self._process is None:
            from tempfile import TemporaryDirectory  # here: tempfile loads shutil, bz2, lzma

            self._folder = TemporaryDirectory(prefix="orchestrate-commits-")
            self._process = subprocess.Popen(
                ["git", "hash-object", "-w", "-t", "commit", "--stdin-paths", "--no-filters"],
                cwd=self.repo, env=git_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
        assert self._folder is not None
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._count += 1
        path = Path(self._folder.name, f"commit-{self._count}")
        path.write_bytes(content)
        try:
            self._process.stdin.write(os.fsencode(path) + b"\n")
            self._process.stdin.flush()
            written = self._process.stdout.readline().decode().strip()
        except OSError:
            written = ""
        if not written:
            raise GitError(("hash-object", "-w", "-t", "commit", "--stdin-paths"), self.repo,
                           GitResult(self._stop(), "", self._stderr()))
        return written

    def _stderr(self) -> str:
        pipe = self._process.stderr if self._process else None
        return decode(pipe.read()) if pipe else ""

    def _stop(self) -> int:
        if self._process is None:
            return 0
        process, self._process = self._process, None
        if process.stdin:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe:
                pipe.close()
        return code

    def close(self) -> None:
        self._stop()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


def _identity_header(repo: Path) -> str:
    """The author and committer lines of a commit made now, or "" where this writer must
    leave the commit to commit-tree."""
    found = run_git(repo, "var", "-l", check=False)
    if found.returncode != 0:
        return ""
    values: dict[str, str] = {}
    for line in found.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key.lower(), value)
    encoding = values.get("i18n.commitencoding", "utf-8").lower().replace("-", "")
    author, committer = values.get("git_author_ident"), values.get("git_committer_ident")
    if encoding != "utf8" or not author or not committer:
        return ""
    return f"author {author}\ncommitter {committer}"
