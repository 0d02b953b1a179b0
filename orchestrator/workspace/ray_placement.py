"""`--runner ray`: every subtask attempt is a Ray task on a cluster; the git branch on `remote`
is the hand-off (SPEC 14). Imported only on that path (importing Ray takes a second or more).

The coordinator connects to `ray_address` (never starting a cluster unless told `local`),
checks each node's Python minor and Ray version, pushes the integration branch to `remote`
whenever a subtask starts from a commit it has not pushed yet, submits one task per attempt
(remote_attempt.run_attempt; Ray's own retries off, orchestrate's --retries apply), waits for
it without a thread (the ObjectRef's future wakes trio), fetches the pushed branch and checks
that its head is the one the task returned. The merge stage, the check and every plan write
stay here.

Workers import orchestrate's code as installed on the nodes when every node has exactly the
coordinator's code (same digest of the orchestrator and merge packages): Ray's prestarted
workers then take the first tasks. Otherwise the coordinator reconnects with its own copy as the
job's `runtime_env` `py_modules` (Ray uploads local code only for a whole job), which costs the
upload and a fresh worker process per slot. Its dependencies
(trio, anthropic, ...) must be installed on the nodes either way. `runtime_env` never carries
environment variables: the ANTHROPIC_* credentials are a task argument (an object in Ray's
object store), since Ray shows runtime_env in its state API and logs.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import ray
import trio
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import merge
import orchestrator
from orchestrator import names
from orchestrator.agents.base import AgentResult, AgentTask
from orchestrator.door.processes import GRACE_S, git, git_out, is_ancestor, verify
from orchestrator.errors import UsageError
from orchestrator.plan.model import Status, Subtask
from orchestrator.plan.own_record import hooks_at_start
from orchestrator.workspace import ray_probe
from orchestrator.workspace.attempt import AttemptFailed
from orchestrator.workspace.placement import Workshop
from orchestrator.workspace.ray_worker import AttemptOrder, AttemptReport, run_attempt

SLOT_RESOURCE = "orchestrate_agents"  # a node started with it caps agents on that node
POLITE_CANCEL_S = GRACE_S + 5.0  # the worker's SIGTERM grace for the agent group, and margin
FORCE_CANCEL_S = 5.0
CONNECT_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 180.0  # a node's first worker, with py_modules unpacked, may take this long
HINT = ("Start a cluster with `ray start --head` (see README, Running on a Ray cluster), or "
        "set ray_address / RAY_ADDRESS to a running one.")


@asynccontextmanager
async def open_ray_placement(shop: Workshop) -> AsyncIterator[RayPlacement]:
    settings, repo = shop.settings, shop.spec.repo
    fetch_url, push_url = await _remote_urls(repo, settings.remote)
    address = _connect(settings.ray_address)
    try:
        if not await _check_versions():  # Ray uploads local code only for a whole job
            ray.shutdown()
            _connect(settings.ray_address, runtime_env=_shipped_code())
        yield RayPlacement(shop, fetch_url, push_url,
                           credentials=ray.put(_credentials()),
                           identity=await _identity(repo), address=address)
    finally:
        ray.shutdown()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _credentials() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("ANTHROPIC_")}


async def _remote_urls(repo: Path, remote: str) -> tuple[str, str]:
    fetch = await git(repo, "remote", "get-url", remote, check=False)
    push = await git(repo, "remote", "get-url", "--push", remote, check=False)
    if fetch.returncode != 0 or push.returncode != 0:
        raise UsageError(f"setting remote: {remote!r} is not a git remote of {repo}",
                         f"Add the repository the Ray workers can reach: git remote add {remote} "
                         "URL (or set remote / --remote to another one).")
    return fetch.stdout.strip(), push.stdout.strip()


def _address(configured: str) -> str:
    """`auto`: RAY_ADDRESS if set, else the cluster `ray start` recorded on this machine."""
    if configured == "auto":
        return os.environ.get("RAY_ADDRESS", "").strip() or "auto"
    return configured


def _shipped_code() -> dict[str, Any]:
    code = [str(Path(orchestrator.__file__).parent), str(Path(merge.__file__).parent)]
    return {"py_modules": code, "excludes": ["__pycache__"]}


def _reachable(address: str) -> None:
    """A HOST:PORT with nothing listening fails at once: ray.init would wait minutes."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # auto, local, ray://...: Ray's own checks
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(f"ray_address {address!r}: nothing answers there ({exc})", HINT) from None


def _connect(configured: str, runtime_env: dict[str, Any] | None = None) -> str:
    address = _address(configured)
    _reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 namespace="orchestrate", runtime_env=runtime_env)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        raise UsageError(f"cannot use the Ray cluster at ray_address {address!r}: "
                         f"{_first_line(exc)}", HINT) from None
    return address


async def _check_versions() -> bool:
    """Each live node runs the coordinator's Python minor and Ray version, has git and
    orchestrate's dependencies; else exit 2 naming the mismatch. True if every node would
    import exactly the coordinator's orchestrate code."""
    ours = {"python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "ray": ray.__version__}
    # shipped by value: the probe runs also where orchestrate is not installed
    ray.cloudpickle.register_pickle_by_value(ray_probe)  # type: ignore[no-untyped-call]
    probe = ray.remote(max_retries=0, num_cpus=0)(ray_probe.node_report)
    nodes = [node["NodeID"] for node in ray.nodes()  # type: ignore[no-untyped-call]
             if node.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
            .remote() for node in nodes]
    with trio.move_on_after(PROBE_TIMEOUT_S) as waited:
        try:
            reports = [await _result(ref) for ref in refs]
        except ray.exceptions.RayError as exc:  # e.g. a node whose Python cannot unpickle it
            raise UsageError(f"the version check failed on a Ray node: {_first_line(exc)}",
                             "Workers need the coordinator's Python minor version and Ray "
                             "version (README, Running on a Ray cluster).") from None
    if waited.cancelled_caught:
        raise UsageError(f"the Ray cluster did not run a version check on each of its "
                         f"{len(nodes)} nodes within {PROBE_TIMEOUT_S:g} s", HINT)
    for report in reports:
        for key, value in ours.items():
            if report[key] != value:
                raise UsageError(f"Ray {report['node']} runs {key} {report[key]}, but this "
                                 f"coordinator runs {key} {value}",
                                 "Workers need the coordinator's Python minor version and Ray "
                                 "version (README, Running on a Ray cluster).")
        if report["missing"] or report["git"] == "missing":
            lacking = report["missing"] or "git"
            raise UsageError(f"Ray {report['node']} lacks {lacking}",
                             "Install git and orchestrate's dependencies on every node "
                             "(pip install 'orchestrate[ray]').")
    own = ray_probe.code_digest()
    return all(report["code"] == own for report in reports)


async def _identity(repo: Path) -> tuple[str, str]:
    ident = await git_out(repo, "var", "GIT_COMMITTER_IDENT")
    name, _, rest = ident.partition(" <")
    return name, rest.partition(">")[0]


async def _result(ref: Any) -> Any:
    """The task's value, awaited without a thread; on cancellation (Ctrl-C), cancel the task
    politely (the worker stops the agent's group with its grace), then forcefully."""
    future = ref.future()
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def wake(_: object) -> None:
        with suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    try:
        await done.wait()
    except trio.Cancelled:
        with trio.CancelScope(shield=True):
            await _cancel(ref, done)
        raise
    return future.result()


async def _cancel(ref: Any, done: trio.Event) -> None:
    ray.cancel(ref, force=False)
    with trio.move_on_after(POLITE_CANCEL_S):
        await done.wait()
    if not done.is_set():
        ray.cancel(ref, force=True)
        with trio.move_on_after(FORCE_CANCEL_S):
            await done.wait()


def task_resources(cluster: dict[str, float]) -> dict[str, Any]:
    """What each attempt's task asks Ray for: one agent slot on a cluster whose nodes declare
    `orchestrate_agents`, else one CPU, so that Ray spreads the tasks over the nodes and no node
    runs more agents at once than it has CPUs."""
    if SLOT_RESOURCE in cluster:
        return {"num_cpus": 0, "resources": {SLOT_RESOURCE: 1.0}}
    return {"num_cpus": 1}


class RayPlacement:
    """Attempts as Ray tasks; the workspace is a fresh clone of `remote` on a worker."""

    name = "ray"
    reads_workspaces = False  # the conflict radar cannot see a worker's clone

    def __init__(self, shop: Workshop, fetch_url: str, push_url: str, *,
                 credentials: Any, identity: tuple[str, str], address: str) -> None:
        self.shop, self.settings, self.repo = shop, shop.settings, shop.spec.repo
        self.fetch_url, self.push_url = fetch_url, push_url
        self.credentials, self.identity, self.address = credentials, identity, address
        self.published: set[str] = set()
        self.push_lock = trio.Lock()
        self.heads: dict[str, str] = {}
        self.bases: dict[str, str] = {}
        self.adopted: dict[str, str] = {}  # subtask -> head a worker of an earlier build pushed
        self.copies = _read_copies(self.repo, self.settings.copy)
        cluster = ray.cluster_resources()  # type: ignore[no-untyped-call]
        self.task = ray.remote(max_retries=0, **task_resources(cluster))(run_attempt)

    def workspace(self, subtask: Subtask, base: str) -> AbstractAsyncContextManager[Path]:
        return self._workspace(subtask, base)

    @asynccontextmanager
    async def _workspace(self, subtask: Subtask, base: str) -> AsyncIterator[Path]:
        await self._publish(base)
        self.bases[subtask.id] = base
        if head := await self._pushed_earlier(subtask):
            self.adopted[subtask.id] = head
        try:
            yield Path(f"ray:{self.address}")
        finally:
            del self.bases[subtask.id]

    async def _publish(self, base: str) -> None:
        """Push `base` as the remote's integration branch, once per base."""
        async with self.push_lock:
            if base in self.published:
                return
            branch = names.integration_branch(self.shop.spec.name)
            pushed = await git(self.repo, *hooks_at_start(self.shop.spec), "push", "--quiet",
                               "--no-verify", self.settings.remote,
                               f"{base}:refs/heads/{branch}", check=False)
            if pushed.returncode != 0:
                reason = (pushed.stderr.strip().splitlines() or ["?"])[-1]
                raise AttemptFailed(
                    f"pushing {branch} to remote {self.settings.remote} failed ({reason}); if "
                    "the remote's branch moved (pushed by someone else or an earlier build), "
                    f"delete it there: git push {self.settings.remote} --delete {branch}")
            self.published.add(base)

    async def _pushed_earlier(self, subtask: Subtask) -> str | None:
        """The head of the subtask branch on the remote if a worker of an earlier build pushed
        it after a successful attempt and that build ended before recording it: a commit made
        by orchestrate for this subtask on top of the base that build recorded."""
        earlier_base = subtask.record.base
        unfinished = subtask.status in (Status.PENDING, Status.IN_PROGRESS)
        if not unfinished or not isinstance(earlier_base, str):
            return None
        branch = self.shop.branch_for(subtask)
        tracking = f"refs/remotes/{self.settings.remote}/{branch}"
        fetched = await git(self.repo, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                            self.settings.remote, f"+refs/heads/{branch}:{tracking}", check=False)
        if fetched.returncode != 0:
            return None  # no such branch: nothing was pushed
        head = await verify(self.repo, tracking)
        message = await git_out(self.repo, "log", "-1", "--format=%B", head)
        ours = (f"Orchestrate-Spec: {self.shop.spec.name}" in message.splitlines()
                and f"Orchestrate-Subtask: {subtask.id}" in message.splitlines())
        return head if head != earlier_base and ours and await is_ancestor(
            self.repo, earlier_base, head) else None

    async def set_up(self, subtask: Subtask, workspace: Path) -> None:
        """Nothing here: `copy` and `setup` run in each attempt's fresh clone."""

    async def attempt(self, subtask: Subtask, task: AgentTask) -> AgentResult:
        if head := self.adopted.pop(subtask.id, None):
            self.heads[subtask.id] = head
            await _append(task.log_path, f"\n[orchestrate: adopted {head[:12]}, which a Ray "
                          "worker of an earlier build pushed; the agent did not run again]\n")
            return AgentResult(ok=True)
        order = AttemptOrder(
            spec=self.shop.spec.name, subtask=subtask, settings=self.settings,
            fetch_url=self.fetch_url, push_url=self.push_url,
            integration_branch=names.integration_branch(self.shop.spec.name),
            branch=task.branch,
            base=self.bases[subtask.id], prompt=task.prompt, attempt=task.attempt,
            message=self.shop.commit_message(subtask), identity=self.identity, copies=self.copies)
        try:
            report: AttemptReport = await _result(self.task.remote(order, self.credentials))
        except ray.exceptions.RayError as exc:
            error = f"the Ray task of attempt {task.attempt} failed: {type(exc).__name__}: " \
                    f"{_first_line(exc)}"
            await _append(task.log_path, f"\n[orchestrate: {error}]\n")
            return AgentResult(ok=False, error=error)
        unconfined = (f"; it ran without a sandbox: {report.sandbox_reason}"
                      if report.sandbox == "none" and report.sandbox_reason else "")
        await _append(task.log_path, f"\n[orchestrate: attempt {task.attempt} ran as a Ray task "
                      f"on {report.node} with orchestrate from {report.code_from}{unconfined}]"
                      f"\n{report.log}")
        if report.ok and report.head:
            self.heads[subtask.id] = report.head
        return AgentResult(ok=report.ok, error=report.error, output_tail=report.output_tail,
                           usage=report.usage, cost_usd=report.cost_usd,
                           verification=report.verification, retry=report.retry,
                           sandbox=report.sandbox, sandbox_reason=report.sandbox_reason)

    async def after_failed_attempt(self, task: AgentTask) -> None:
        """Nothing: every attempt starts from a fresh clone at the base."""

    async def hand_back(self, subtask: Subtask, workspace: Path) -> str:
        """Fetch the branch the worker pushed; its head must be the one the task returned."""
        head = self.heads.pop(subtask.id)
        branch = self.shop.branch_for(subtask)
        tracking = f"refs/remotes/{self.settings.remote}/{branch}"
        await git(self.repo, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                  self.settings.remote, f"+refs/heads/{branch}:{tracking}")
        fetched = await verify(self.repo, tracking)
        if fetched != head:
            raise AttemptFailed(f"remote {self.settings.remote} has {branch} at {fetched[:12]}, "
                                f"not at {head[:12]} that the worker pushed: something else "
                                "pushed to it; nothing was merged")
        await git(self.repo, "update-ref", "-m", "orchestrate: the Ray worker's commit",
                  f"refs/heads/{branch}", head)
        return head

    async def release(self, subtask: Subtask) -> None:
        """Nothing: the worker removed its clone."""


def _read_copies(repo: Path, names: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    found = []
    for name in names:
        path = repo / name
        if path.is_file() and not path.is_symlink():
            found.append((name, path.read_bytes()))
    return tuple(found)


async def _append(log: Path, text: str) -> None:
    async with await trio.open_file(log, "a", encoding="utf-8", errors="replace") as handle:
        await handle.write(text)
