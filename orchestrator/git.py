"""Git under trio: the async twin of merge.gitcmd.run_git, sharing its environment and errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import trio

from merge.gitcmd import LOCK_RETRIES, GitError, GitResult, decode, git_env, is_lock_contention

__all__ = ["GitError", "GitResult", "git", "git_out"]


async def git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True,
              env: Mapping[str, str] | None = None) -> GitResult:
    for delay in (*LOCK_RETRIES, None):
        done = await trio.run_process(["git", *args], cwd=cwd, stdin=input or b"",
                                      capture_stdout=True, capture_stderr=True, check=False,
                                      env=git_env(env))
        result = GitResult(done.returncode, decode(done.stdout), decode(done.stderr))
        if delay is None or not is_lock_contention(result):
            break
        await trio.sleep(delay)
    if check and result.returncode != 0:
        raise GitError(args, cwd, result)
    return result


async def git_out(cwd: Path, *args: str) -> str:
    """The stripped stdout of a git command that must succeed."""
    return (await git(cwd, *args)).stdout.strip()
