"""One subtask attempt as it runs inside a Ray task on a worker node (SPEC 14).

The task gets everything as arguments (an AttemptOrder, and the coordinator's ANTHROPIC_*
variables as a separate argument that travels through Ray's object store, never through
`runtime_env`). It clones the remote into a scratch folder, checks out the base on the subtask
branch, writes the `copy` files it was given, runs `setup`, then the very code a local attempt
runs (workspace/attempt.py: the agent under --timeout, the branch checks, the verification) and
commit_work, pushes the branch and returns an AttemptReport. The scratch folder is removed.

This module does not import Ray: the Ray-specific wiring is in workspace/ray_placement.py.
ray.cancel() raises KeyboardInterrupt in the task's thread; trio turns it into cancellation,
so the agent's process group gets SIGTERM, its grace period, then SIGKILL, and nothing is
pushed. A ticker wakes trio's loop often, so that the interrupt is seen within a fraction of a
second instead of when the next child process exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import signal
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator import names
from orchestrator.agents import open_agent
from orchestrator.agents.base import Agent, AgentTask
from orchestrator.agents.command import read_tail
from orchestrator.door.egress import EgressProxy, open_egress
from orchestrator.door.processes import GitError, git
from orchestrator.door.sandbox_policy import SandboxPolicy, no_sandbox
from orchestrator.errors import UsageError
from orchestrator.plan.model import Subtask
from orchestrator.settings import Settings
from orchestrator.workspace import attempt
from orchestrator.workspace.attempt import AttemptFailed, command_env, run_setup
from orchestrator.workspace.commit import commit_work
from orchestrator.workspace.sandboxing import sandbox_policy
from orchestrator.workspace.worktrees import NEVER_KEPT, clear_index_flags

LOG_LIMIT = 1024 * 1024  # of the attempt's log, sent back to the coordinator's log
TICK_S = 0.1
CODE_FROM = str(Path(__file__).resolve().parent.parent)
CHECKOUT_WORKERS = 8
POOL_LIMIT = 8  # clones parked per remote on a node for the next attempts


@dataclass(frozen=True)
class AttemptOrder:
    spec: str
    subtask: Subtask
    settings: Settings
    fetch_url: str
    push_url: str
    integration_branch: str  # on the remote; contains `base`
    branch: str
    base: str
    prompt: str
    attempt: int
    message: str  # of the commit of the agent's work
    identity: tuple[str, str]  # the coordinator's committer name and email
    copies: tuple[tuple[str, bytes], ...] = ()  # `copy` files of the user's checkout


@dataclass(frozen=True)
class AttemptReport:
    ok: bool
    error: str = ""
    output_tail: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None  # what the agent reported (claude-code); else priced at home
    verification: str | None = None
    retry: bool = True
    head: str | None = None  # pushed to the remote's `branch`
    log: str = ""  # what the attempt wrote to its log
    node: str = ""  # "node <id> (<host>)"
    sandbox: str | None = None  # what the attempt ran in on this worker: bwrap or none
    sandbox_reason: str = ""  # why none, where `auto` found no working bwrap on this node
    code_from: str = CODE_FROM  # where the worker imported orchestrate from


@dataclass
class WorkerContext:
    """runner.AttemptContext on a worker."""

    settings: Settings
    agent: Agent
    sandbox: SandboxPolicy = field(default_factory=no_sandbox)  # _worker_sandbox's
    egress: EgressProxy | None = None


def _worker_sandbox(order: AttemptOrder, repo: Path) -> SandboxPolicy:
    """The same sandbox as on the coordinator, with this worker's bubblewrap (`auto` decides
    here); `bwrap` where this worker has none fails the attempt saying so."""
    try:
        return sandbox_policy(order.settings, repo)
    except UsageError as exc:
        raise AttemptFailed(f"on {_node()}: {exc}") from None


def run_attempt(order: AttemptOrder, credentials: Mapping[str, str]) -> AttemptReport:
    """The Ray task's body (a plain function: ray_runner wraps it with ray.remote)."""
    with _environment(credentials), _interruptible():
        return trio.run(_ticking, order)


@contextlib.contextmanager
def _environment(credentials: Mapping[str, str]) -> Iterator[None]:
    """The coordinator's ANTHROPIC_* for this task only (a worker process runs one task at a
    time and is reused afterwards)."""
    saved = {name: os.environ.get(name) for name in credentials}
    os.environ.update(credentials)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Let trio install its Ctrl-C handling: it does so only over Python's default handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def _ticking(order: AttemptOrder) -> AttemptReport:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_tick)
        try:
            return await _attempt(order)
        finally:
            nursery.cancel_scope.cancel()


async def _tick() -> None:
    while True:  # noqa: ASYNC110 - waking is the point
        await trio.sleep(TICK_S)


async def _attempt(order: AttemptOrder) -> AttemptReport:
    scratch = Path(tempfile.mkdtemp(prefix=f"orchestrate-{order.subtask.id}-"))
    log, repo = scratch / "logs" / f"{order.subtask.id}.log", scratch / "work"
    cache = _cache_path(order)
    try:
        log.parent.mkdir()
        log.touch()
        try:
            report = await _work(order, repo, log, reused=await _take_parked(cache, repo))
        except (AttemptFailed, GitError, OSError) as exc:
            report = AttemptReport(ok=False, error=str(exc), log=_log_text(log), node=_node())
        await _park(cache, repo)  # not after a cancellation: that clone is removed
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _work(order: AttemptOrder, repo: Path, log: Path, *, reused: bool) -> AttemptReport:
    await _checkout(order, repo, reused=reused)
    await _copy_in(repo, order.copies)
    sandbox = _worker_sandbox(order, repo)
    await run_setup(order.settings, repo, log,
                    command_env(order.spec, order.subtask.id, repo, order.branch),
                    sandbox.setup(repo))
    async with open_agent(order.settings) as agent, open_egress(sandbox.needs_proxy) as egress:
        task = AgentTask(order.spec, order.subtask.id, order.prompt, repo, order.branch, log,
                         _free_port(), order.attempt)
        result = await attempt.run_attempt(WorkerContext(order.settings, agent, sandbox, egress),
                                           order.subtask, task)
    head = None
    if result.ok:
        head = await commit_work(repo, order.message, order.settings.copy)
        pushed = await git(repo, "push", "--quiet", "--force", "--no-verify", order.push_url,
                           f"{head}:refs/heads/{order.branch}", check=False)
        if pushed.returncode != 0:
            reason = (pushed.stderr.strip().splitlines() or ["?"])[-1]
            return AttemptReport(ok=False, error=f"pushing {order.branch} to the remote "
                                 f"failed: {reason}", usage=result.usage,
                                 cost_usd=result.cost_usd, log=_log_text(log), node=_node())
    return AttemptReport(ok=result.ok, error=result.error, output_tail=result.output_tail,
                         usage=result.usage, cost_usd=result.cost_usd,
                         verification=result.verification, retry=result.retry, head=head,
                         log=_log_text(log), node=_node(), sandbox=result.sandbox,
                         sandbox_reason=_on_this_node(result.sandbox_reason))


async def _checkout(order: AttemptOrder, repo: Path, *, reused: bool) -> None:
    """A clone sharing the objects of this node's cache of the remote, on `branch` at `base`:
    a clone an earlier attempt on this node parked (only the files that differ are written,
    ignored files such as node_modules/ stay), else a fresh one."""
    cache = await _cached_remote(order)
    if reused:
        try:
            await _switch(repo, order.branch, order.base)
        except GitError:  # an agent damaged it: start afresh
            await trio.to_thread.run_sync(shutil.rmtree, repo, True)
            reused = False
    if not reused:
        await git(repo.parent, "clone", "--quiet", "--shared", "--no-checkout", "--no-tags",
                  "--single-branch", "--branch", order.integration_branch, str(cache),
                  str(repo))
        await git(repo, "-c", f"checkout.workers={CHECKOUT_WORKERS}", "checkout", "--quiet",
                  "-B", order.branch, order.base)
    name, email = order.identity
    await git(repo, "config", "user.name", name)
    await git(repo, "config", "user.email", email)


async def _switch(repo: Path, branch: str, base: str) -> None:
    await trio.Path(repo / ".git" / "index.lock").unlink(missing_ok=True)
    await clear_index_flags(repo)
    await git(repo, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    await git(repo, "-c", f"checkout.workers={CHECKOUT_WORKERS}", "reset", "--hard", "--quiet",
              base)
    await git(repo, "clean", "-ffdq", *NEVER_KEPT)


def _cache_path(order: AttemptOrder) -> Path:
    key = hashlib.sha256(order.fetch_url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / names.REMOTE_CACHE_DIR / f"{key}.git"


async def _take_parked(cache: Path, repo: Path) -> bool:
    """Move a clone parked by an earlier attempt on this node to `repo`; False if none."""
    pool = names.remote_pool(cache)
    if not await trio.Path(pool).is_dir():
        return False
    async with _locked(cache.with_suffix(".lock")):
        for name in sorted(await trio.to_thread.run_sync(os.listdir, pool)):
            with contextlib.suppress(OSError):
                await trio.Path(pool / name).rename(repo)
                return True
    return False


async def _park(cache: Path, repo: Path) -> None:
    pool = names.remote_pool(cache)
    if not await trio.Path(repo / ".git").is_dir():
        return
    await trio.Path(pool).mkdir(parents=True, exist_ok=True)
    async with _locked(cache.with_suffix(".lock")):
        if len(await trio.to_thread.run_sync(os.listdir, pool)) < POOL_LIMIT:
            with contextlib.suppress(OSError):
                await trio.Path(repo).rename(pool / uuid.uuid4().hex)


async def _cached_remote(order: AttemptOrder) -> Path:
    """This node's bare copy of the remote's integration branch, brought up to date: the first
    attempt on a node fetches it all, later ones only what is new, and each attempt's clone
    shares its objects (`--shared`), so a checkout reads local objects only. (A partial clone
    would fetch the base's every blob again for each attempt's checkout.) Attempts on one node
    take turns updating it (a lock file); git never removes objects from it (gc.auto=0)."""
    cache = _cache_path(order)
    await trio.Path(cache.parent).mkdir(parents=True, exist_ok=True)
    async with _locked(cache.with_suffix(".lock")):
        refspec = f"+refs/heads/{order.integration_branch}:refs/heads/{order.integration_branch}"
        if not await trio.Path(cache / "HEAD").exists():
            await trio.to_thread.run_sync(shutil.rmtree, cache, True)
            await git(cache.parent, "init", "--quiet", "--bare", str(cache))
        await git(cache, "-c", "gc.auto=0", "fetch", "--quiet", "--no-tags", order.fetch_url,
                  refspec)
    return cache


@contextlib.asynccontextmanager
async def _locked(path: Path) -> AsyncIterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await trio.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


async def _copy_in(repo: Path, copies: tuple[tuple[str, bytes], ...]) -> None:
    """The user's `copy` files (e.g. `.env`) where the branch does not track that name."""
    for name, content in copies:
        tracked = await git(repo, "ls-files", "-z", "--", f":(top,literal){name}")
        if not tracked.stdout:
            await trio.to_thread.run_sync(_write_inside, repo, name, content)


def _write_inside(repo: Path, name: str, content: bytes) -> None:
    target = repo / name
    if target.resolve().is_relative_to(repo.resolve()):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def _log_text(log: Path) -> str:
    try:
        return read_tail(log, 0, LOG_LIMIT)
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _node(id_length: int | None = None) -> str:
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray (tests of this module) there is no node
        node_id = "?"
    return f"node {node_id[:id_length]} ({platform.node()})"


def _on_this_node(reason: str) -> str:
    """Why this worker ran an attempt without a sandbox, naming the node (its id cut short)."""
    return f"{reason} on {_node(12)}" if reason else ""
