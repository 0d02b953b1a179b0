"""What the merge stage shares with everything that integrates: the spec, settings, the plan's
records, the sink, worktrees, the capacity limiter, ports, and the names of the branches. A build
adds its agent and placement to it (build/context.py)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator import names
from orchestrator.door.egress import EgressProxy
from orchestrator.door.processes import git_out, resolve, verify
from orchestrator.door.sandbox_policy import SandboxPolicy, no_sandbox
from orchestrator.errors import RunFailed
from orchestrator.events import Event, EventKind, Sink
from orchestrator.plan.specs import Spec
from orchestrator.plan.transitions import Transitions
from orchestrator.settings import Settings
from orchestrator.stage.verdicts import CheckState
from orchestrator.workspace.worktrees import Worktrees


def integration_branch(spec: Spec) -> str:
    return names.integration_branch(spec.name)


def subtask_branch(spec: Spec, subtask_id: str) -> str:
    return names.subtask_branch(spec.name, subtask_id)


class Ports:
    """A TCP port per running subtask, distinct from every other running subtask's."""

    def __init__(self) -> None:
        self.in_use: set[int] = set()

    def take(self) -> int:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
            if port not in self.in_use:
                self.in_use.add(port)
                return port

    def release(self, port: int) -> None:
        self.in_use.discard(port)


@dataclass(kw_only=True)
class MergeContext:
    """Enough to integrate branches and record the results (`orchestrate merge`)."""

    spec: Spec
    settings: Settings
    records: Transitions
    sink: Sink
    worktrees: Worktrees
    background: trio.Nursery  # for work off the critical path, e.g. parking worktrees
    merge_lock: trio.Lock = field(default_factory=trio.Lock)
    # a check run holds one slot (SPEC 9); `orchestrate merge` gives one of max_parallel
    limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))
    ports: Ports = field(default_factory=Ports)
    checks: CheckState = field(default_factory=CheckState)
    # the integration branch's commit as orchestrate last left it (None: not looked at yet)
    known_tip: str | None = None
    sandbox: SandboxPolicy = field(default_factory=no_sandbox)  # decided once per build
    egress: EgressProxy | None = None  # the build's proxy (sandbox network `allow`)
    # subtask -> why a merge of it failed in this run (ejected by the check, a conflict), for
    # the summary of a subtask completed after a resolution round
    setbacks: dict[str, str] = field(default_factory=dict)
    # subtask -> the head this run committed for it: until merged, its branch stays exactly
    # there (a commit added on top meanwhile is an agent's, not a fix by hand)
    heads_made: dict[str, str] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.spec.repo

    @property
    def integration_ref(self) -> str:
        return names.integration_ref(self.spec.name)

    def branch_for(self, subtask_id: str) -> str:
        return subtask_branch(self.spec, subtask_id)

    @property
    def resolves_conflicts(self) -> bool:
        """Whether conflicts go back to an agent (SPEC 10), which then owns their worktrees;
        `orchestrate merge` runs no agent."""
        return False

    async def note_integration_tip(self) -> None:
        """Take the integration branch's commit as orchestrate's own (after moving it)."""
        self.known_tip = await resolve(self.repo, self.integration_ref)

    async def confirm_integration_tip(self) -> None:
        """Refuse to merge onto an integration branch that moved (or vanished) outside
        orchestrate during the run: commits it did not make are never adopted silently."""
        found = await resolve(self.repo, self.integration_ref)
        if self.known_tip is None:
            self.known_tip = found
        if found is None:
            raise RunFailed(
                f"the integration branch {integration_branch(self.spec)} was deleted outside "
                f"orchestrate during the run (it was at {self.known_tip or 'an unknown commit'})",
                "Nothing was merged onto it. Restore it (`git branch "
                f"{integration_branch(self.spec)} {self.known_tip or '<commit>'}`) and run "
                f"`orchestrate merge {self.spec.name}`.")
        if found != self.known_tip:
            raise RunFailed(
                f"the integration branch {integration_branch(self.spec)} moved outside "
                f"orchestrate during the run ({self.known_tip} -> {found})",
                "Nothing was merged onto it. Check the commits it gained; if they are wanted, "
                f"run `orchestrate merge {self.spec.name}` to continue from there, else reset "
                f"the branch to {self.known_tip}.")

    async def integration_tip(self) -> str:
        return await verify(self.repo, self.integration_ref)

    async def subtask_tips(self, *, merged_only: bool = False) -> dict[str, str]:
        """Subtask id -> branch tip for this spec's branches (one git call for all), or only
        those already contained in the integration branch."""
        prefix = names.spec_ref_prefix(self.spec.name)
        merged = [f"--merged={self.integration_ref}"] if merged_only else []
        listing = await git_out(self.repo, "for-each-ref", *merged,
                                "--format=%(objectname) %(refname)", prefix)
        tips = {}
        for line in listing.splitlines():
            sha, _, ref = line.partition(" ")
            tips[ref.removeprefix(prefix)] = sha
        return tips

    def emit(self, kind: EventKind, message: str, *, subtask: str | None = None,
             phase: str | None = None, **data: object) -> None:
        self.sink.emit(Event(kind, message, subtask, phase, dict(data)))
