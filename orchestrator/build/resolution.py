"""Resolution rounds (SPEC 10): a subtask that ends a merge stage in `conflict` goes back to its
agent, with exactly the job a person would get. In the subtask's worktree, on its own branch,
`git merge --no-ff --no-commit` of the integration branch leaves git's conflict markers; the
agent resolves them; orchestrate checks that no unmerged entry and no marker is left and that
the verification passes, commits the merge on the subtask branch (trailer
`Orchestrate-Resolution: <round>`), and runs the merge stage again for it.

A round never moves the integration branch itself: only the merge stage does, as for any
branch. A failed round aborts the merge, so the worktree is back on the branch as it was.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import trio

from merge import Finding, overlap_detail, words
from orchestrator import names
from orchestrator.agents.base import AgentResult, AgentTask
from orchestrator.agents.prompts import build_resolution_prompt
from orchestrator.build.context import RunContext
from orchestrator.door.processes import GitError, git, git_out, resolve
from orchestrator.events import EventKind
from orchestrator.failpoints import failpoint
from orchestrator.plan.model import MergeState, Plan, Status, Subtask
from orchestrator.plan.own_record import record_head
from orchestrator.plan.store import utc_now
from orchestrator.plan.transitions import resolutions_of
from orchestrator.stage.conflict_report import conflict_report
from orchestrator.stage.merge_context import MergeContext, integration_branch
from orchestrator.stage.merge_stage import merge_subtasks
from orchestrator.workspace.attempt import (
    branch_problem,
    command_env,
    log_path,
    run_agent_timed,
    run_shell,
    sandboxed,
)
from orchestrator.workspace.commit import commit_merge
from orchestrator.workspace.guards import nested_repository_problem
from orchestrator.workspace.worktrees import NEVER_KEPT, remove_stale_index_lock

TRAILER = names.RESOLUTION_TRAILER
MARKER = re.compile(rb"^(?:<{7}|>{7}|\|{7})(?: |$)", re.MULTILINE)
NO_EDITOR = {"GIT_MERGE_AUTOEDIT": "no", "GIT_EDITOR": "true",
             "GIT_REFLOG_ACTION": "orchestrate: resolution round"}


class RoundFailed(Exception):
    """The round cannot end in a commit; the message says why."""


@dataclass
class Round:
    """One resolution round of one subtask, as it goes."""

    subtask: Subtask
    number: int
    limit: int
    branch: str
    worktree: Path
    head: str = ""  # the branch's head before the merge
    merging: str | None = None  # MERGE_HEAD: the integration head being merged
    paths: list[str] = field(default_factory=list)  # the files the agent has to resolve
    edited: list[str] = field(default_factory=list)  # the files the agent changed
    findings: list[Finding] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)


async def resolve_conflicts(ctx: RunContext, subtask_ids: Sequence[str], *,
                            ended: Collection[str]) -> None:
    """Resolution rounds for those of `subtask_ids` in `conflict` that are due some: the
    ones that `ended` a merge stage of this build in conflict, the ones whose rounds an
    earlier build began and did not finish, and with --retry-failed any conflict. Each
    subtask's rounds run one after another; different subtasks' rounds at the same time."""
    if not ctx.resolves_conflicts or ctx.settings.no_merge or not subtask_ids:
        return
    plan = await ctx.records.read()
    due: dict[str, int] = {}
    for subtask_id in subtask_ids:
        subtask = plan.subtask(subtask_id)
        if subtask.status != Status.CONFLICT:
            continue
        limit = _round_limit(ctx, subtask, subtask_id in ended)
        if resolutions_of(subtask) < limit:
            due[subtask_id] = limit
        elif subtask_id in ended:  # no round left: the user resolves it in its worktree
            ctx.background.start_soon(ctx.worktrees.restore, subtask_id,
                                      ctx.branch_for(subtask_id))
    async with trio.open_nursery() as nursery:
        for subtask_id, limit in due.items():
            nursery.start_soon(_rounds, ctx, subtask_id, limit)


def _round_limit(ctx: RunContext, subtask: Subtask, ended: bool) -> int:
    """The number `orchestrate.resolutions` may reach in this build."""
    used, attempts = resolutions_of(subtask), ctx.settings.resolve_attempts
    limit = attempts if ended or "resolutions" in subtask.meta else 0
    if ctx.settings.retry_failed and not ended and used >= limit:
        limit = used + attempts  # a fresh set of rounds
    return limit


async def _rounds(ctx: RunContext, subtask_id: str, limit: int) -> None:
    while True:
        plan = await ctx.records.read()
        subtask = plan.subtask(subtask_id)
        number = resolutions_of(subtask) + 1
        if subtask.status != Status.CONFLICT or number > limit:
            return
        if await _round(ctx, plan, subtask, number, limit):
            fresh = await ctx.records.read()
            await _merge_again(ctx, fresh.subtask(subtask_id))


async def _round(ctx: RunContext, plan: Plan, subtask: Subtask, number: int,
                 limit: int) -> bool:
    """One round; True when its merge commit is on the branch and recorded."""
    branch = ctx.branch_for(subtask.id)
    ctx.resolution_rounds += 1
    ctx.emit(EventKind.RESOLUTION_STARTED, f"resolution round {number} of {limit}: merging "
             f"{integration_branch(ctx.spec)} into {branch}", subtask=subtask.id,
             round=number, attempts=limit,
             log=str(names.subtask_log(ctx.spec.logs, subtask.id)),
             display=f"resolution round {number}: merging the integration branch")
    state: Round | None = None
    try:
        async with ctx.worktrees.hold_on_branch(subtask.id, branch) as worktree:
            state = Round(subtask, number, limit, branch, worktree)
            await ctx.records.resolution_started(subtask.id, number, str(worktree))
            failpoint("resolution-started")
            await _play(ctx, plan, state)
    except (RoundFailed, GitError, OSError) as exc:
        if state is not None:
            await _undo(state)
        reason = f"resolution round {number} of {limit} failed: {exc}"
        await ctx.records.resolution_failed(subtask.id, number, reason,
                                            state.usage if state else {})
        failpoint("resolution-failed-recorded")
        ctx.emit(EventKind.RESOLUTION_FAILED, reason, subtask=subtask.id, round=number,
                 attempts=limit, error=str(exc), last=number >= limit)
        return False
    ctx.emit(EventKind.RESOLVED, f"resolved by agent in round {number}: {_what(state)}",
             subtask=subtask.id, round=number, paths=state.paths, edited=state.edited)
    return True


async def _play(ctx: RunContext, plan: Plan, state: Round) -> None:
    """Merge, agent, checks, commit: raises RoundFailed at the first problem."""
    state.head = await git_out(state.worktree, "rev-parse", "HEAD")
    await _start_merge(ctx, state)
    failpoint("resolution-merging")
    state.findings = await trio.to_thread.run_sync(partial(_findings, ctx, plan, state.subtask))
    state.paths = list(dict.fromkeys([*state.paths, *(f.path for f in state.findings
                                                      if f.kind != "check" and f.path)]))
    async with ctx.limiter:
        await _run_agent(ctx, plan, state)
    state.edited = await _edited(state.worktree)
    commit = await _commit(ctx, state)
    await trio.to_thread.run_sync(record_head, ctx.spec, state.subtask.id, commit)
    ctx.heads_made[state.subtask.id] = commit
    failpoint("resolution-committed")
    await ctx.records.resolution_committed(state.subtask.id, state.number, commit, state.usage,
                                           _resolution_record(state), base=state.merging)
    failpoint("resolution-recorded")


async def _start_merge(ctx: RunContext, state: Round) -> None:
    merged = await git(state.worktree, "merge", "--no-ff", "--no-commit", "--quiet",
                       integration_branch(ctx.spec), check=False, env=NO_EDITOR)
    state.merging = await _merge_head(state.worktree)
    if merged.returncode not in (0, 1) or (merged.returncode == 1 and not state.merging):
        detail = (merged.stderr.strip() or merged.stdout.strip()).splitlines()[:1]
        raise RoundFailed(f"git merge of {integration_branch(ctx.spec)} failed: "
                          f"{detail[0] if detail else merged.returncode}")
    listing = await git(state.worktree, "diff", "--name-only", "--diff-filter=U", "-z")
    state.paths = [p for p in listing.stdout.split("\0") if p]


async def _merge_head(worktree: Path) -> str | None:
    return await resolve(worktree, "MERGE_HEAD")


def _findings(ctx: RunContext, plan: Plan, subtask: Subtask) -> list[Finding]:
    """The conflict report's entries for this subtask: both sides' excerpts."""
    report = conflict_report(ctx.spec, plan)
    return [_other_side(f, subtask.id) for f in report.findings
            if f.subtask == subtask.id and f.kind != "overlap"]


def _other_side(finding: Finding, me: str) -> Finding:
    """The finding with only the sides whose edits touch this subtask's lines of the path
    (the report lists every merged subtask that changed the path), when some do."""
    mine = next((s.change for s in finding.sides if s.subtask_id == me), None)
    if mine is None:
        return finding
    close = tuple(s for s in finding.sides if s.subtask_id == me or (
        s.change is not None and overlap_detail([mine, s.change]) != "separate hunks"))
    return replace(finding, sides=close) if len(close) > 1 else finding


async def _run_agent(ctx: RunContext, plan: Plan, state: Round) -> None:
    subtask = state.subtask
    check = subtask.record.check
    output = check.get("output") if isinstance(check, dict) else None
    prompt = build_resolution_prompt(
        plan, subtask, branch=state.branch, integration=integration_branch(ctx.spec),
        head=state.merging or await ctx.integration_tip(), round_=state.number,
        attempts=state.limit, paths=state.paths, findings=state.findings,
        check_output=output if isinstance(output, str) else "")
    port = ctx.ports.take()
    try:
        task = AgentTask(ctx.spec.name, subtask.id, prompt, state.worktree, state.branch,
                         log_path(ctx.spec.logs, subtask.id), port, attempt=state.number,
                         resolving=state.number)
        if ctx.shared_git is None:
            result = await _agent_with_checks(ctx, subtask, task, state)
        else:
            async with ctx.shared_git.watching() as watch:
                result = await _agent_with_checks(ctx, subtask, task, state)
            if watch.changed:
                result = AgentResult(ok=False, error=watch.error, usage=result.usage)
    finally:
        ctx.ports.release(port)
    for key, value in result.usage.items():
        state.usage[key] = state.usage.get(key, 0) + value
    if not result.ok:
        raise RoundFailed(result.error)


async def _agent_with_checks(ctx: RunContext, subtask: Subtask, task: AgentTask,
                             state: Round) -> AgentResult:
    async with await trio.open_file(task.log_path, "a", encoding="utf-8") as log:
        await log.write(f"\n===== {utc_now()} resolution round {state.number} of "
                        f"{subtask.id} on {task.branch} =====\n")
    async with sandboxed(ctx, task) as task:
        result = await run_agent_timed(ctx, task)
        if not result.ok:
            return result
        problem = (await branch_problem(task.worktree, task.branch)
                   or await _merge_problem(state)
                   or await trio.to_thread.run_sync(_markers_problem, state))
        if not problem and (command := subtask.verification_command):
            env = command_env(task.spec, task.subtask_id, task.worktree, task.branch, task.port)
            code, _ = await run_shell(command, task.worktree, task.log_path,
                                      ctx.settings.timeout, env, task.confinement)
            if code != 0:
                problem = f"verification `{command}` failed (exit {code})"
    problem = problem or await nested_repository_problem(task.worktree)
    return AgentResult(ok=False, error=problem, usage=result.usage) if problem else result


async def _merge_problem(state: Round) -> str | None:
    """The agent may neither commit nor abort the merge."""
    if await git_out(state.worktree, "rev-parse", "HEAD") != state.head:
        return "the agent committed during the resolution round (the orchestrator commits)"
    if state.merging and await _merge_head(state.worktree) != state.merging:
        return "the agent aborted the merge (MERGE_HEAD is gone)"
    return None


def _what(state: Round) -> str:
    """What the round resolved, in words: the conflicted paths, else what the agent edited
    (a round for the check's failure has no conflicted path)."""
    about = ("the check's failure" if state.subtask.record.merge == MergeState.CHECK_FAILED
             else "")
    edited = f"edited {', '.join(state.edited)}" if state.edited else "no file edited"
    if state.paths:
        return ", ".join(state.paths)
    return f"{about} ({edited})" if about else edited


async def _edited(worktree: Path) -> list[str]:
    """The files changed in the worktree since the merge was staged (the agent's edits)."""
    changed = await git(worktree, "diff", "--name-only", "-z", check=False)
    added = await git(worktree, "ls-files", "--others", "--exclude-standard", "-z", check=False)
    paths = [p for p in (changed.stdout + added.stdout).split("\0") if p]
    private = tuple(f"{folder}/" for folder in names.PRIVATE_DIRS)
    return sorted(p for p in dict.fromkeys(paths) if not p.startswith(private))


def _markers_problem(state: Round) -> str | None:
    left = [path for path in state.paths if _has_markers(state.worktree / path)]
    return f"conflict markers left in {', '.join(left)}" if left else None


def _has_markers(path: Path) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and bool(
            MARKER.search(path.read_bytes()))
    except OSError:
        return False


async def _commit(ctx: RunContext, state: Round) -> str:
    integration = integration_branch(ctx.spec)
    message = (f"Merge {integration} into {state.branch}\n\n"
               f"{state.subtask.id}: resolution round {state.number}\n\n"
               + names.trailers(ctx.spec.name, state.subtask.id, agent=ctx.agent_label,
                                resolution=state.number))
    try:
        commit = await commit_merge(state.worktree, message, ctx.settings.copy,
                                    head=state.head, merging=state.merging,
                                    pinned=ctx.shared_git.pinned if ctx.shared_git else ())
    except GitError as exc:
        unmerged = await git(state.worktree, "ls-files", "-u", check=False)
        if unmerged.stdout.strip():
            raise RoundFailed("unmerged index entries remain") from None
        raise RoundFailed(f"cannot commit the resolution: {exc}") from None
    await git(state.worktree, "merge", "--quit", check=False)  # MERGE_HEAD is committed
    return commit


def _resolution_record(state: Round) -> dict[str, Any]:
    others = list(dict.fromkeys(s for f in state.findings for s in f.subtasks
                                if s != state.subtask.id))  # plan order
    kind = ("check" if state.subtask.record.merge == MergeState.CHECK_FAILED
            else words.CONFLICT if any(f.detail != "overlap" for f in state.findings)
            else "overlap")
    return {"round": state.number, "kind": kind, "paths": state.paths or state.edited,
            "subtasks": others,
            "merged": state.merging}


async def _undo(state: Round) -> None:
    """Abort the merge and put the worktree back on its branch as it was before the round
    (undoing a commit the agent made). Nothing runs where the .git file is gone: git would
    find the user's own repository above the worktree."""
    worktree = state.worktree
    if not await _linked_worktree(worktree):
        return
    await remove_stale_index_lock(worktree)
    await git(worktree, "merge", "--abort", check=False)
    await git(worktree, "symbolic-ref", "HEAD", f"refs/heads/{state.branch}", check=False)
    if state.head:
        await git(worktree, "reset", "--hard", "--quiet", state.head, check=False)
    await git(worktree, "clean", "-ffdq", *NEVER_KEPT, check=False)


async def _merge_again(ctx: RunContext, subtask: Subtask) -> None:
    """The merge stage for the resolved branch, with its merged siblings' overlaps."""
    phase = subtask.phase
    if not phase.parallel_safe:
        await merge_subtasks(ctx, [subtask], group=None)
    else:
        siblings = [s for s in phase.subtasks if s.merged_with_changes and s.id != subtask.id]
        await merge_subtasks(ctx, [subtask], group=phase.key, merged_siblings=siblings)


async def recover_rounds(ctx: MergeContext) -> None:
    """Rounds that an earlier build (killed) or this one (Ctrl-C) left `in_progress`: abort
    the merge in the worktree and return the subtask to `conflict` with the rounds it has
    left; a round whose merge commit is already on the branch becomes committed work."""
    plan = await ctx.records.read()
    cut = [s for s in plan.subtasks() if s.status == Status.IN_PROGRESS and s.record.resolving]
    if not cut:
        return
    interrupted = []
    for subtask in cut:
        with trio.CancelScope(shield=True):
            await abort_merge(ctx.worktrees.path_for(subtask.id))
            committed = await _committed_resolution(ctx, subtask)
        if committed is None:
            interrupted.append(subtask.id)
        else:
            number = subtask.record.resolving or 1
            tip, merged = committed
            await ctx.records.resolution_committed(
                subtask.id, number, tip, {},
                {"round": number, "kind": words.CONFLICT, "paths": [], "subtasks": []}, base=merged)
    if interrupted:
        await ctx.records.rounds_interrupted(interrupted)


async def abort_merge(worktree: Path) -> None:
    """Abort a merge in progress in a subtask's worktree, if there is one."""
    if not await _linked_worktree(worktree):
        return
    await remove_stale_index_lock(worktree)
    if await _merge_head(worktree):
        await git(worktree, "merge", "--abort", check=False)


async def _linked_worktree(worktree: Path) -> bool:
    """Whether git in `worktree` works on a linked worktree: not when its .git file is gone
    (git would find the user's repository above it) or an agent pointed it at the main
    repository's own git folder (an abort or reset there would hit the user's checkout)."""
    if not await trio.Path(worktree / ".git").is_file():
        return False
    found = await git(worktree, "rev-parse", "--path-format=absolute", "--git-dir",
                      "--git-common-dir", check=False)
    dirs = found.stdout.split("\n")
    return found.returncode == 0 and len(dirs) >= 2 and dirs[0] != dirs[1]


async def _committed_resolution(ctx: MergeContext, subtask: Subtask
                                ) -> tuple[str, str | None] | None:
    """The branch tip and the commit it merged, if the tip is this round's merge commit on
    the recorded head (a build killed between the commit and its record)."""
    branch = f"refs/heads/{ctx.branch_for(subtask.id)}"
    found = await git(ctx.repo, "log", "-1", "--format=%H %P%x00%B", branch, "--", check=False)
    commits, _, body = found.stdout.partition("\0")
    tip, *parents = commits.split() or [""]
    round_line = f"{TRAILER}: {subtask.record.resolving}"
    if found.returncode != 0 or parents[:1] != [subtask.record.head] or \
            round_line not in body.splitlines():
        return None
    return tip, (parents[1] if len(parents) > 1 else None)
