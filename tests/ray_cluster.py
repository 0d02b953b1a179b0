"""A real local Ray cluster inside a network namespace of its own that has only loopback, so that
no Ray traffic leaves 127.0.0.1 (Ray binds the machine's routable address otherwise).

`Namespace` holds the namespace open with a sleeping process (`unshare -n`, root only) and runs
commands in it with `nsenter`. `RayCluster` starts `ray start --head` and further nodes there
with a private --temp-dir; every process it starts carries a marker variable in its environment,
so that `stop` kills exactly those (never `ray stop`, which kills every Ray on the machine).
Used by tests/workspace/test_ray_runner.py and scripts/bench_ray.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
HEAD_PORT = 6379  # free for sure: nothing else runs in the namespace
DASHBOARD_PORT = 8265


class NamespaceUnavailable(Exception):
    """This machine or user cannot create a network namespace (the reason is the message)."""


@dataclass
class Namespace:
    holder: subprocess.Popen[bytes]

    @classmethod
    def create(cls) -> Namespace:
        if shutil.which("unshare") is None or shutil.which("nsenter") is None:
            raise NamespaceUnavailable("unshare/nsenter (util-linux) are not installed")
        up = "ip link set lo up && " if shutil.which("ip") else ""
        try:
            holder = subprocess.Popen(
                ["unshare", "-n", "--", "sh", "-c", f"{up}echo ready && exec sleep 100000"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise NamespaceUnavailable(f"unshare -n failed: {exc}") from None
        assert holder.stdout is not None
        namespace = cls(holder)
        if holder.stdout.readline().strip() != b"ready":
            holder.wait(timeout=10)
            reason = holder.stderr.read().decode(errors="replace").strip() if holder.stderr \
                else ""
            namespace.close()
            raise NamespaceUnavailable(f"unshare -n failed: {reason or holder.returncode}")
        if not up and namespace.run(sys.executable, "-c", _LO_UP).returncode != 0:
            namespace.close()
            raise NamespaceUnavailable("cannot bring up loopback in the namespace (no `ip`)")
        return namespace

    def prefix(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-n", "--"]

    def run(self, *command: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix(), *command], env=env, cwd=cwd, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def popen(self, *command: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              output: Path | None = None) -> subprocess.Popen[bytes]:
        sink = output.open("wb") if output else subprocess.DEVNULL
        try:
            return subprocess.Popen([*self.prefix(), *command], env=env, cwd=cwd, stdout=sink,
                                    stderr=subprocess.STDOUT)
        finally:
            if output and not isinstance(sink, int):
                sink.close()

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()
        for pipe in (self.holder.stdout, self.holder.stderr):
            if pipe is not None:
                pipe.close()


_LO_UP = """\
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
req = struct.pack('16sH', b'lo', 0)
flags = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, req))[1]
fcntl.ioctl(s, 0x8914, struct.pack('16sH', b'lo', flags | 1))
"""


@dataclass
class RayCluster:
    namespace: Namespace
    env: dict[str, str]  # every Ray process's environment (with the marker)
    temp_dir: Path
    marker: str
    nodes: int = 0
    started_s: float = 0.0  # how long the nodes took to start
    logs: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{HEAD_PORT}"

    @classmethod
    def start(cls, namespace: Namespace, env: dict[str, str], *, nodes: int = 1,
              slots: int | None = 2, dashboard: bool = False,
              cpus: tuple[int, ...] = (),
              node_envs: dict[int, dict[str, str]] | None = None) -> RayCluster:
        """`nodes` nodes, the head first; each declares `slots` `orchestrate_agents` (none at
        all if None, a plain cluster) and the CPUs `cpus` gives it (2 where it gives none);
        `node_envs`: node number (0: the head) -> variables that node's processes get besides
        (e.g. another PATH)."""
        marker = f"ORCH_RAY_CLUSTER={uuid.uuid4().hex}"
        name, _, value = marker.partition("=")
        temp_dir = Path(tempfile.mkdtemp(prefix="oray-", dir="/tmp"))  # short: socket paths
        # TMPDIR: the workers' scratch clones and copies of remotes go with the cluster
        full_env = {**env, name: value, "RAY_USAGE_STATS_ENABLED": "0", "TMPDIR": str(temp_dir)}
        cluster = cls(namespace, full_env, temp_dir, marker)
        node_cpus = [*cpus, *[2] * nodes][:nodes]
        began = time.monotonic()
        try:
            extra = node_envs or {}
            cluster._ray_start("--head", "--port", str(HEAD_PORT), "--include-dashboard",
                               "true" if dashboard else "false", "--dashboard-host", "127.0.0.1",
                               "--dashboard-port", str(DASHBOARD_PORT), slots=slots,
                               cpus=node_cpus[0], env=extra.get(0, {}))
            for number, count in enumerate(node_cpus[1:], start=1):
                cluster._ray_start("--address", cluster.address, slots=slots, cpus=count,
                                   env=extra.get(number, {}))
        except BaseException:
            cluster.stop()
            raise
        cluster.started_s = time.monotonic() - began
        return cluster

    def _ray_start(self, *args: str, slots: int | None, cpus: int,
                   env: dict[str, str] | None = None) -> None:
        resources = ["--resources", f'{{"orchestrate_agents": {slots}}}'] if slots else []
        done = self.namespace.run(
            str(BIN / "ray"), "start", *args, "--node-ip-address", "127.0.0.1",
            "--temp-dir", str(self.temp_dir), "--num-cpus", str(cpus), "--disable-usage-stats",
            *resources, env={**self.env, **(env or {})}, timeout=180)
        self.logs.append(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        self.nodes += 1

    def processes(self) -> list[int]:
        from tests.buildkit import processes_with_env

        return processes_with_env(self.marker)

    def stop(self) -> None:
        """Kill every process of this cluster (found by its marker), then its temp dir."""
        for _ in range(50):
            found = self.processes()
            if not found:
                break
            for pid in found:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
