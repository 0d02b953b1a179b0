"""One judgement of the check on one commit (SPEC 9): a detached worktree from the pool, the
`copy` files and `setup` commands, then the check through the shell in its own process group,
holding one slot of the build's CapacityLimiter, rerun `check_retries` times after a failure.
Everything goes to `<spec>/logs/check-<12-hex commit>.log`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from merge import child_env
from orchestrator import names
from orchestrator.door.sandbox import Confinement
from orchestrator.events import Event, EventKind
from orchestrator.failpoints import failpoint
from orchestrator.plan.store import utc_now
from orchestrator.stage.verdicts import Verdict, ending
from orchestrator.workspace.attempt import run_logged
from orchestrator.workspace.worktrees import copy_untracked

if TYPE_CHECKING:
    from orchestrator.stage.merge_context import MergeContext

OUTPUT_LINES = 50
TIMED_OUT = 124  # the exit code recorded for a run stopped by check_timeout, as timeout(1)


def check_log(ctx: MergeContext, commit: str) -> Path:
    return names.check_log(ctx.spec.logs, commit)


async def run_check(ctx: MergeContext, command: str, commit: str, tree: str, *,
                    retries: int, failed: Verdict | None = None) -> Verdict:
    """Check `commit`: pass on the first run that exits 0, rerunning a failure `retries`
    times (flaky if one failed before). With `failed`, an earlier failure taken at its word,
    only the reruns happen: they confirm it or revise it to a (flaky) pass."""
    log = check_log(ctx, commit)
    await trio.Path(log.parent).mkdir(parents=True, exist_ok=True)
    label = ctx.checks.label(commit)
    row = f"check {ctx.checks.begin(commit)}: {label}"  # check 3/5: s01..s12 on the ...
    ctx.emit(EventKind.CHECK_STARTED, f"{row} ({commit[:12]})"
             + (" again: it would name a culprit" if failed else ""), command=command,
             commit=commit, tree=tree, log=str(log), holds=label,
             display=row, display_key=f"check {commit}")
    attempts = retries if failed else 1 + retries
    async with ctx.worktrees.hold_detached(names.check_worktree_name(commit), commit) as worktree, \
            ctx.limiter:
        setup, output = await _setup(ctx, worktree, log)
        code, runs = setup, 0
        while setup == 0 and runs < attempts and (runs == 0 or code != 0):
            runs += 1
            code, output = await _one_run(ctx, command, commit, worktree, log, runs)
    if failed and runs == 0:  # nothing to rerun: the failure stands
        code, output = failed.exit_code or 1, failed.output
    passed = code == 0
    verdict = Verdict(commit, tree, passed, exit_code=code, log=str(log),
                      output="" if passed else output,
                      flaky=passed and (runs > 1 or failed is not None), runs=runs,
                      confirmed=passed or retries >= ctx.settings.check_retries)
    _announce(ctx, verdict, runs)
    return verdict


async def _setup(ctx: MergeContext, worktree: Path, log: Path) -> tuple[int, str]:
    """Copy the `copy` files in and run `setup`; (0, "") or the failing setup's exit code
    and output."""
    await copy_untracked(ctx.repo, worktree, ctx.settings.copy)
    for command in ctx.settings.setup:
        code, tail = await _shell(command, worktree, log, ctx.settings.timeout, child_env(),
                                  ctx.sandbox.setup(worktree))
        if code != 0:
            return code, f"setup command `{command}` failed ({code}):\n{tail}"
    return 0, ""


async def _one_run(ctx: MergeContext, command: str, commit: str, worktree: Path, log: Path,
                   run: int) -> tuple[int, str]:
    ctx.checks.runs += 1
    if run > 1:  # a rerun of a failure is a check run of its own
        ctx.checks.started += 1
    port = ctx.ports.take()
    ctx.checks.running_now += 1
    env = child_env({"ORCHESTRATE_CHECK_COMMIT": commit, "ORCHESTRATE_SPEC": ctx.spec.name,
                     "ORCHESTRATE_PORT": str(port), "ORCHESTRATE_WORKTREE": str(worktree)})
    try:
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"\n===== {utc_now()} check run {run} on {commit} =====\n")
        failpoint("check-started")
        if ctx.checks.beside_rest and ctx.checks.running_now > 1:
            failpoint("check-rest-started")
        async with ctx.sandbox.private_home() as home, \
                check_gate(ctx, log) as proxy_socket:
            confinement = ctx.sandbox.check(worktree, home, proxy_socket)
            return await _shell(command, worktree, log, ctx.settings.check_limit_s, env,
                                confinement)
    finally:
        ctx.checks.running_now -= 1
        ctx.ports.release(port)


@asynccontextmanager
async def check_gate(ctx: MergeContext, log: Path) -> AsyncIterator[Path | None]:
    """The egress proxy's socket for a check run with check_network `allow`."""
    if ctx.egress is None or not ctx.sandbox.active or ctx.sandbox.check_network != "allow":
        yield None
        return
    async with ctx.egress.gate("check", ctx.sandbox.check_allow, log) as gate:
        yield gate.socket_path


async def _shell(command: str, cwd: Path, log: Path, limit_s: float,
                 env: Mapping[str, str], confinement: Confinement | None) -> tuple[int, str]:
    """Run `command` with its output appended to `log`; its exit code and last lines."""
    code, start = await run_logged(command, cwd, log, limit_s, env, timed_out=TIMED_OUT,
                                   timeout_note=f"stopped after {limit_s:g} s (check_timeout)",
                                   confinement=confinement)
    return code, _last_lines(log, start)


def _last_lines(log: Path, start: int) -> str:
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-OUTPUT_LINES:])


def _announce(ctx: MergeContext, verdict: Verdict, runs: int) -> None:
    where = f"{ctx.checks.label(verdict.commit)} ({verdict.commit[:12]})"
    data: dict[str, object] = {"commit": verdict.commit, "tree": verdict.tree,
                               "log": verdict.log, "runs": runs, "holds": where,
                               "exit_code": verdict.exit_code, "display": "",
                               "display_key": f"check {verdict.commit}"}
    if verdict.flaky:
        kind, text = EventKind.CHECK_FLAKY, (f"check passed on run {runs} after failing "
                                             f"(flaky): {where}; log: {verdict.log}")
    elif verdict.passed:
        kind, text = EventKind.CHECK_PASSED, f"check passed: {where}"
    else:
        kind = EventKind.CHECK_FAILED
        text = (f"check failed: {where}, {ending(verdict, ctx.settings.check_limit_s)}, "
                f"{runs} run(s); log: {verdict.log}")
        data["detail"] = failure_excerpt(verdict.output)
    ctx.sink.emit(Event(kind, text, None, None, data))


EXCERPT_LINES = 6


def failure_excerpt(output: str) -> list[str]:
    """The last lines of a failing check's output, shown under its event line."""
    lines = [line for line in output.splitlines()
             if line.strip() and not line.startswith(("$ ", "===== "))]
    return lines[-EXCERPT_LINES:]
