"""`orchestrate build` and `orchestrate merge` from start to exit code: checks, run lock,
integration branch, recovery of an earlier run, the scheduler, Ctrl-C, the summary."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial

import trio

from merge import GitError, MergeResult, lock_message, pin_git_config, words
from orchestrator import names
from orchestrator.agents import agent_label, check_agent_configured, open_agent
from orchestrator.agents.base import Agent
from orchestrator.build.adoption import adopt_crashed_commits
from orchestrator.build.context import RunContext
from orchestrator.build.hints import next_steps
from orchestrator.build.only import check_only, selected
from orchestrator.build.preflight import Target, check_repository, ensure_identity
from orchestrator.build.resolution import recover_rounds
from orchestrator.build.run_summary import RunFacts, headline, integration_line, subtask_lines
from orchestrator.build.scheduler import run_phases
from orchestrator.build.stale import find_stale, reconcile
from orchestrator.build.user_checkout import checkout_note
from orchestrator.door.egress import open_egress
from orchestrator.door.orphans import stop_orphaned_agents
from orchestrator.door.processes import git
from orchestrator.door.sandbox_policy import SandboxPolicy
from orchestrator.errors import Interrupted, OrchestrateError, RunFailed
from orchestrator.events import Event, EventKind, Sink
from orchestrator.failpoints import failpoint
from orchestrator.plan.budget import Budget, recorded_cost
from orchestrator.plan.model import Plan, Status, Subtask, status_counts
from orchestrator.plan.own_record import forget
from orchestrator.plan.sandbox_note import sandbox_text, without_sandbox
from orchestrator.plan.specs import Spec
from orchestrator.plan.store import PlanStore, RunLock
from orchestrator.plan.transitions import Transitions
from orchestrator.settings import Settings
from orchestrator.stage.gate import base_failure_error, check_base
from orchestrator.stage.merge_context import MergeContext
from orchestrator.stage.merge_stage import merge_subtasks
from orchestrator.stage.radar import Radar
from orchestrator.workspace.overlay import uses_overlay
from orchestrator.workspace.placement import LocalPlacement, Placement, Workshop, check_runner
from orchestrator.workspace.run_log import RunLogs
from orchestrator.workspace.sandboxing import sandbox_policy
from orchestrator.workspace.shared_git import SharedGit
from orchestrator.workspace.worktrees import Worktrees

# Makes the build's sink (the live display, plain lines or JSON) once the plan is read: the
# command line passes it in, so the build never imports a renderer.
OpenSink = Callable[[Plan], Sink]
OpenPlacement = Callable[[Workshop], AbstractAsyncContextManager[Placement]]


def run_build(spec: Spec, settings: Settings, *, open_sink: OpenSink,
              agent: Agent | None = None, placement: OpenPlacement | None = None,
              alongside: Callable[[], Awaitable[None]] | None = None) -> int:
    """Validate, lock, run every ready subtask, integrate; return the exit code (SPEC 3.7).
    `agent`, when given, is used instead of the one the settings configure (in-process
    tests run the real scheduler with a fake agent this way); `placement` likewise opens the
    build's placement instead of the one the `runner` setting chooses. `alongside` runs for
    as long as the build does (the web page of `build --ui`), cancelled when it ends."""
    plan = PlanStore(spec.folder).read()
    check_only(spec.name, plan, settings.only)
    if agent is None:
        check_agent_configured(settings, spec.repo)
    check_runner(settings)
    target = check_repository(spec, settings.base, plan)
    if settings.workspace == "overlay":  # asked for: exit 2 now where it cannot be mounted
        uses_overlay(spec.repo, settings.workspace)
    sandbox = sandbox_policy(settings, spec.repo)
    ensure_identity(spec.repo)
    with RunLock(spec.folder).hold():
        main: Main = partial(_build_main, open_sink=open_sink, given=agent,
                             open_given=placement, sandbox=sandbox)
        if alongside is not None:
            main = partial(_beside, main, alongside)
        return _run_trio(main, spec, settings, target, plan)


def run_merge(spec: Spec, settings: Settings, *, open_sink: OpenSink) -> int:
    """Integrate committed-but-unmerged and conflict subtasks; 0 if all merged, else 1."""
    plan = PlanStore(spec.folder).read()
    target = check_repository(spec, None)
    if not target.exists:
        raise OrchestrateError(f"{spec.name} has no integration branch yet",
                               f"Run `orchestrate build {spec.name}` first.")
    sandbox = sandbox_policy(settings, spec.repo)
    ensure_identity(spec.repo)
    with RunLock(spec.folder).hold():
        return _run_trio(partial(_merge_main, open_sink=open_sink, sandbox=sandbox), spec,
                         settings, target, plan)


Main = Callable[[Spec, Settings, Target, Plan], Awaitable[int]]


async def _beside(main: Main, alongside: Callable[[], Awaitable[None]], spec: Spec,
                  settings: Settings, target: Target, plan: Plan) -> int:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(alongside)
        try:
            return await main(spec, settings, target, plan)
        finally:
            nursery.cancel_scope.cancel()


def _run_trio(main: Main, spec: Spec, settings: Settings, target: Target, plan: Plan) -> int:
    try:
        return trio.run(main, spec, settings, target, plan)
    except BaseExceptionGroup as group:
        raise _user_error(group) from None


def _user_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first user-facing error inside a (nested) exception group, else the group itself."""
    for exc in group.exceptions:
        if isinstance(exc, OrchestrateError | KeyboardInterrupt):
            return exc
        if isinstance(exc, GitError) and (said := lock_message(exc)):
            return RunFailed(*said)
        if isinstance(exc, BaseExceptionGroup):
            inner = _user_error(exc)
            if inner is not exc:
                return inner
    return group


@asynccontextmanager
async def _agent(settings: Settings, sink: Sink, given: Agent | None) -> AsyncIterator[Agent]:
    if given is not None:
        yield given
        return
    async with open_agent(settings, sink) as agent:
        yield agent


async def _run(ctx: RunContext, target: Target, started: float) -> int:
    await _start(ctx, target)
    interrupted = await _until_signal(lambda: _phases(ctx))
    if interrupted:
        with trio.CancelScope(shield=True):
            await _return_interrupted(ctx)
        raise Interrupted("interrupted: agents stopped, unfinished subtasks are pending",
                          f"Run `orchestrate build {ctx.spec.name}` again to resume.")
    if ctx.checks.refused_start and (failure := base_failure_error(ctx)):
        raise failure  # the check failed on the base: no agent started, nothing to sum up
    return await _finish(ctx, time.monotonic() - started)


@asynccontextmanager
async def open_placement(shop: Workshop) -> AsyncIterator[Placement]:
    """The build's one placement; for Ray: connected and version-checked, shut down after."""
    if shop.settings.runner != "ray":
        yield LocalPlacement(shop)
        return
    from orchestrator.workspace.ray_placement import open_ray_placement

    async with open_ray_placement(shop) as placement:
        yield placement


async def _build_main(spec: Spec, settings: Settings, target: Target, plan: Plan, *,
                      open_sink: OpenSink, given: Agent | None = None,
                      open_given: OpenPlacement | None = None,
                      sandbox: SandboxPolicy) -> int:
    sink = open_sink(plan)
    started = time.monotonic()
    try:
        worktrees = Worktrees(spec.repo, spec.name, settings.reuse_worktrees,
                              pool_limit=2 * settings.max_parallel,
                              workspace=settings.workspace)
        shared = await _guard_shared_git(spec, worktrees, sink)
        async with _agent(settings, sink, given) as agent, \
                open_egress(sandbox.needs_proxy) as egress:
            shop = Workshop(spec=spec, settings=settings, worktrees=worktrees, agent=agent,
                            agent_label=agent_label(settings) if given is None else agent.name,
                            run_logs=RunLogs(), sandbox=sandbox, egress=egress, shared=shared)
            async with (open_given or open_placement)(shop) as placement, \
                    trio.open_nursery() as background:
                ctx = RunContext(spec=spec, settings=settings,
                                 records=Transitions(PlanStore(spec.folder)), sink=sink,
                                 worktrees=worktrees, background=background, agent=agent,
                                 agent_label=shop.agent_label, run_logs=shop.run_logs,
                                 limiter=trio.CapacityLimiter(settings.max_parallel),
                                 lookahead=trio.Semaphore(settings.max_parallel),
                                 budget=Budget(settings.budget, recorded_cost(plan)),
                                 placement=placement, sandbox=sandbox, egress=egress,
                                 shared_git=shared)
                ctx.radar = Radar.for_build(repo=spec.repo, logs=spec.logs,
                                            cache=names.radar_cache(spec.repo, spec.name),
                                            settings=settings, records=ctx.records,
                                            emit=ctx.emit,
                                            reads_workspaces=placement.reads_workspaces)
                watching_stash = trio.CancelScope()
                background.start_soon(_watch_stash, shared, watching_stash)
                try:
                    code = await _run(ctx, target, started)
                finally:
                    watching_stash.cancel()
                    with trio.CancelScope(shield=True):
                        await ctx.radar.close()
        await _release_shared_git(shared, sink)
        return code
    finally:
        sink.close()


async def _guard_shared_git(spec: Spec, worktrees: Worktrees, sink: Sink) -> SharedGit:
    """Trust the repository's filters and drivers as they are now, fingerprint the shared .git
    (undoing what a killed build's agents changed in it)."""
    await worktrees.exclude_orchestrate_dir()
    shared, undone = await SharedGit.open(spec.repo, spec.name)
    await trio.to_thread.run_sync(pin_git_config, spec.repo)
    if undone:
        sink.emit(Event(EventKind.SHARED_GIT_RESTORED, "undid a change to the shared "
                        "repository left by an earlier build: " + "; ".join(undone[:5]),
                        None, None, {"changes": undone}))
    return shared


async def _watch_stash(shared: SharedGit, scope: trio.CancelScope) -> None:
    with scope:
        await shared.watch_stash()


async def _release_shared_git(shared: SharedGit, sink: Sink) -> None:
    if undone := await shared.check():
        sink.emit(Event(EventKind.SHARED_GIT_RESTORED, "undid a change to the shared "
                        "repository: " + "; ".join(undone[:5]), None, None,
                        {"changes": undone}))
    shared.close()


async def _phases(ctx: RunContext) -> None:
    """Every phase, after the check passed on the integration branch's head (when there is a
    check); a failing check there leaves `ctx.checks.refused_start` set and runs nothing."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_keep_refreshing, ctx)
        if ctx.settings.check and not ctx.settings.no_merge and \
                not (await check_base(ctx)).passed:  # before any agent starts (SPEC 9)
            ctx.checks.refused_start = True
            nursery.cancel_scope.cancel()
            return
        await run_phases(ctx, await ctx.records.read())
        nursery.cancel_scope.cancel()


async def _keep_refreshing(ctx: RunContext) -> None:
    while True:
        await trio.sleep(1)
        ctx.sink.refresh()


async def _until_signal(work: Callable[[], Awaitable[None]]) -> bool:
    """Run `work`; on SIGINT or SIGTERM cancel it (killing every agent group). True if so."""
    interrupted = False

    async def watch(scope: trio.CancelScope) -> None:
        nonlocal interrupted
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                interrupted = True
                scope.cancel()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, nursery.cancel_scope)
        await work()
        nursery.cancel_scope.cancel()
    return interrupted


async def _start(ctx: RunContext, target: Target) -> None:
    await ctx.worktrees.exclude_orchestrate_dir()
    if not target.exists:
        await trio.to_thread.run_sync(forget, ctx.spec)
        await git(ctx.repo, "update-ref", "-m", "orchestrate: create integration branch",
                  ctx.integration_ref, target.base, "")
        failpoint("integration-branch-created")
    await ctx.note_integration_tip()
    if ctx.placement.reads_workspaces:  # local worktrees (not Ray's clones on its workers):
        # the shared checkout of copy-on-write worktrees, made while the build starts up
        ctx.background.start_soon(ctx.worktrees.prepare, ctx.integration_ref)
    await ctx.records.run_started(target.integration_branch, target.base,
                                  target.base_branch, overlap=ctx.settings.overlap,
                                  sandbox=ctx.sandbox.mode)
    if ctx.sandbox.warning:
        ctx.emit(EventKind.SANDBOX_UNAVAILABLE, f"warning: {ctx.sandbox.warning}",
                 reason=ctx.sandbox.warning)
    ctx.emit(EventKind.BUILD_STARTED, f"building {ctx.spec.name} into {target.integration_branch} "
             f"(max {ctx.settings.max_parallel} agents at once)",
             integration_branch=target.integration_branch, budget_usd=ctx.settings.budget,
             only=list(ctx.settings.only), retry_failed=ctx.settings.retry_failed)
    if target.note:
        ctx.emit(EventKind.BASE_CHOSEN, target.note, base=target.base)
    start_name = target.integration_branch if target.exists else target.start_name
    ctx.background.start_soon(_note_dirty_checkout, ctx, start_name, target.base)
    if stopped := await stop_orphaned_agents(ctx.worktrees.root / ctx.spec.name):
        ctx.emit(EventKind.ORPHANS_STOPPED, f"stopped {stopped} agent process group(s) left "
                 "running by an earlier build that was killed", groups=stopped)
    await _recover(ctx)


async def _note_dirty_checkout(ctx: RunContext, start_name: str, base: str) -> None:
    """The note about the user's uncommitted files, beside the first agents: its `git status`
    walks the user's whole tree (0.8 s at 200,000 files), which no agent needs to wait for."""
    if note := await checkout_note(ctx.repo, start_name, base):
        ctx.emit(EventKind.CHECKOUT_DIRTY, note)


async def _recover(ctx: MergeContext) -> None:
    """Make an earlier run's leftovers consistent: interrupted resolution rounds go back to
    conflict, completed work missing from the integration branch is merged again or rerun,
    merged branches become completed, work committed just before a crash is adopted, and
    subtasks interrupted before their commit go back to pending."""
    await ctx.worktrees.recover()  # overlays a killed build left mounted
    for doubted in await ctx.records.distrust_completions():
        ctx.emit(EventKind.SUBTASK_STALE, "marked completed outside orchestrate (no merge it "
                 "recorded): not believed, it runs again", subtask=doubted)
    await recover_rounds(ctx)
    await reconcile(ctx)
    plan = await ctx.records.read()
    tips = await ctx.subtask_tips(merged_only=True)
    merged = [s.id for s in plan.subtasks()
              if s.status != Status.COMPLETED and s.record.head and s.id in tips
              and tips[s.id] != s.record.base]
    interrupted = [s for s in _interrupted(plan) if s not in merged]
    adopted = await adopt_crashed_commits(ctx, plan, interrupted)
    interrupted = [s for s in interrupted if s not in adopted]
    if merged:
        commits = await _merge_commits(ctx, str(plan.record.base or ""))
        await ctx.records.merged(
            [MergeResult(s, "merged", merge_commit=commits.get(tips[s]),
                         overlaps=tuple(plan.subtask(s).record.overlaps or ()))
             for s in merged], heads={s: tips[s] for s in merged})
    if interrupted:
        await ctx.records.set_status(interrupted, Status.PENDING)


async def _merge_commits(ctx: MergeContext, base: str) -> dict[str, str]:
    """Branch head -> the merge commit that brought it into the integration branch (for a
    crash between moving the branch and recording the merge)."""
    since = [f"^{base}"] if base else []
    listing = await git(ctx.repo, "rev-list", "--merges", "--parents", ctx.integration_ref,
                        *since)
    return {parents[2]: parents[0] for line in listing.stdout.splitlines()
            if len(parents := line.split()) > 2}


def sandbox_mode(ctx: RunContext) -> str:
    """The sandbox the build's agents ran in: bwrap or none (what `auto` decided)."""
    return ctx.sandbox.mode


def _interrupted(plan: Plan) -> list[str]:
    """Subtasks that were running and had not committed their work."""
    return [s.id for s in plan.subtasks()
            if s.is_interrupted]


async def _return_interrupted(ctx: RunContext) -> None:
    await recover_rounds(ctx)
    if interrupted := _interrupted(await ctx.records.read()):
        await ctx.records.set_status(interrupted, Status.PENDING, error="interrupted")


async def _finish(ctx: RunContext, elapsed_s: float) -> int:
    plan = await ctx.records.read()
    stale = [] if ctx.settings.no_merge else await _stale_at_end(ctx, plan)
    counts = dict(status_counts(plan, {s.id for s in stale}))
    tip = await ctx.integration_tip()
    cost = plan.record.cost_usd
    steps = next_steps(ctx.spec.name, plan, {s.id for s in stale})
    facts = RunFacts(elapsed_s=elapsed_s, tip=tip, check_runs=ctx.checks.runs,
                     integration_branch=str(plan.record.integration_branch),
                     resolution_rounds=ctx.resolution_rounds,
                     sandbox=sandbox_text(plan) or sandbox_mode(ctx),
                     check_timeout_s=ctx.settings.check_limit_s, setbacks=ctx.setbacks)
    lines = subtask_lines(ctx.spec.name, plan, ctx.spec.logs, {s.id for s in stale}, facts)
    ctx.emit(EventKind.BUILD_FINISHED, headline(counts, facts, cost), counts=counts,
             integration_head=tip, plan_writes=ctx.records.store.writes, cost_usd=cost,
             elapsed_s=round(elapsed_s, 3), next=steps, subtasks=lines,
             check_runs=facts.check_runs, resolution_rounds=facts.resolution_rounds,
             sandbox=sandbox_mode(ctx), ran_without_sandbox=without_sandbox(plan),
             detail=[*lines, *steps, integration_line(facts)])
    if ctx.budget.reached() and counts.get(Status.PENDING):
        ctx.emit(EventKind.BUDGET_REACHED, f"stopped: {ctx.budget.message()}; "
                 f"{counts[Status.PENDING]} subtask(s) left pending", spent_usd=ctx.budget.spent,
                 budget_usd=ctx.budget.limit)
        return 1
    if ctx.settings.no_merge:
        return 0 if ctx.agents_failed == 0 else 1
    if failure := base_failure_error(ctx):
        raise failure
    if ctx.settings.only:  # exit 0 when the subtasks named are done
        stale_ids = {s.id for s in stale}
        return 0 if all(s.status == Status.COMPLETED and s.id not in stale_ids
                        for s in plan.subtasks() if selected(ctx.settings.only, s)) else 1
    return 0 if set(counts) <= {Status.COMPLETED} else 1


async def _stale_at_end(ctx: RunContext, plan: Plan) -> list[Subtask]:
    """Exit 0 promises every subtask's work is in the integration branch (SPEC 6): work lost
    because the branch was moved during the build is counted as stale."""
    stale = await find_stale(ctx, plan)
    for subtask in stale:
        ctx.emit(EventKind.SUBTASK_STALE, f"warning: completed but its work is not in "
                 f"{plan.record.integration_branch} (the branch was moved during the "
                 "build); the next build merges it again", subtask=subtask.id)
    return stale


async def _merge_main(spec: Spec, settings: Settings, target: Target, plan: Plan, *,
                      open_sink: OpenSink, sandbox: SandboxPolicy) -> int:
    sink = open_sink(plan)
    try:
        async with open_egress(sandbox.needs_proxy) as egress, \
                trio.open_nursery() as background:
            ctx = MergeContext(spec=spec, settings=settings, sandbox=sandbox, egress=egress,
                               records=Transitions(PlanStore(spec.folder)), sink=sink,
                               worktrees=Worktrees(spec.repo, spec.name, settings.reuse_worktrees,
                                                   workspace=settings.workspace),
                               background=background,
                               limiter=trio.CapacityLimiter(settings.max_parallel))
            await _recover(ctx)
            return await _merge_waiting(ctx)
    finally:
        sink.close()


async def _merge_waiting(ctx: MergeContext) -> int:
    plan = await ctx.records.read()
    results = []
    failed_before = {s.id for s in plan.subtasks() if s.status == Status.FAILED}
    for phase in plan.phases:
        waiting = [s for s in phase.subtasks if s.is_committed_unmerged]
        if phase.parallel_safe:
            merged = [s for s in phase.subtasks if s.merged_with_changes]
            results += await merge_subtasks(ctx, waiting, phase.key, merged_siblings=merged)
        else:
            results += await merge_subtasks(ctx, waiting, None)
    if failure := base_failure_error(ctx):
        raise failure
    after = await ctx.records.read()
    steps = next_steps(ctx.spec.name, after)
    failed = [s.id for s in after.subtasks()  # e.g. a branch moved outside orchestrate
              if s.status == Status.FAILED and s.id not in failed_before]
    if not results:
        ctx.emit(EventKind.MERGE_FINISHED, "nothing to merge", next=steps, detail=steps)
        return 1 if failed else 0
    conflicts = [r.subtask_id for r in results if r.outcome == words.CONFLICT]
    ctx.emit(EventKind.MERGE_FINISHED, f"merged {len(results) - len(conflicts)}, "
             f"conflicts {len(conflicts)}" + (f", failed {len(failed)}" if failed else ""),
             conflicts=conflicts, failed=failed, next=steps, detail=steps)
    return 1 if conflicts or failed else 0
