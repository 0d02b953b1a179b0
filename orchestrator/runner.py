"""One subtask: worktree -> agent attempts -> verification -> commit -> status.

Where the workspace lives and where each attempt runs is the build's placement
(orchestrator/placement.py: local worktrees, or Ray tasks on a cluster); this module drives it.

The worktree is prepared before the subtask's turn comes (at most max_parallel prepared ahead),
so a freed agent slot is used at once. The agent holds one token of the build's
CapacityLimiter only while it and its verification run; the commit happens after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import trio

from merge.gitcmd import child_env
from orchestrator import names
from orchestrator.agents.base import Agent, AgentResult, AgentTask, git_ceiling
from orchestrator.agents.command import read_tail
from orchestrator.context import RunContext
from orchestrator.cost import attempt_cost
from orchestrator.diagnosis import failure_detail
from orchestrator.door.egress import EgressProxy
from orchestrator.door.sandbox import Confinement
from orchestrator.door.sandbox_policy import SandboxPolicy
from orchestrator.failpoints import failpoint
from orchestrator.guards import nested_repository_problem
from orchestrator.orphans import stop_orphaned_agents
from orchestrator.plan import Plan, Subtask
from orchestrator.processes import GitError, git, run_in_group
from orchestrator.prompts import build_prompt
from orchestrator.settings import Settings
from orchestrator.store import utc_now
from orchestrator.worktrees import copy_untracked


class AttemptFailed(Exception):
    """A step of the subtask failed; the message is the short error, `tail` the output."""

    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message)
        self.tail = tail


class AttemptContext(Protocol):
    """What one attempt needs: a RunContext on the coordinator, its twin on a Ray worker."""

    settings: Settings
    agent: Agent
    sandbox: SandboxPolicy
    egress: EgressProxy | None


@dataclass
class Outcome:
    subtask_id: str
    ok: bool
    head: str | None = None
    error: str = ""
    usage: dict[str, int] = field(default_factory=dict)  # of the attempt not yet recorded
    cost_usd: float | None = None  # likewise
    budget_stopped: bool = False  # the budget was reached: the subtask stays pending
    verification: str | None = None  # passed, failed (exit N) or skipped (<type>) (SPEC 2a)
    tail: str = ""  # the end of the failed attempt's output


async def run_subtask(ctx: RunContext, plan: Plan, subtask: Subtask, base: str) -> Outcome:
    """Run `subtask` on a branch made from `base`; record and return how it ended."""
    branch = ctx.branch_for(subtask.id)
    started = trio.current_time()
    outcome = Outcome(subtask.id, ok=False)
    if ctx.budget.reached():
        return await _stop_for_budget(ctx, subtask, outcome)
    try:
        async with AsyncExitStack() as holding:
            async with ctx.lookahead:  # at most max_parallel subtasks get ready ahead
                worktree = await holding.enter_async_context(
                    ctx.placement.workspace(ctx, subtask, branch, base))
                failpoint("worktree-prepared")
                await ctx.placement.set_up(ctx, subtask, worktree)
                await ctx.limiter.acquire()
            if ctx.budget.reached():  # spent while this subtask waited for an agent slot
                ctx.limiter.release()
                return await _stop_for_budget(ctx, subtask, outcome)
            started = trio.current_time()
            outcome = await _run_agent(ctx, plan, subtask, worktree, base)
            if outcome.ok:
                failpoint("agent-finished")
                outcome.head = await ctx.placement.hand_back(ctx, subtask, worktree)
                failpoint("work-committed")
                await ctx.placement.release(ctx, subtask)
    except (AttemptFailed, GitError, OSError) as exc:
        outcome.ok, outcome.error = False, str(exc)
    finally:
        if ctx.settings.setup or subtask.verification_command:
            with trio.CancelScope(shield=True):  # what setup or verification left running
                await stop_orphaned_agents(ctx.worktrees.path_for(subtask.id))
    if outcome.budget_stopped:
        return await _stop_for_budget(ctx, subtask, outcome)
    ctx.budget.recorded(await ctx.records.finished_agent(
        subtask.id, ok=outcome.ok, head=outcome.head, error=outcome.error, usage=outcome.usage,
        cost_usd=outcome.cost_usd, duration_s=trio.current_time() - started,
        verification=outcome.verification or subtask.verification_skipped,
        egress_refused=ctx.egress.refused.pop(subtask.id, 0) if ctx.egress else 0))
    failpoint("commit-recorded")
    _announce(ctx, subtask, outcome, base)
    return outcome


async def _stop_for_budget(ctx: RunContext, subtask: Subtask, outcome: Outcome) -> Outcome:
    """The budget is spent: the subtask stays (or goes back to) pending, saying so."""
    message = ctx.budget.message()
    ctx.budget.recorded(await ctx.records.budget_stopped(
        [subtask.id], message, usage=outcome.usage, cost_usd=outcome.cost_usd))
    ctx.emit("budget_reached", f"left pending: {message}", subtask=subtask.id,
             spent_usd=ctx.budget.spent, budget_usd=ctx.budget.limit)
    outcome.ok, outcome.budget_stopped, outcome.error = False, True, message
    return outcome


def _announce(ctx: RunContext, subtask: Subtask, outcome: Outcome, base: str) -> None:
    if not outcome.ok:
        ctx.agents_failed += 1
        first_line = outcome.error.splitlines()[0] if outcome.error else "unknown error"
        log, worktree = _log_path(ctx, subtask), ctx.worktrees.path_for(subtask.id)
        ctx.emit("subtask_failed", f"failed: {first_line}", subtask=subtask.id,
                 error=outcome.error, log=str(log), worktree=str(worktree),
                 detail=failure_detail(outcome.tail, log, worktree))
    elif outcome.head == base:
        ctx.emit("subtask_skipped", "completed with no changes", subtask=subtask.id)
    else:
        ctx.emit("subtask_committed", f"committed {outcome.head and outcome.head[:12]}",
                 subtask=subtask.id, head=outcome.head)


async def _run_agent(ctx: RunContext, plan: Plan, subtask: Subtask, worktree: Path,
                     base: str) -> Outcome:
    """Holding one agent slot (released at the end): record the start, run the attempts."""
    try:
        branch = ctx.branch_for(subtask.id)
        await ctx.records.started(subtask.id, branch=branch, worktree=str(worktree), base=base)
        ctx.emit("subtask_started", f"started on {branch}", subtask=subtask.id,
                 phase=subtask.phase.key, branch=branch, worktree=str(worktree), base=base)
        failpoint("subtask-started")
        return await _attempts(ctx, plan, subtask, worktree, branch)
    finally:
        ctx.limiter.release()


async def _set_up(ctx: RunContext, subtask: Subtask, worktree: Path) -> None:
    await copy_untracked(ctx.repo, worktree, ctx.settings.copy)
    log = _log_path(ctx, subtask)
    if ctx.settings.setup:
        await ctx.run_logs.start(log, subtask.id, ctx.agent_label)
    env = command_env(ctx.spec.name, subtask.id, worktree, ctx.branch_for(subtask.id))
    for command in ctx.settings.setup:
        code, tail = await _shell(command, worktree, log, ctx.settings.timeout, env,
                                  ctx.sandbox.setup(worktree))
        if code != 0:
            raise AttemptFailed(f"setup command `{command}` failed ({code}): {tail[-300:]}")


def _log_path(ctx: RunContext, subtask: Subtask) -> Path:
    ctx.spec.logs.mkdir(parents=True, exist_ok=True)
    return names.subtask_log(ctx.spec.logs, subtask.id)


async def _attempts(ctx: RunContext, plan: Plan, subtask: Subtask, worktree: Path,
                    branch: str) -> Outcome:
    outcome = Outcome(subtask.id, ok=False)
    feedback = ""
    port = ctx.ports.take()
    try:
        for attempt in range(1, ctx.settings.retries + 2):
            if attempt > 1 and ctx.budget.reached():
                outcome.budget_stopped = True
                break
            task = AgentTask(ctx.spec.name, subtask.id,
                             build_prompt(ctx.spec, plan, subtask, branch, feedback),
                             worktree, branch, _log_path(ctx, subtask), port, attempt)
            await ctx.run_logs.start(task.log_path, subtask.id, ctx.agent_label)
            result = await ctx.placement.attempt(ctx, subtask, task)
            outcome.verification = result.verification
            cost = attempt_cost(ctx.settings, result)
            if result.ok:
                outcome.ok, outcome.usage, outcome.cost_usd = True, result.usage, cost
                ctx.budget.spend(cost)  # before this agent slot is free for another subtask
                return outcome
            outcome.error, outcome.tail = result.error, result.output_tail
            feedback = f"{result.error}\n{result.output_tail}"
            ctx.budget.recorded(await ctx.records.attempt_failed(
                subtask.id, result.error, usage=result.usage, cost_usd=cost))
            failpoint("attempt-failed-recorded")
            ctx.emit("attempt_failed", f"attempt {attempt} failed: {result.error}",
                     subtask=subtask.id, attempt=attempt, error=result.error)
            if not result.retry:
                break
            await ctx.placement.after_failed_attempt(ctx, task)
    finally:
        ctx.ports.release(port)
    return outcome


async def run_agent_timed(ctx: AttemptContext, task: AgentTask) -> AgentResult:
    """The agent under --timeout; an attempt cut off still reports the tokens it spent."""
    timeout = ctx.settings.timeout
    with trio.move_on_after(timeout) as scope:
        result = await ctx.agent.run(task)
    if scope.cancelled_caught:
        return AgentResult(ok=False, error=f"agent timed out after {timeout:g} s (--timeout)",
                           output_tail=read_tail(task.log_path, 0), usage=dict(task.usage))
    return result


async def _one_attempt(ctx: AttemptContext, subtask: Subtask, task: AgentTask) -> AgentResult:
    await _write_header(task)
    async with sandboxed(ctx, task) as task:
        return await _checked_attempt(ctx, subtask, task)


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
    """The agent, the branch checks, the verification (in the agent's sandbox)."""
    timeout = ctx.settings.timeout
    result = await run_agent_timed(ctx, task)
    if result.ok:
        problem = await _branch_problem(task.worktree, task.branch)
        if problem:
            return AgentResult(ok=False, error=problem, usage=result.usage,
                               cost_usd=result.cost_usd)
    if result.ok and (command := subtask.verification_command):
        env = command_env(task.spec, task.subtask_id, task.worktree, task.branch, task.port)
        code, tail = await _shell(command, task.worktree, task.log_path, timeout, env,
                                  task.confinement)
        if code != 0:
            return AgentResult(ok=False, error=f"verification `{command}` failed (exit {code})",
                               output_tail=tail, usage=result.usage,
                               cost_usd=result.cost_usd, verification=f"failed (exit {code})")
        result.verification = "passed"
    if result.ok and (problem := await nested_repository_problem(task.worktree)):
        return AgentResult(ok=False, error=problem, usage=result.usage, cost_usd=result.cost_usd)
    return result


async def _write_header(task: AgentTask) -> None:
    async with await trio.open_file(task.log_path, "a", encoding="utf-8") as log:
        await log.write(f"\n===== {utc_now()} attempt {task.attempt} of {task.subtask_id} "
                        f"on {task.branch} =====\n")


def command_env(spec: str, subtask_id: str, worktree: Path, branch: str,
                port: int | None = None) -> dict[str, str]:
    """The environment of setup and verification commands: the agent's, less the prompt.
    ORCHESTRATE_WORKTREE marks what they leave running, so that it is stopped (orphans.py)."""
    return child_env({"ORCHESTRATE_SPEC": spec, "ORCHESTRATE_SUBTASK_ID": subtask_id,
                      "ORCHESTRATE_WORKTREE": str(worktree), "ORCHESTRATE_BRANCH": branch,
                      **({"ORCHESTRATE_PORT": str(port)} if port is not None else {}),
                      "GIT_CEILING_DIRECTORIES": git_ceiling(worktree)})


async def _shell(command: str, cwd: Path, log_path: Path, limit_s: float,
                 env: dict[str, str], confinement: Confinement | None) -> tuple[int, str]:
    """Run a verification or setup command, its output appended to the subtask's log."""
    with log_path.open("ab") as log:
        start = log.tell()
        log.write(f"$ {command}\n".encode())
        log.flush()
        code = -1
        with trio.move_on_after(limit_s):
            code = await run_in_group(command, cwd=cwd, output=log, env=env,
                                      confinement=confinement)
    return code, read_tail(log_path, start)


async def _branch_problem(worktree: Path, branch: str) -> str | None:
    if not await trio.Path(worktree).is_dir():
        return "the agent deleted its worktree"
    if not await trio.Path(worktree / ".git").exists():
        return "the agent removed the worktree's .git file"
    head = await git(worktree, "symbolic-ref", "-q", "HEAD", check=False)
    if head.returncode not in (0, 1):
        return ("the worktree is no longer a git worktree (its .git file was damaged): "
                + (head.stderr.strip().splitlines() or ["?"])[0])
    if head.stdout.strip() != f"refs/heads/{branch}":
        where = head.stdout.strip().removeprefix("refs/heads/") or "a detached HEAD"
        return f"the agent left the worktree on {where} instead of {branch}"
    return None


async def _restore_branch(worktree: Path, branch: str) -> None:
    """Put a worktree the agent switched away from back on its branch for the next attempt.
    A worktree that cannot be put back gets no further attempt: git run in a folder whose .git
    is gone would find the user's own repository above it."""
    if await _branch_problem(worktree, branch) and await trio.Path(worktree / ".git").exists():
        await git(worktree, "symbolic-ref", "HEAD", f"refs/heads/{branch}", check=False)
        await git(worktree, "reset", "--hard", "--quiet", check=False)
    if problem := await _branch_problem(worktree, branch):
        raise AttemptFailed(f"{problem}; no further attempt in a damaged worktree")


def commit_message(ctx: RunContext, subtask: Subtask) -> str:
    return (f"{subtask.id}: {subtask.title}\n\n"
            + names.trailers(ctx.spec.name, subtask.id, agent=ctx.agent_label))

