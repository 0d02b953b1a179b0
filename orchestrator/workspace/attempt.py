"""One attempt at a subtask in its workspace: the agent under --timeout, the branch checks, the
verification. Local runs, Ray workers and resolution rounds all run attempts through here.

Also what every command run in a workspace shares: its environment, its log, and the setup
commands that run before the agent."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import trio

from merge import child_env, guarded_worktree_problem
from orchestrator import names
from orchestrator.agents.base import Agent, AgentResult, AgentTask, git_ceiling
from orchestrator.agents.command import read_tail
from orchestrator.door.egress import EgressProxy
from orchestrator.door.processes import git, run_in_group
from orchestrator.door.sandbox import Confinement
from orchestrator.door.sandbox_policy import SandboxPolicy
from orchestrator.plan.model import Subtask
from orchestrator.plan.store import utc_now
from orchestrator.settings import Settings
from orchestrator.workspace.guards import nested_repository_problem


class AttemptFailed(Exception):
    """A step of the subtask failed; the message is the short error, `tail` the output."""

    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message)
        self.tail = tail


class AttemptContext(Protocol):
    """What one attempt needs: the build's settings and agent, on the coordinator or a worker."""

    settings: Settings
    agent: Agent
    sandbox: SandboxPolicy
    egress: EgressProxy | None


async def run_agent_timed(ctx: AttemptContext, task: AgentTask) -> AgentResult:
    """The agent under --timeout; an attempt cut off still reports the tokens it spent."""
    timeout = ctx.settings.timeout
    with trio.move_on_after(timeout) as scope:
        result = await ctx.agent.run(task)
    if scope.cancelled_caught:
        return AgentResult(ok=False, error=f"agent timed out after {timeout:g} s (--timeout)",
                           output_tail=read_tail(task.log_path, 0), usage=dict(task.usage))
    return result


async def run_attempt(ctx: AttemptContext, subtask: Subtask, task: AgentTask) -> AgentResult:
    """The agent, then the checks that its worktree is still on its branch, the verification
    and the nested-repository guard: the result says whether the attempt succeeded, and which
    sandbox it ran in (local runs and Ray workers record it the same way)."""
    await write_header(task)
    async with sandboxed(ctx, task) as task:
        result = await _checked_attempt(ctx, subtask, task)
    return replace(result, sandbox=ctx.sandbox.mode, sandbox_reason=ctx.sandbox.reason)


@asynccontextmanager
async def sandboxed(ctx: AttemptContext, task: AgentTask) -> AsyncIterator[AgentTask]:
    """`task` with the sandbox of its attempt: a private home for the attempt (the preset's
    config copied in, discarded after) and, for network `allow`, a gate of the egress proxy."""
    policy = ctx.sandbox
    if not policy.active:
        yield task
        return
    async with policy.private_home() as home, _egress_gate(ctx, task) as proxy_socket:
        yield replace(task, confinement=policy.agent(task.worktree, home, proxy_socket),
                      tools_confinement=policy.tools(task.worktree, home))


@asynccontextmanager
async def _egress_gate(ctx: AttemptContext, task: AgentTask) -> AsyncIterator[Path | None]:
    if ctx.egress is None or ctx.sandbox.network != "allow":
        yield None
        return
    async with ctx.egress.gate(task.subtask_id, ctx.sandbox.allow, task.log_path) as gate:
        yield gate.socket_path


async def _checked_attempt(ctx: AttemptContext, subtask: Subtask,
                           task: AgentTask) -> AgentResult:
    result = await run_agent_timed(ctx, task)
    if result.ok and (problem := await branch_problem(task.worktree, task.branch)):
        return AgentResult(ok=False, error=problem, usage=result.usage, cost_usd=result.cost_usd)
    if result.ok and (command := subtask.verification_command):
        env = command_env(task.spec, task.subtask_id, task.worktree, task.branch, task.port)
        code, tail = await run_shell(command, task.worktree, task.log_path,
                                     ctx.settings.timeout, env, task.confinement)
        if code != 0:
            return AgentResult(ok=False, error=f"verification `{command}` failed (exit {code})",
                               output_tail=tail, usage=result.usage,
                               cost_usd=result.cost_usd, verification=f"failed (exit {code})")
        result.verification = "passed"
    if result.ok and (problem := await nested_repository_problem(task.worktree)):
        return AgentResult(ok=False, error=problem, usage=result.usage, cost_usd=result.cost_usd)
    return result


async def run_setup(settings: Settings, worktree: Path, log: Path, env: dict[str, str],
                    confinement: Confinement | None = None) -> None:
    """The `setup` commands, in order, in the worktree; the first that fails fails the attempt.
    In the sandbox they get the host network and the user's home read-only."""
    for command in settings.setup:
        code, tail = await run_shell(command, worktree, log, settings.timeout, env, confinement)
        if code != 0:
            raise AttemptFailed(f"setup command `{command}` failed ({code}): {tail[-300:]}")


async def write_header(task: AgentTask) -> None:
    async with await trio.open_file(task.log_path, "a", encoding="utf-8") as log:
        await log.write(f"\n===== {utc_now()} attempt {task.attempt} of {task.subtask_id} "
                        f"on {task.branch} =====\n")


def log_path(logs: Path, subtask_id: str) -> Path:
    """The subtask's log in the spec's logs folder (made if missing)."""
    logs.mkdir(parents=True, exist_ok=True)
    return names.subtask_log(logs, subtask_id)


def command_env(spec: str, subtask_id: str, worktree: Path, branch: str,
                port: int | None = None) -> dict[str, str]:
    """The environment of setup and verification commands: the agent's, less the prompt.
    ORCHESTRATE_WORKTREE marks what they leave running, so that it is stopped (orphans.py)."""
    return child_env({"ORCHESTRATE_SPEC": spec, "ORCHESTRATE_SUBTASK_ID": subtask_id,
                      "ORCHESTRATE_WORKTREE": str(worktree), "ORCHESTRATE_BRANCH": branch,
                      **({"ORCHESTRATE_PORT": str(port)} if port is not None else {}),
                      "GIT_CEILING_DIRECTORIES": git_ceiling(worktree)})


async def run_shell(command: str, cwd: Path, log: Path, limit_s: float, env: Mapping[str, str],
                    confinement: Confinement | None = None) -> tuple[int, str]:
    """Run a verification or setup command, its output appended to the subtask's log."""
    code, start = await run_logged(command, cwd, log, limit_s, env, confinement=confinement)
    return code, read_tail(log, start)


async def run_logged(command: str, cwd: Path, log: Path, limit_s: float,
                     env: Mapping[str, str], *, timed_out: int = -1,
                     timeout_note: str = "",
                     confinement: Confinement | None = None) -> tuple[int, int]:
    """Run `command` through the shell in its own process group, its output appended to `log`
    after a `$ command` line; its exit code (`timed_out` when cut off after `limit_s`, with
    `timeout_note` logged) and the log offset where its part starts."""
    with log.open("ab") as out:
        start = out.tell()
        out.write(f"$ {command}\n".encode())
        out.flush()
        code = timed_out
        with trio.move_on_after(limit_s) as scope:
            code = await run_in_group(command, cwd=cwd, output=out, env=env,
                                      confinement=confinement)
        if scope.cancelled_caught and timeout_note:
            out.write(f"\n[orchestrate: {timeout_note}]\n".encode())
    return code, start


async def branch_problem(worktree: Path, branch: str) -> str | None:
    """Why the worktree is no longer fit to commit from on `branch`, or None."""
    if not await trio.Path(worktree).is_dir() or not await trio.to_thread.run_sync(
            _holds_anything, worktree):  # an overlay's mount point outlives `rm -rf`
        return "the agent deleted its worktree"
    if not await trio.Path(worktree / ".git").exists():
        return "the agent removed the worktree's .git file"
    if problem := await trio.to_thread.run_sync(guarded_worktree_problem, worktree):
        return problem  # never run git through it: it may lead to the user's checkout
    head = await git(worktree, "symbolic-ref", "-q", "HEAD", check=False)
    if head.returncode not in (0, 1):
        return ("the worktree is no longer a git worktree (its .git file was damaged): "
                + (head.stderr.strip().splitlines() or ["?"])[0])
    if head.stdout.strip() != f"refs/heads/{branch}":
        where = head.stdout.strip().removeprefix("refs/heads/") or "a detached HEAD"
        return f"the agent left the worktree on {where} instead of {branch}"
    return None


def _holds_anything(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


async def restore_branch(worktree: Path, branch: str) -> None:
    """Put a worktree the agent switched away from back on its branch for the next attempt.
    A worktree that cannot be put back gets no further attempt: git run in a folder whose .git
    is gone would find the user's own repository above it."""
    if (await branch_problem(worktree, branch)
            and not await trio.to_thread.run_sync(guarded_worktree_problem, worktree)):
        await git(worktree, "symbolic-ref", "HEAD", f"refs/heads/{branch}", check=False)
        await git(worktree, "reset", "--hard", "--quiet", check=False)
    if problem := await branch_problem(worktree, branch):
        raise AttemptFailed(f"{problem}; no further attempt in a damaged worktree")


def commit_message(spec: str, subtask: Subtask, agent_label: str) -> str:
    return f"{subtask.id}: {subtask.title}\n\n" + names.trailers(spec, subtask.id,
                                                                agent=agent_label)
