"""`--runner ray` on a plain cluster: two nodes started with a bare `ray start` (CPUs only, no
`orchestrate_agents` resource), the head with 1 CPU and the other node with 2. Each attempt then
asks Ray for one CPU: both nodes run subtasks, and no node runs more agents at once than its
CPUs, though `--max-parallel` would allow more.

A cluster of its own (not test_ray_runner.py's, whose nodes declare agent slots), started in a
loopback-only network namespace like that one.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.buildkit import SPEC, Recorder, merges_per_subtask, peak_concurrency, plan_path, statuses
from tests.conftest import ORCHESTRATE, phase, plan_of, write_plan

pytest.importorskip("ray", reason="Ray is not installed (pip install 'orchestrate[ray]')")

from tests.ray_cluster import RayCluster
from tests.workspace.test_ray_runner import (
    NODE,
    command,
    coordinator_env,
    remote,  # noqa: F401 - the fixture
    running_cluster,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("remote")]  # origin: a bare repo
CPUS = (1, 2)  # the head's, the other node's
EIGHT = [f"s{n}" for n in range(1, 9)]


@pytest.fixture(scope="module")
def plain_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with running_cluster(tmp_path_factory.mktemp("ray-home"), nodes=2, slots=None,
                         cpus=CPUS) as started:
        yield started


def node_of_each_subtask(repo: Path) -> dict[str, str]:
    logs = plan_path(repo).parent / "logs"
    found = {log.stem: NODE.findall(log.read_text()) for log in logs.glob("s*.log")}
    return {sid: nodes[-1] for sid, nodes in found.items() if nodes}


def cpus_of_nodes(cluster: RayCluster) -> dict[str, int]:
    """Each live node's id and CPUs, as Ray reports them."""
    done = cluster.namespace.run(sys.executable, "-c", NODES, cluster.address, env=cluster.env,
                                 timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {node: int(cpus) for node, cpus in json.loads(done.stdout.splitlines()[-1]).items()}


NODES = """\
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
print(json.dumps({n["NodeID"]: n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]}))
"""


def test_a_plain_cluster_spreads_the_subtasks_and_each_node_runs_at_most_its_cpus(
        plain_cluster: RayCluster, repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, EIGHT, parallel=True)))
    done = plain_cluster.namespace.run(
        *ORCHESTRATE, "build", SPEC, "--max-parallel", "8", "--agent-command",
        command(recorder, "--sleep", "*=2"), env=coordinator_env(plain_cluster), cwd=repo,
        timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses(repo) == dict.fromkeys(EIGHT, "completed")
    assert merges_per_subtask(repo) == Counter(dict.fromkeys(EIGHT, 1))
    placed = node_of_each_subtask(repo)
    assert sorted(placed) == EIGHT
    by_node: dict[str, list[str]] = {}
    for sid, node in placed.items():
        by_node.setdefault(node, []).append(sid)
    assert len(by_node) == 2, by_node
    peaks = {node: peak_concurrency(e for sid in sids for e in recorder.events(subtask=sid))
             for node, sids in by_node.items()}
    cpus = cpus_of_nodes(plain_cluster)
    assert sorted(cpus.values()) == sorted(CPUS)
    assert all(peak <= cpus[node] for node, peak in peaks.items()), (peaks, cpus)
    assert max(peaks.values()) == max(CPUS)  # the 2-CPU node did run two at once
