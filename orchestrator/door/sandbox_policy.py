"""The build's sandbox: the mode decided once (`auto` tries bwrap), and the confinement of each
kind of process (SPEC: agent and verification per `sandbox_network` with a private home; setup
with the host network and the user's home read-only; the check per `check_network` with a
private home). `None` everywhere when the build runs without a sandbox.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator.door.egress import AllowList
from orchestrator.door.sandbox import INSTALL_HINT, Confinement, ExtraPath, probe, tool_paths
from orchestrator.errors import UsageError


@dataclass(frozen=True)
class SandboxPolicy:
    mode: str  # what the build runs with: bwrap or none
    warning: str = ""  # why `auto` fell back to none, with how to install bwrap
    reason: str = ""  # why `auto` fell back to none, short (the probe's finding)
    bwrap: str = "bwrap"
    network: str = "allow"
    check_network: str = "none"
    readable: tuple[Path, ...] = ()  # repository, tools, read-only sandbox_paths
    writable: tuple[Path, ...] = ()  # sandbox_paths given :rw
    credentials: tuple[str, ...] = ()  # the preset's credential variables
    config_paths: tuple[Path, ...] = ()  # copied into each private home
    allow: AllowList = field(default_factory=AllowList)  # the agent's
    check_allow: AllowList = field(default_factory=AllowList)  # sandbox_allow only
    user_home: Path = field(default_factory=Path.home)

    @property
    def active(self) -> bool:
        return self.mode == "bwrap"

    @property
    def needs_proxy(self) -> bool:
        return self.active and "allow" in (self.network, self.check_network)

    def agent(self, worktree: Path, home: Path, proxy_socket: Path | None) -> Confinement | None:
        """The agent's own processes, its tools and its verification."""
        return self._confine(worktree, home, self.network, proxy_socket, self.credentials)

    def tools(self, worktree: Path, home: Path) -> Confinement | None:
        """The claude agent's bash: no credential at all, no proxy (nothing on its list)."""
        network = "host" if self.network == "host" else "none"
        return self._confine(worktree, home, network, None, ())

    def setup(self, worktree: Path) -> Confinement | None:
        """The user's setup commands: the host network, the user's home read-only."""
        if not self.active:
            return None
        return Confinement(writable=(worktree, *self.writable), readable=self.readable,
                           home=None, user_home=self.user_home, network="host",
                           bwrap=self.bwrap)

    def check(self, worktree: Path, home: Path, proxy_socket: Path | None) -> Confinement | None:
        return self._confine(worktree, home, self.check_network, proxy_socket, ())

    def _confine(self, worktree: Path, home: Path, network: str, proxy_socket: Path | None,
                 credentials: tuple[str, ...]) -> Confinement | None:
        if not self.active:
            return None
        return Confinement(writable=(worktree, *self.writable), readable=self.readable,
                           home=home, user_home=self.user_home, network=network,
                           proxy_socket=proxy_socket if network == "allow" else None,
                           credentials=credentials, bwrap=self.bwrap)

    @asynccontextmanager
    async def private_home(self) -> AsyncIterator[Path]:
        """An empty home for one attempt or check, with the preset's config paths copied in;
        removed afterwards, so what the agent wrote there never reaches the user's own."""
        home = Path(await trio.to_thread.run_sync(
            lambda: tempfile.mkdtemp(prefix="orchestrate-home-")))
        try:
            if self.active:
                await trio.to_thread.run_sync(self._copy_config, home)
            yield home
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(
                    lambda: shutil.rmtree(home, ignore_errors=True))

    def _copy_config(self, home: Path) -> None:
        for source in self.config_paths:
            try:
                relative = source.relative_to(self.user_home)
            except ValueError:
                continue
            target = home / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True,
                                ignore_dangling_symlinks=True)
            elif source.is_file():
                shutil.copy2(source, target)


def no_sandbox(warning: str = "", reason: str = "") -> SandboxPolicy:
    return SandboxPolicy(mode="none", warning=warning, reason=reason)


def decide(mode: str, *, repo: Path, network: str, check_network: str,
           paths: Sequence[str], hosts: Sequence[str], base_urls: Sequence[str],
           credentials: Sequence[str], config_paths: Sequence[str],
           extra_hosts: Sequence[str] = (), bwrap: str = "bwrap") -> SandboxPolicy:
    """The build's policy; `auto` probes bwrap once (a warning when it falls back), `bwrap`
    without a working one is a usage error (exit 2) before anything is created."""
    if mode == "none":
        return no_sandbox()
    problem = probe(bwrap)
    if problem is not None:
        if mode == "bwrap":
            raise UsageError(f"option --sandbox bwrap: bubblewrap cannot run: {problem}",
                             f"To run agents in a sandbox, {INSTALL_HINT}; or pass "
                             "--sandbox none (or auto) to run them without one.")
        return no_sandbox(f"sandbox: none ({problem}; to sandbox agents, {INSTALL_HINT})",
                          reason=problem)
    home = Path.home()
    extra = [ExtraPath.parse(entry) for entry in paths]
    python = [Path(sys.executable).parent, Path(os.path.realpath(sys.executable)).parent,
              Path(sys.base_prefix)]
    return SandboxPolicy(
        mode="bwrap", bwrap=shutil.which(bwrap) or bwrap, network=network,
        check_network=check_network,
        readable=(*tool_paths(os.environ.get("PATH", os.defpath), home), *python, repo,
                  *(p.path for p in extra if not p.writable)),
        writable=tuple(p.path for p in extra if p.writable),
        credentials=tuple(credentials),
        config_paths=tuple(Path(os.path.expanduser(p)) for p in config_paths),
        allow=AllowList.of([*hosts, *extra_hosts], base_urls),
        check_allow=AllowList.of(extra_hosts), user_home=home)
