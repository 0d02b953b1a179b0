"""`--runner ray` with `--sandbox auto`: each worker decides with its own bubblewrap, so a node
whose PATH has no `bwrap` runs its attempts without a sandbox, and the build says which
subtasks those were and why (plan, log, summary, status, report), while the attempts on the
node that has bwrap run inside one.

A two-node cluster of its own (the nodes differ in PATH), in a loopback-only network namespace
like test_ray_runner.py's; every node declares two agent slots, so four subtasks at once put
two on each node.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.buildkit import INTEGRATION, SPEC, plan_path, statuses, subtasks
from tests.conftest import ORCHESTRATE, git, phase, plan_of, write_plan
from tests.sandbox_support import needs_bwrap

pytest.importorskip("ray", reason="Ray is not installed (pip install 'orchestrate[ray]')")

from tests.ray_cluster import RayCluster
from tests.workspace.test_ray_runner import (
    NODE,
    coordinator_env,
    remote,  # noqa: F401 - the fixture
    running_cluster,
)

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.usefixtures("remote")]
FOUR = ["s1", "s2", "s3", "s4"]
# how many processes the agent sees: in a sandbox (a pid namespace of its own) a handful, on a
# Ray node's host all of the cluster's
AGENT = 'sleep 3; ls /proc | grep -c "^[0-9]" > "$ORCHESTRATE_SUBTASK_ID.txt"'
SEEN_IN_SANDBOX = 6


def path_without_bwrap(farm: Path) -> str:
    """The PATH of this process with every folder that holds `bwrap` replaced by a folder of
    links to all its other programs."""
    folders = []
    for number, entry in enumerate(os.environ["PATH"].split(os.pathsep)):
        folder = Path(entry)
        if not (folder / "bwrap").exists():
            folders.append(entry)
            continue
        copy = farm / str(number)
        copy.mkdir(parents=True)
        for program in folder.iterdir():
            if program.name != "bwrap":
                (copy / program.name).symlink_to(program)
        folders.append(str(copy))
    return os.pathsep.join(folders)


@pytest.fixture(scope="module")
def mixed_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """The head has bwrap on its PATH, the second node has none."""
    no_bwrap = path_without_bwrap(tmp_path_factory.mktemp("no-bwrap"))
    with running_cluster(tmp_path_factory.mktemp("ray-home"), nodes=2, slots=2,
                         node_envs={1: {"PATH": no_bwrap}}) as started:
        yield started


def test_subtasks_on_a_worker_without_bwrap_are_named_as_run_without_a_sandbox(
        mixed_cluster: RayCluster, repo: Path) -> None:
    assert shutil.which("bwrap"), "the coordinator and the head node need bwrap"
    write_plan(repo, SPEC, plan_of(phase(1, FOUR, parallel=True)))
    env = coordinator_env(mixed_cluster, ORCHESTRATE_SANDBOX="auto",
                          ORCHESTRATE_SANDBOX_NETWORK="none")
    done = mixed_cluster.namespace.run(*ORCHESTRATE, "build", SPEC, "--max-parallel", "4",
                                       "--agent-command", AGENT, env=env, cwd=repo, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses(repo) == dict.fromkeys(FOUR, "completed")
    logs = plan_path(repo).parent / "logs"
    ran_on = {sid: NODE.findall((logs / f"{sid}.log").read_text())[-1] for sid in FOUR}
    records = {sid: record["orchestrate"] for sid, record in subtasks(repo).items()}
    without = sorted(sid for sid in FOUR if records[sid]["sandbox"] == "none")
    within = sorted(sid for sid in FOUR if records[sid]["sandbox"] == "bwrap")
    assert len(without) == 2, records  # two slots on each node
    assert len(within) == 2, records
    bare = {ran_on[sid] for sid in without}
    assert len(bare) == 1  # one node ran them all, and none of the others
    assert bare.isdisjoint(ran_on[sid] for sid in within)
    node = next(iter(bare))[:12]
    for sid in without:
        assert records[sid]["sandbox_reason"].startswith(
            f"`bwrap` is not on PATH on node {node} (")
        assert "ran without a sandbox" in (logs / f"{sid}.log").read_text()
        assert int(git(repo, "show", f"{INTEGRATION}:{sid}.txt")) > SEEN_IN_SANDBOX
    for sid in within:
        assert "sandbox_reason" not in records[sid]
        assert int(git(repo, "show", f"{INTEGRATION}:{sid}.txt")) <= SEEN_IN_SANDBOX
    said = (f"bwrap ({', '.join(without)} ran without a sandbox: `bwrap` is not on PATH on node "
            f"{node} (")
    summary = [line for line in done.stdout.splitlines() if line.startswith("done in")]
    assert len(summary) == 1, done.stdout
    assert f"; sandbox: {said}" in summary[0]
    status = mixed_cluster.namespace.run(*ORCHESTRATE, "status", SPEC, env=env, cwd=repo)
    assert f"sandbox: {said}" in status.stdout.replace("\n  ", " ")
    report = mixed_cluster.namespace.run(*ORCHESTRATE, "report", SPEC, "--format", "json",
                                         env=env, cwd=repo)
    sandbox = json.loads(report.stdout)["sandbox"]
    assert sandbox["mode"] == "bwrap"
    assert sorted(sandbox["without_sandbox"]) == without
    markdown = mixed_cluster.namespace.run(*ORCHESTRATE, "report", SPEC, env=env, cwd=repo)
    assert f"Sandbox: {said}" in markdown.stdout
