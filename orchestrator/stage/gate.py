"""The gate of the merge stage (SPEC 9): the integration branch only moves to a commit on which
the configured check passed.

A batch's chain of merge commits is computed without moving the branch (merge.integrate); the
check runs on its last commit. When it fails, the batch is bisected by prefixes in plan order:
the first failing prefix whose predecessor passes names the culprit (its last branch), which is
left out; the branches after it are merged again onto the passing prefix and the rest is
checked, until what is left passes. Then one compare-and-swap moves the branch.

Verdicts are by tree id: cached in the plan (`orchestrate.checks`), shared by the probes of one
run while they are under way, so no tree is ever checked twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

import trio

from merge import (
    CAS_RETRIES,
    Candidate,
    Chain,
    IntegrationRace,
    MergeResult,
    Overlap,
    OverlapPolicy,
    group_overlaps,
    merge_chain,
    move_ref,
    rev_parse,
    words,
)
from orchestrator.door.processes import verify
from orchestrator.errors import OrchestrateError
from orchestrator.events import EventKind
from orchestrator.failpoints import failpoint
from orchestrator.plan.model import Status
from orchestrator.stage.batching import CulpritRate, Step, next_step
from orchestrator.stage.check_runs import run_check
from orchestrator.stage.verdicts import Verdict, ending, holding

if TYPE_CHECKING:
    from orchestrator.stage.merge_context import MergeContext


class CheckFailsOnBase(OrchestrateError):
    """The check fails where merging would start: nothing can be merged (exit 1)."""

    exit_code = 1


@dataclass
class Gated:
    """What the gated merge stage did: every candidate's result, the culprits' failing
    verdicts, and where the integration branch now points."""

    results: list[MergeResult]
    culprits: dict[str, Verdict] = field(default_factory=dict)
    tip: str = ""
    rate: CulpritRate = field(default_factory=CulpritRate)  # branches judged, culprits


async def judge(ctx: MergeContext, commit: str, *, decisive: bool = True,
                base: bool = False) -> Verdict:
    """The check's verdict on `commit`: this run's, the plan's cache, or a new check run.
    A `decisive` judgement reruns a failure `check_retries` times (also one taken at its
    word before); otherwise a failure stands unconfirmed. A `base` judgement run now counts
    as one run of a sequential gate too."""
    command = ctx.settings.check
    assert command is not None
    tree = await verify(ctx.repo, f"{commit}^{{tree}}")
    state = ctx.checks
    while tree in state.running:
        await state.running[tree].wait()
    known = state.verdicts.get(tree)
    if known is not None and (known.passed or known.confirmed or not decisive):
        return known
    state.running[tree] = done = trio.Event()
    try:
        verdict = known or await _cached(ctx, command, commit, tree)
        retries = ctx.settings.check_retries if decisive else 0
        if verdict is None:
            verdict = await run_check(ctx, command, commit, tree, retries=retries)
            await _remember(ctx, command, verdict, sequential=int(base))
        elif decisive and not verdict.passed and not verdict.confirmed:
            verdict = await run_check(ctx, command, verdict.commit, tree, retries=retries,
                                      failed=verdict)
            await _remember(ctx, command, verdict)
        state.verdicts[tree] = verdict
        return verdict
    finally:
        del state.running[tree]
        done.set()


async def _cached(ctx: MergeContext, command: str, commit: str, tree: str) -> Verdict | None:
    record = (await ctx.records.read()).record
    checks = record.checks
    if record.check_command != command or tree not in checks:
        return None
    if (await ctx.records.believed_verdicts(command)).get(tree) != checks[tree]:
        return None  # not a verdict orchestrate reached: run the check
    detail = record.check_details.get(tree)
    detail = detail if isinstance(detail, dict) else {}
    exit_code = detail.get("exit_code")
    verdict = Verdict(str(detail.get("commit") or commit), tree, checks[tree] == "pass",
                      exit_code=exit_code if isinstance(exit_code, int) else None,
                      log=str(detail.get("log") or ""), output=str(detail.get("output") or ""),
                      cached=True, confirmed=not detail.get("unconfirmed"))
    said = "passed" if verdict.passed else Status.FAILED
    ctx.emit(EventKind.CHECK_CACHED, f"check {verdict.commit[:12]}: "
             f"{said} before (tree {tree[:12]}), not rerun",
             commit=commit, tree=tree, passed=verdict.passed)
    return verdict


async def _remember(ctx: MergeContext, command: str, verdict: Verdict, *,
                    sequential: int = 0) -> None:
    detail = None if verdict.passed else {"commit": verdict.commit, "exit_code":
                                          verdict.exit_code, "log": verdict.log,
                                          "output": verdict.output}
    if detail is not None and not verdict.confirmed:
        detail["unconfirmed"] = True  # a probe's failure, taken at its word (SPEC 9)
    flaky = {"commit": verdict.commit, "tree": verdict.tree, "log": verdict.log} \
        if verdict.flaky else None
    await ctx.records.check_judged(command, verdict.tree, "pass" if verdict.passed else "fail",
                                   detail, flaky, runs=verdict.runs, sequential=sequential)
    failpoint("check-recorded")


async def check_base(ctx: MergeContext) -> Verdict:
    """The check on the integration branch's head (at build start, before any agent); a
    failure stops the run: no agent starts and nothing is merged."""
    tip = await ctx.integration_tip()
    ctx.checks.holds.setdefault(tip, "the integration branch's head")
    verdict = await judge(ctx, tip, base=True)
    if not verdict.passed:
        ctx.checks.base_failure = verdict
        ctx.emit(EventKind.CHECK_BASE_FAILED, base_failure_message(ctx, verdict),
                 commit=verdict.commit, log=verdict.log, exit_code=verdict.exit_code)
    return verdict


def base_failure_message(ctx: MergeContext, verdict: Verdict) -> str:
    branch = ctx.integration_ref.removeprefix("refs/heads/")
    return f"check fails on {branch} at {verdict.commit[:12]}; log: {verdict.log}"


BASE_FAILURE_LINES = 12


def base_failure_error(ctx: MergeContext) -> CheckFailsOnBase | None:
    """The error a build or merge ends with when the check fails where merging would start:
    where, the check's last lines, the log, and what to do (rerunning alone fails again)."""
    verdict = ctx.checks.base_failure
    if verdict is None:
        return None
    branch = ctx.integration_ref.removeprefix("refs/heads/")
    lines = [line for line in verdict.output.splitlines() if line.strip()]
    shown = "".join(f"\n    {line}" for line in lines[-BASE_FAILURE_LINES:])
    return CheckFailsOnBase(
        f"check fails on {branch} at {verdict.commit[:12]} "
        f"({ending(verdict, ctx.settings.check_limit_s)}), before any subtask's work is "
        f"merged:{shown}\nlog: {verdict.log}",
        f"Nothing was merged (committed work waits). Make `{ctx.settings.check}` pass on "
        f"{branch} first (reproduce: git worktree add /tmp/check {verdict.commit[:12]}, then "
        f"run it there) or change the check (--check, `check` in orchestrate.toml); then run "
        f"`orchestrate build {ctx.spec.name}` again.")


async def integrate_checked(ctx: MergeContext, candidates: Sequence[Candidate],
                            policy: OverlapPolicy) -> Gated | None:
    """Merge `candidates` in order with the gate and move the integration branch (one
    compare-and-swap) to the last commit that passed; None, changing nothing, when the check
    fails where merging would start."""
    overlaps = await trio.to_thread.run_sync(group_overlaps, ctx.repo, candidates)
    for _ in range(CAS_RETRIES):
        start = await trio.to_thread.run_sync(rev_parse, ctx.repo, ctx.integration_ref)
        if not (verdict := await judge(ctx, start, base=True)).passed:
            ctx.checks.base_failure = verdict
            return None
        gated = await _green_chain(ctx, start, candidates, overlaps, policy)
        failpoint("check-green-chosen")
        if gated.tip == start or await trio.to_thread.run_sync(
                move_ref, ctx.repo, ctx.integration_ref, gated.tip, start,
                f"merge {len(candidates)} checked branches"):
            return gated
    raise IntegrationRace(f"{ctx.integration_ref} kept moving while merging "
                          f"{len(candidates)} branches; gave up after {CAS_RETRIES} attempts")


async def _green_chain(ctx: MergeContext, start: str, candidates: Sequence[Candidate],
                       overlaps: list[Overlap], policy: OverlapPolicy) -> Gated:
    """Results for every candidate and the last passing commit, culprits left out."""
    gated = Gated(results=[], tip=start)
    remaining = list(candidates)
    integrated: dict[str, str] = {}
    rate = await culprit_history(ctx)
    chain = await _chain(ctx, gated.tip, remaining, overlaps, policy, integrated)
    while remaining:
        merged = [i for i, r in enumerate(chain.results) if r.outcome == "merged"]
        tips = [chain.tips[i] for i in merged]
        _name_commits(ctx, _merged_ids(gated.results), remaining, chain.tips, merged)
        search = _Search(tips, [remaining[i].subtask_id for i in merged])
        while True:
            found = await _search(ctx, search, rate + gated.rate)
            if found is None:
                gated.results += chain.results
                gated.tip = chain.tip
                gated.rate += CulpritRate(0, len(merged))
                return gated
            position, failing = found
            culprit = merged[position]
            settled = list(chain.results[:culprit])
            now = {**integrated, **{remaining[i].subtask_id: remaining[i].head
                                    for i, r in enumerate(settled) if r.outcome != words.CONFLICT}}
            rest = await _chain(ctx, chain.tips[culprit - 1] if culprit else chain.start,
                                remaining[culprit + 1:], overlaps, policy, now)
            if not failing.confirmed:  # its rerun decides; the rest's first check meanwhile
                ahead = rate + gated.rate + CulpritRate(1, position + 1)
                failing = await _confirm_with_rest(
                    ctx, tips[position], rest, ahead,
                    [*_merged_ids(gated.results), *_merged_ids(settled)], remaining[culprit + 1:])
                search.known[position] = failing
                if failing.passed:  # a flaky failure: the search goes on
                    continue
            break
        failpoint("check-culprit-found")
        integrated = now
        gated.results += [*settled, _ejected(chain.results[culprit], failing)]
        gated.culprits[remaining[culprit].subtask_id] = failing
        gated.rate += CulpritRate(1, position + 1)
        gated.tip = rest.start
        _announce_culprit(ctx, remaining[culprit].subtask_id, failing, len(remaining) - culprit - 1)
        remaining = remaining[culprit + 1:]
        chain = rest
    return gated


async def _chain(ctx: MergeContext, start: str, candidates: Sequence[Candidate],
                 overlaps: list[Overlap], policy: OverlapPolicy,
                 integrated: dict[str, str]) -> Chain:
    return await trio.to_thread.run_sync(partial(
        merge_chain, ctx.repo, start, candidates, overlaps=overlaps, overlap=policy,
        integrated=integrated))


def _merged_ids(results: Sequence[MergeResult]) -> list[str]:
    return [r.subtask_id for r in results if r.outcome == words.MERGED]


async def _confirm_with_rest(ctx: MergeContext, commit: str, rest: Chain, rate: CulpritRate,
                             before: list[str], candidates: Sequence[Candidate]) -> Verdict:
    """The rerun that would name a culprit (the failure at `commit`), and at the same time,
    on free slots, the first check of the branches after it merged again without it (`rest`,
    the next batch's search): its verdict is cached by tree, so the next search finds it
    there when the failure is confirmed; a flaky failure only wasted that run."""
    merged = [i for i, r in enumerate(rest.results) if r.outcome == "merged"]
    step = next_step({}, len(merged) - 1, rate, free=int(ctx.limiter.available_tokens)) \
        if merged else Step()
    _name_commits(ctx, before, candidates, rest.tips, merged)
    confirmed: list[Verdict] = []
    ctx.checks.beside_rest = True  # check_runs' failpoint `check-rest-started`
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_confirm, ctx, commit, confirmed)
            for point in step.probes:
                nursery.start_soon(partial(judge, ctx, rest.tips[merged[point]]))
    finally:
        ctx.checks.beside_rest = False
    return confirmed[0]


async def _confirm(ctx: MergeContext, commit: str, into: list[Verdict]) -> None:
    into.append(await judge(ctx, commit))


def _name_commits(ctx: MergeContext, before: list[str], remaining: Sequence[Candidate],
                  tips: Sequence[str], merged: list[int]) -> None:
    """Remember which subtasks each commit of the chain holds (after `before`, the subtasks
    already on the passing prefix), for check and bisect lines."""
    ids = [*before, *(remaining[i].subtask_id for i in merged)]
    for n, i in enumerate(merged):
        ctx.checks.holds.setdefault(tips[i], holding(ids[:len(before) + n + 1]))


async def culprit_history(ctx: MergeContext) -> CulpritRate:
    """The culprits and judged branches of the spec's earlier merge stages (the plan's)."""
    return CulpritRate(*await ctx.records.gate_history())


def _ejected(result: MergeResult, verdict: Verdict) -> MergeResult:
    return replace(result, outcome=words.CONFLICT, merge_commit=None, conflicted_paths=(),
                   messages=(f"the check failed on {verdict.commit[:12]} "
                             f"(exit {verdict.exit_code})",), conflicts=())


def _announce_culprit(ctx: MergeContext, subtask_id: str, verdict: Verdict, rest: int) -> None:
    ctx.emit(EventKind.BISECT_CULPRIT, f"the check fails once this branch is merged "
             f"({ctx.checks.label(verdict.commit)}, {verdict.commit[:12]}); left out, {rest} "
             "later branch(es) merged again",
             subtask=subtask_id, commit=verdict.commit, log=verdict.log, remerged=rest,
             display="", display_key="bisect")


@dataclass
class _Search:
    """One chain's search: its commits after each merged branch (plan order; the commit
    before them passes), their subtasks, the verdicts known so far by position, and the
    failing positions whose stretch is being bisected (announced once)."""

    tips: list[str]
    ids: list[str]
    known: dict[int, Verdict] = field(default_factory=dict)
    bisected: set[int] = field(default_factory=set)


async def _search(ctx: MergeContext, search: _Search,
                  rate: CulpritRate) -> tuple[int, Verdict] | None:
    """The position in the chain of the first failing commit whose predecessor passes, and
    its verdict (unconfirmed when a probe's failure was taken at its word: its rerun is the
    caller's); None when the last one passes. Batches of `rate.batch_size` branches are
    checked while no failure is known (their failures rerun); a failing stretch is bisected,
    each round probing as many points as there are free slots while the total stays within
    ceil(log2 n) probes."""
    tips, known = search.tips, search.known
    while True:
        step = next_step({p: v.passed for p, v in known.items()}, len(tips) - 1, rate,
                         free=int(ctx.limiter.available_tokens))
        if step.culprit is not None:
            return step.culprit, known[step.culprit]
        if not step.probes:
            return None
        if step.failing is not None:
            _announce_round(ctx, step, known[step.failing], tips, search.ids, search.bisected)
        async with trio.open_nursery() as nursery:
            for point in step.probes:
                nursery.start_soon(_probe, ctx, tips[point], point, known,
                                   step.failing is None)
            if len(step.probes) > 1:
                failpoint("check-round-started")


def _announce_round(ctx: MergeContext, step: Step, failing: Verdict, tips: list[str],
                    ids: list[str], bisected: set[int]) -> None:
    assert step.failing is not None
    suspects = step.failing - step.passing
    if step.failing not in bisected:
        bisected.add(step.failing)
        ctx.emit(EventKind.BISECT_STARTED, f"the check fails on "
                 f"{ctx.checks.label(failing.commit)} ({failing.commit[:12]}); bisecting "
                 f"{suspects} branches", commit=failing.commit, branches=suspects,
                 last=ids[step.failing], display=f"bisecting {suspects} branches",
                 display_key="bisect")
    named = "; ".join(ctx.checks.label(tips[p]) for p in step.probes)
    ctx.emit(EventKind.BISECT_ROUND, f"bisect: {suspects} suspects; checking {named}",
             probes=[tips[p] for p in step.probes], display=f"bisect: checking {named}",
             display_key="bisect")


async def _probe(ctx: MergeContext, commit: str, point: int, into: dict[int, Verdict],
                 decisive: bool) -> None:
    into[point] = await judge(ctx, commit, decisive=decisive)
