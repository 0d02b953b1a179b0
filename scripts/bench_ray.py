"""(e) `--runner ray` against `--runner local` on one machine, in the same run (SPEC 14).

The build of bench.py (a): N subtasks, P at once, agents that sleep S seconds and edit 3 files
of the generated repository, once with runner local and once with runner ray, both as
coordinators inside one loopback-only network namespace where a one-node Ray cluster runs
(`ray start --head`, P agent slots). The remote is a bare clone (file://). The cluster's start
time is reported apart: the build figures are "once the cluster is up" (they include the
coordinator's connection and version check, and each attempt's fresh clone on the worker).
Needs root (unshare -n) and Ray; without them it prints why and reports nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import AGENT, ENV, ORCHESTRATE, ROOT, fresh_clone, kept_dir, sh, write_plan

if TYPE_CHECKING:
    from tests.ray_cluster import Namespace, RayCluster

def bench_ray(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    try:
        import ray  # noqa: F401

        from tests.ray_cluster import Namespace, NamespaceUnavailable, RayCluster
    except ImportError as exc:
        print(f"  skipped: {exc} (pip install 'orchestrate[ray]')")
        return {}
    try:
        namespace = Namespace.create()
    except NamespaceUnavailable as exc:
        print(f"  skipped: {exc}")
        return {}
    try:
        return _measure(args, scratch, namespace, RayCluster)
    finally:
        namespace.close()


def _measure(args: argparse.Namespace, scratch: Path, namespace: Namespace,
             cluster_type: type[RayCluster]) -> dict[str, float]:
    repo = fresh_clone(args.files, kept_dir(scratch))
    sh("git", "clone", "-q", "--bare", str(repo), str(repo.parent / "remote.git"), cwd=repo)
    sh("git", "remote", "set-url", "origin", f"file://{repo.parent / 'remote.git'}", cwd=repo)
    agent = scratch / "ray_agent.py"
    agent.write_text(AGENT)
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    began = time.perf_counter()
    cluster = cluster_type.start(namespace, env, nodes=1, slots=args.parallel)
    started = time.perf_counter() - began
    try:
        figures = {"cluster start": started}
        for runner in ("local", "ray"):
            wall, connect = _build(args, repo, namespace, cluster, agent, runner, env)
            figures[f"runner {runner}"] = wall
            figures[f"runner {runner}, until first subtask"] = connect
        return figures
    finally:
        cluster.stop()


def _build(args: argparse.Namespace, repo: Path, namespace: Namespace, cluster: RayCluster,
           agent: Path, runner: str, env: dict[str, str]) -> tuple[float, float]:
    spec = f"00{1 if runner == 'local' else 2}-ray-bench"
    write_plan(repo, [{"id": f"s{n}", "description": f"edit s{n}", "status": "pending"}
                      for n in range(args.subtasks)], spec=spec)
    command = [*ORCHESTRATE, "build", spec, "--json", "--runner", runner, "--max-parallel",
               str(args.parallel), "--ray-address", cluster.address,
               "--agent-command", f"BENCH_SLEEP={args.sleep} {sys.executable} {agent}"]
    began = time.perf_counter()
    done = namespace.run(*command, env=env, cwd=repo, timeout=1800)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"runner {runner} build failed ({done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    first = next(e["elapsed_s"] for e in events if e["kind"] == "subtask_started")
    return wall, float(first)
