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
    ctx.emit(EventKind.CHECK_CACHED, f"check: {ctx.checks.label(commit)} ({commit[:12]}) "
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
    rate = await culprit_history(ctx)
    chain = _Growing(start, list(candidates), overlaps, policy)
    while chain.candidates:
        search = _Search(chain)
        while True:
            found = await _search(ctx, search, rate + gated.rate)
            if found is None:
                gated.results += chain.results
                gated.tip = chain.tip
                gated.rate += CulpritRate(0, len(chain.merged))
                return gated
            position, failing = found
            culprit = chain.merged[position]
            rest = chain.rest_after(culprit)
            if not failing.confirmed:  # its rerun decides; the rest's first check meanwhile
                ahead = rate + gated.rate + CulpritRate(1, position + 1)
                failing = await _confirm_with_rest(ctx, chain.tips[culprit], rest, ahead)
                search.known[position] = failing
                if failing.passed:  # a flaky failure: the search goes on
                    continue
            break
        failpoint("check-culprit-found")
        gated.results += [*chain.results[:culprit], _ejected(chain.results[culprit], failing)]
        gated.culprits[chain.candidates[culprit].subtask_id] = failing
        gated.rate += CulpritRate(1, position + 1)
        gated.tip = rest.start
        _announce_culprit(ctx, chain.candidates[culprit].subtask_id, failing,
                          len(rest.candidates))
        chain = rest
    return gated


GROWTH = 8  # merges computed at least at a time when a search needs more of its chain


@dataclass
class _Growing:
    """A batch's chain of merge commits (merge.merge_chain), computed only as far as its
    search has needed: after a culprit the rest is merged again, and re-merging all of it
    each time would cost more than the checks when culprits are common."""

    start: str
    candidates: list[Candidate]
    overlaps: list[Overlap]
    policy: OverlapPolicy
    integrated: dict[str, str] = field(default_factory=dict)  # in `start` (--overlap block)
    before: list[str] = field(default_factory=list)  # subtasks merged in `start`, for lines
    seen: list[str] = field(default_factory=list)  # every subtask judged before `start`
    results: list[MergeResult] = field(default_factory=list)
    tips: list[str] = field(default_factory=list)  # tips[i]: the chain once candidate i is in

    @property
    def merged(self) -> list[int]:
        """Indices of the candidates merged so far: the search's positions."""
        return [i for i, r in enumerate(self.results) if r.outcome == words.MERGED]

    @property
    def pending(self) -> int:
        return len(self.candidates) - len(self.results)

    @property
    def tip(self) -> str:
        return self.tips[-1] if self.tips else self.start

    def done(self, upto: int) -> dict[str, str]:
        """Subtask id -> head of what the chain holds before candidate `upto`."""
        return {**self.integrated, **{c.subtask_id: c.head for c, r in
                                      zip(self.candidates[:upto], self.results[:upto], strict=True)
                                      if r.outcome != words.CONFLICT}}

    async def grow(self, ctx: MergeContext, positions: int) -> None:
        """Merge more candidates until the chain has `positions` merged commits (or all)."""
        while self.pending and len(self.merged) < positions:
            count = max(GROWTH, positions - len(self.merged))
            more = self.candidates[len(self.results):len(self.results) + count]
            chain = await trio.to_thread.run_sync(partial(
                merge_chain, ctx.repo, self.tip, more, overlaps=self.overlaps,
                overlap=self.policy, integrated=self.done(len(self.results))))
            first = len(self.results)
            self.results += chain.results
            self.tips += chain.tips
            _name_commits(ctx, self.before, self.candidates, self.tips,
                          [i for i in self.merged if i >= first],
                          [self.candidates[i].subtask_id for i in self.merged if i < first],
                          [*self.seen, *(c.subtask_id for c in self.candidates)])

    def rest_after(self, culprit: int) -> _Growing:
        """The candidates after `culprit`, to be merged again onto the commit before it."""
        return _Growing(self.tips[culprit - 1] if culprit else self.start,
                        self.candidates[culprit + 1:], self.overlaps, self.policy,
                        self.done(culprit),
                        [*self.before, *(self.candidates[i].subtask_id for i in self.merged
                                         if i < culprit)],
                        [*self.seen, *(c.subtask_id for c in self.candidates[:culprit + 1])])


async def _confirm_with_rest(ctx: MergeContext, commit: str, rest: _Growing,
                             rate: CulpritRate) -> Verdict:
    """The rerun that would name a culprit (the failure at `commit`), and at the same time,
    on free slots, the first check of the branches after it merged again without it (`rest`,
    the next batch's search): its verdict is cached by tree, so the next search finds it
    there when the failure is confirmed; a flaky failure only wasted that run."""
    step = await _next_step(ctx, _Search(rest), rate) if rest.candidates else Step()
    confirmed: list[Verdict] = []
    ctx.checks.beside_rest = True  # check_runs' failpoint `check-rest-started`
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_confirm, ctx, commit, confirmed)
            ahead = {point: rest.tips[rest.merged[point]] for point in step.probes}
            ctx.checks.expect(ahead.values())
            for point, tip in ahead.items():
                nursery.start_soon(_probe, ctx, tip, point, {}, True)
    finally:
        ctx.checks.beside_rest = False
    return confirmed[0]


async def _confirm(ctx: MergeContext, commit: str, into: list[Verdict]) -> None:
    into.append(await judge(ctx, commit))


def _name_commits(ctx: MergeContext, before: list[str], candidates: Sequence[Candidate],
                  tips: Sequence[str], merged: list[int], earlier: Sequence[str],
                  order: Sequence[str]) -> None:
    """Remember which subtasks each commit of the chain holds (after `before`, the subtasks
    already on the passing prefix, and `earlier`, those merged in the chain before `merged`),
    for check and bisect lines; `order`: every subtask of the stage so far, in plan order, so
    that a range names those it leaves out."""
    ids = [*before, *earlier, *(candidates[i].subtask_id for i in merged)]
    offset = len(before) + len(earlier)
    for n, i in enumerate(merged):
        ctx.checks.holds.setdefault(tips[i], holding(ids[:offset + n + 1], order))


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
    """One chain's search: the verdicts known so far by position (the chain's merged commits
    in plan order; the commit before them passes), and the failing positions whose stretch is
    being bisected (announced once)."""

    chain: _Growing
    known: dict[int, Verdict] = field(default_factory=dict)
    bisected: set[int] = field(default_factory=set)

    def tip(self, position: int) -> str:
        return self.chain.tips[self.chain.merged[position]]


async def _next_step(ctx: MergeContext, search: _Search, rate: CulpritRate) -> Step:
    """next_step over the chain, merged as far as the step's probes need: until all of it is
    merged, its length counts the candidates still to merge as if they merged cleanly."""
    chain = search.chain
    while True:
        last = len(chain.merged) - 1 + chain.pending
        step = next_step({p: v.passed for p, v in search.known.items()}, last, rate,
                         free=int(ctx.limiter.available_tokens))
        needed = max(step.probes, default=-1) + 1
        if step.culprit is not None or not chain.pending or needed <= len(chain.merged):
            return step
        await chain.grow(ctx, needed)


async def _search(ctx: MergeContext, search: _Search,
                  rate: CulpritRate) -> tuple[int, Verdict] | None:
    """The position in the chain of the first failing commit whose predecessor passes, and
    its verdict (unconfirmed when a probe's failure was taken at its word: its rerun is the
    caller's); None when the last one passes. Batches of `rate.batch_size` branches are
    checked while no failure is known (their failures rerun); a failing stretch is bisected,
    each round probing as many points as there are free slots while the total stays within
    ceil(log2 n) probes."""
    known = search.known
    while True:
        step = await _next_step(ctx, search, rate)
        if step.culprit is not None:
            return step.culprit, known[step.culprit]
        if not step.probes:
            return None
        if step.failing is not None:
            _announce_round(ctx, step, known[step.failing], search)
        ctx.checks.expect(search.tip(p) for p in step.probes)
        async with trio.open_nursery() as nursery:
            for point in step.probes:
                nursery.start_soon(_probe, ctx, search.tip(point), point, known,
                                   step.failing is None)
            if len(step.probes) > 1:
                failpoint("check-round-started")


def _announce_round(ctx: MergeContext, step: Step, failing: Verdict, search: _Search) -> None:
    assert step.failing is not None
    suspects = step.failing - step.passing
    if step.failing not in search.bisected:
        search.bisected.add(step.failing)
        last = search.chain.candidates[search.chain.merged[step.failing]].subtask_id
        ctx.emit(EventKind.BISECT_STARTED, f"the check fails on "
                 f"{ctx.checks.label(failing.commit)} ({failing.commit[:12]}); bisecting "
                 f"{suspects} branches", commit=failing.commit, branches=suspects,
                 last=last, display=f"bisecting {suspects} branches",
                 display_key="bisect")
    named = "; ".join(ctx.checks.label(search.tip(p)) for p in step.probes)
    ctx.emit(EventKind.BISECT_ROUND, f"bisect: {suspects} suspects; checking {named}",
             probes=[search.tip(p) for p in step.probes], display=f"bisect: checking {named}",
             display_key="bisect")


async def _probe(ctx: MergeContext, commit: str, point: int, into: dict[int, Verdict],
                 decisive: bool) -> None:
    try:
        into[point] = await judge(ctx, commit, decisive=decisive)
    finally:
        ctx.checks.waiting.discard(commit)  # judged without a run (known, cached)
