"""An in-process agent that speaks the real Agent protocol, for fast tests of the scheduler and
the runner: real git, a real plan file, the real `run_build`, and no spawned CLI or agent
process. Each attempt follows a script (per subtask id, one step per attempt) and is recorded:
when it started and ended, its prompt, and how many attempts were running at that instant."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import trio

from orchestrator import names
from orchestrator.agents.base import AgentResult, AgentTask
from orchestrator.build.run import run_build
from orchestrator.face.progress import sink_for
from orchestrator.plan.model import Subtask
from orchestrator.plan.specs import resolve_spec
from orchestrator.settings import load_settings
from orchestrator.workspace.attempt import run_attempt
from orchestrator.workspace.commit import commit_work
from orchestrator.workspace.placement import Placement, Workshop

Step = Literal["write", "fail"]
GATE_S = 20.0


@dataclass(frozen=True)
class Attempt:
    subtask_id: str
    number: int
    prompt: str
    started: float
    ended: float
    running: int  # attempts running when this one started, itself included


@dataclass
class FakeAgent:
    """Writes `<subtask id>.txt` in its worktree (step "write") or fails with a message that
    names the subtask and the attempt (step "fail"); a subtask without a script writes."""

    script: Mapping[str, Sequence[Step]] = field(default_factory=dict)
    work_s: float = 0.05  # how long an attempt takes, so that parallel ones overlap
    # attempts wait (up to GATE_S) until this many run at once, so that a loaded machine
    # preparing worktrees slowly still shows whether the limit is reached
    together: int = 0
    name: str = "fake"
    attempts: list[Attempt] = field(default_factory=list)
    running: int = 0
    peak: int = 0
    _gate: trio.Event = field(default_factory=trio.Event)

    async def run(self, task: AgentTask) -> AgentResult:
        self.running += 1
        self.peak = max(self.peak, self.running)
        running, started = self.running, time.monotonic()
        if self.running >= self.together:
            self._gate.set()
        try:
            with trio.move_on_after(GATE_S):
                await self._gate.wait()
            await trio.sleep(self.work_s)
            step = self._step(task)
            if step == "write":
                await trio.Path(task.worktree / f"{task.subtask_id}.txt").write_text(
                    f"{task.subtask_id} attempt {task.attempt}\n")
                return AgentResult(ok=True, output_tail="wrote it")
            return AgentResult(ok=False, error=f"{task.subtask_id} broke on attempt "
                               f"{task.attempt}", output_tail="traceback: it broke")
        finally:
            self.running -= 1
            self.attempts.append(Attempt(task.subtask_id, task.attempt, task.prompt, started,
                                         time.monotonic(), running))

    def _step(self, task: AgentTask) -> Step:
        steps = self.script.get(task.subtask_id, ())
        return steps[task.attempt - 1] if task.attempt <= len(steps) else "write"

    def of(self, subtask_id: str) -> list[Attempt]:
        return [a for a in self.attempts if a.subtask_id == subtask_id]


class FakePlacement:
    """A placement that is not the user's repository: each subtask works in its own clone
    under `root` (as a Ray worker would, without Ray), and its commit is fetched back onto the
    local subtask branch. Every call is recorded, so tests see how the driver uses the seam."""

    name = "fake"
    reads_workspaces = True  # its clones are on this machine: the conflict radar reads them

    def __init__(self, shop: Workshop, root: Path) -> None:
        self.shop, self.root = shop, root
        self.settings, self.agent = shop.settings, shop.agent  # an attempt.AttemptContext
        self.sandbox, self.egress = shop.sandbox, shop.egress
        self.calls: list[tuple[str, str]] = []

    def workspace(self, subtask: Subtask, base: str) -> AbstractAsyncContextManager[Path]:
        return self._clone(subtask, base)

    @asynccontextmanager
    async def _clone(self, subtask: Subtask, base: str) -> AsyncIterator[Path]:
        self.calls.append(("workspace", subtask.id))
        clone = self.root / subtask.id
        await run_git_async(self.root, "clone", "--quiet", "--shared", "--no-checkout",
                            str(self.shop.spec.repo), str(clone))
        await run_git_async(clone, "checkout", "--quiet", "-B", self.shop.branch_for(subtask),
                            base)
        yield clone

    async def set_up(self, subtask: Subtask, workspace: Path) -> None:
        self.calls.append(("set_up", subtask.id))

    async def attempt(self, subtask: Subtask, task: AgentTask) -> AgentResult:
        self.calls.append(("attempt", subtask.id))
        return await run_attempt(self, subtask, task)

    async def after_failed_attempt(self, task: AgentTask) -> None:
        self.calls.append(("after_failed_attempt", task.subtask_id))
        await run_git_async(task.worktree, "reset", "--hard", "--quiet")

    async def hand_back(self, subtask: Subtask, workspace: Path) -> str:
        self.calls.append(("hand_back", subtask.id))
        head = await commit_work(workspace, self.shop.commit_message(subtask), ())
        branch = self.shop.branch_for(subtask)
        await run_git_async(self.shop.spec.repo, "fetch", "--quiet", str(workspace),
                            f"+refs/heads/{branch}:refs/heads/{branch}")
        return head

    async def release(self, subtask: Subtask) -> None:
        self.calls.append(("release", subtask.id))


async def run_git_async(cwd: Path, *args: str) -> None:
    await trio.run_process(["git", *args], cwd=cwd, stdout=subprocess.DEVNULL)


def build_in_process(repo: Path, spec: str, agent: FakeAgent, *,
                     placement: Callable[[Workshop], FakePlacement] | None = None,
                     **options: object) -> int:
    """`orchestrate build SPEC` with `options` as its command-line options, run in this
    process with `agent` (and `placement`, when given); its exit code."""
    found = resolve_spec(repo, spec)
    settings = load_settings(repo, {"agent_command": "unused-in-process", "resolve": "manual",
                                    **options})

    @asynccontextmanager
    async def opened(shop: Workshop) -> AsyncIterator[Placement]:
        assert placement is not None
        yield placement(shop)

    return run_build(found, settings, agent=agent, placement=opened if placement else None,
                     open_sink=partial(sink_for, as_json=settings.json,
                                       events=names.events_log(found.logs)))
