"""`--runner ray` end to end (SPEC 14): a real two-node Ray cluster started inside a network
namespace that has only loopback, a bare repository as the remote (file://), the real
`orchestrate build` as the coordinator in that namespace, and the scripted command agent or the
claude agent against the fake Messages API (also in the namespace) on the workers.

One cluster serves the whole module (Ray takes many seconds to start).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.buildkit import (
    SPEC,
    Recorder,
    agent_command,
    alive,
    merges_per_subtask,
    peak_concurrency,
    plan_path,
    statuses,
    subtasks,
    wait_until,
)
from tests.conftest import (
    FAKE_API_KEY,
    ORCHESTRATE,
    PINNED_ENV,
    commit_files,
    git,
    phase,
    plan_of,
    write_plan,
)
from tests.fake_anthropic import editor, reply

pytestmark = pytest.mark.slow  # a real two-node Ray cluster

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'orchestrate[ray]')")

from tests.ray_cluster import (  # noqa: E402 - only once Ray is known to be there
    DASHBOARD_PORT,
    Namespace,
    NamespaceUnavailable,
    RayCluster,
)

ROOT = Path(__file__).resolve().parents[2]
NODE = re.compile(r"ran as a Ray task on node ([0-9a-f]+)")
SIX = [f"s{n}" for n in range(1, 7)]


def new_namespace() -> Namespace:
    try:
        return Namespace.create()
    except NamespaceUnavailable as exc:
        pytest.skip(f"cannot create a loopback-only network namespace for Ray: {exc}")


@contextlib.contextmanager
def running_cluster(home: Path, code: Path = ROOT, **start: Any) -> Iterator[RayCluster]:
    """A test cluster (RayCluster.start's `start` options) in a network namespace of its own,
    its nodes importing orchestrate from `code`; stopped after."""
    namespace = new_namespace()
    try:
        cluster = RayCluster.start(namespace, node_env(home, code), **start)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        namespace.close()


def node_env(home: Path, code: Path) -> dict[str, str]:
    """The environment of every process of a test cluster: its nodes import orchestrate from
    `code`."""
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ANTHROPIC_", "ORCHESTRATE_", "RAY_"))}
    env.update(PINNED_ENV, HOME=str(home), GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
               PYTHONPATH=str(code))
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with running_cluster(tmp_path_factory.mktemp("ray-home"), nodes=2, slots=2,
                         dashboard=True) as started:
        yield started


@pytest.fixture
def remote(repo: Path, tmp_path: Path) -> Path:
    """A bare repository as the repo's `origin`, reached by the workers with file://."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", f"file://{bare}")
    return bare


def command(recorder: Recorder, *args: str) -> str:
    """The scripted agent's command line; the record file travels in it, not in Ray's env."""
    return f"ORCH_TEST_RECORD={shlex.quote(str(recorder.path))} {agent_command(*args)}"


def coordinator_env(cluster: RayCluster, **extra: str) -> dict[str, str]:
    return {**os.environ, "ORCHESTRATE_RUNNER": "ray",
            "ORCHESTRATE_RAY_ADDRESS": cluster.address, **extra}


def ray_build(cluster: RayCluster, repo: Path, *options: str,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return cluster.namespace.run(*ORCHESTRATE, "build", SPEC, *options,
                                 env=env or coordinator_env(cluster), cwd=repo, timeout=400)


def remote_branches(bare: Path) -> dict[str, str]:
    listing = git(bare, "for-each-ref", "--format=%(refname:short) %(objectname)")
    return dict(line.split() for line in listing.splitlines())


def nodes_in_logs(repo: Path) -> set[str]:
    logs = plan_path(repo).parent / "logs"
    return {node for log in logs.glob("*.log") for node in NODE.findall(log.read_text())}


def test_six_subtasks_run_three_at_a_time_on_both_nodes_and_all_merge(
        cluster: RayCluster, repo: Path, remote: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, SIX, parallel=True)))
    done = ray_build(cluster, repo, "--max-parallel", "3", "--agent-command",
                     command(recorder, "--sleep", "*=3"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses(repo) == dict.fromkeys(SIX, "completed")
    assert merges_per_subtask(repo) == Counter(dict.fromkeys(SIX, 1))
    assert peak_concurrency(recorder.events()) == 3
    assert all(not start["cwd"].startswith(str(repo)) for start in recorder.starts())
    assert len(nodes_in_logs(repo)) == 2
    pushed = remote_branches(remote)
    for sid in SIX:
        assert pushed[f"orchestrate/{SPEC}/{sid}"] == git(repo, "rev-parse",
                                                          f"orchestrate/{SPEC}/{sid}")
        assert git(repo, "show", f"orchestrate/{SPEC}/integration:{sid}.txt") == f"work of {sid}"
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(repo, "status", "--porcelain") == ""


def test_timeout_stops_the_remote_agent_and_its_grandchild_and_pushes_nothing(
        cluster: RayCluster, repo: Path, remote: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["slow"])))
    done = ray_build(cluster, repo, "--timeout", "3", "--retries", "0", "--agent-command",
                     command(recorder, "--grandchild", "*", "--hang", "*"))
    assert done.returncode == 1, done.stdout + done.stderr
    record = subtasks(repo)["slow"]
    assert record["status"] == "failed"
    assert "timed out after 3 s" in record["orchestrate"]["error"]
    pids = recorder.pids()
    assert len(pids) == 2
    wait_until(lambda: not any(map(alive, pids)), 10, "the agent and its grandchild to die")
    assert f"orchestrate/{SPEC}/slow" not in remote_branches(remote)


def test_ctrl_c_cancels_the_ray_tasks_stops_their_agents_and_pushes_nothing(
        cluster: RayCluster, repo: Path, remote: Path, recorder: Recorder,
        tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    output = tmp_path / "build.out"
    build = cluster.namespace.popen(
        *ORCHESTRATE, "build", SPEC, "--agent-command",
        command(recorder, "--grandchild", "*=ignore-term", "--hang", "*"),
        env=coordinator_env(cluster), cwd=repo, output=output)
    try:
        wait_until(lambda: len(recorder.events("child")) == 2, 120, "both agents to start")
        pids = recorder.pids()
        build.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        wait_until(lambda: not any(map(alive, pids)), 10, "the agents and grandchildren to die")
        assert build.wait(timeout=30) == 130, output.read_text()
        assert time.monotonic() - signalled < 20
    finally:
        build.kill()
        build.wait()
    assert statuses(repo) == {"a": "pending", "b": "pending"}
    assert not any(branch.endswith(("/a", "/b")) for branch in remote_branches(remote))


def test_a_killed_worker_fails_the_attempt_and_the_retry_succeeds(
        cluster: RayCluster, repo: Path, remote: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["fragile"])))
    agent = command(recorder)
    hanging = command(recorder, "--hang", "*")
    script = f'if [ "$ORCHESTRATE_ATTEMPT" = 1 ]; then {hanging}; else {agent}; fi'
    build = cluster.namespace.popen(*ORCHESTRATE, "build", SPEC, "--agent-command", script,
                                    env=coordinator_env(cluster), cwd=repo)
    try:
        wait_until(lambda: len(recorder.starts()) == 1, 120, "the first attempt to start")
        worker = ray_worker_of(recorder.starts()[0]["pid"])
        os.kill(worker, signal.SIGKILL)
        assert build.wait(timeout=200) == 0
    finally:
        build.kill()
        build.wait()
    record = subtasks(repo)["fragile"]
    assert record["status"] == "completed"
    assert record["orchestrate"]["attempts"] == 2
    log = (plan_path(repo).parent / "logs" / "fragile.log").read_text()
    assert "the Ray task of attempt 1 failed" in log
    assert [start["env"]["ORCHESTRATE_ATTEMPT"] for start in recorder.starts()] == ["1", "2"]
    assert f"orchestrate/{SPEC}/fragile" in remote_branches(remote)


def ray_worker_of(pid: int) -> int:
    """The Ray worker process (`ray::...`) above the agent process `pid`."""
    while pid > 1:
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::"):
            return pid
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    raise AssertionError("the agent does not run under a Ray worker")


def test_a_branch_pushed_before_the_coordinator_died_is_adopted_on_resume(
        cluster: RayCluster, repo: Path, remote: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["pushed"])))
    agent = command(recorder)
    killed = ray_build(cluster, repo, "--agent-command", agent,
                       env=coordinator_env(cluster, ORCHESTRATE_FAILPOINT="agent-finished"))
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    pushed = remote_branches(remote)[f"orchestrate/{SPEC}/pushed"]
    done = ray_build(cluster, repo, "--agent-command", agent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert recorder.invocations() == Counter({"pushed": 1})
    assert subtasks(repo)["pushed"]["orchestrate"]["head"] == pushed
    assert merges_per_subtask(repo) == Counter({"pushed": 1})
    log = (plan_path(repo).parent / "logs" / "pushed.log").read_text()
    assert f"adopted {pushed[:12]}" in log


def test_a_push_the_remote_refuses_fails_that_subtask_only(
        cluster: RayCluster, repo: Path, remote: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["kept", "refused"], parallel=True)))
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do\n"
                    f'  [ "$ref" = refs/heads/orchestrate/{SPEC}/refused ] && exit 1\n'
                    "done\nexit 0\n")
    hook.chmod(0o755)
    done = ray_build(cluster, repo, "--retries", "0", "--agent-command", command(recorder))
    assert done.returncode == 1, done.stdout + done.stderr
    assert statuses(repo) == {"kept": "completed", "refused": "failed"}
    error = subtasks(repo)["refused"]["orchestrate"]["error"]
    assert f"pushing orchestrate/{SPEC}/refused to the remote failed" in error
    assert merges_per_subtask(repo) == Counter({"kept": 1})
    assert f"orchestrate/{SPEC}/refused" not in remote_branches(remote)


def test_an_integration_branch_that_moved_on_the_remote_is_reported_and_nothing_runs(
        cluster: RayCluster, repo: Path, remote: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    elsewhere = commit_files(repo, git(repo, "rev-parse", "main"), {"x.txt": "someone\n"},
                             "someone else's commit")
    git(repo, "push", "-q", "origin", f"{elsewhere}:refs/heads/orchestrate/{SPEC}/integration")
    done = ray_build(cluster, repo, "--agent-command", command(recorder))
    assert done.returncode == 1, done.stdout + done.stderr
    error = subtasks(repo)["a"]["orchestrate"]["error"]
    assert f"pushing orchestrate/{SPEC}/integration to remote origin failed" in error
    assert f"git push origin --delete orchestrate/{SPEC}/integration" in error
    assert recorder.starts() == []
    assert remote_branches(remote)[f"orchestrate/{SPEC}/integration"] == elsewhere


def test_the_claude_agent_runs_on_ray_and_its_key_stays_out_of_ray(
        cluster: RayCluster, repo: Path, remote: Path, tmp_path: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["sub-alpha"])))
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"api_key": FAKE_API_KEY, "conversations": {"sub-alpha": [
        reply(editor("create", path="greet.py", file_text="print('hi')\n"),
              usage={"input_tokens": 50, "output_tokens": 7}),
        reply("Done.", usage={"input_tokens": 9, "output_tokens": 2})]}}))
    port_file = tmp_path / "port"
    server = cluster.namespace.popen(sys.executable, str(ROOT / "tests" / "fake_anthropic.py"),
                                     "--script", str(script), "--port-file", str(port_file))
    try:
        wait_until(port_file.exists, 30, "the fake Messages API to listen")
        env = coordinator_env(cluster, ANTHROPIC_API_KEY=FAKE_API_KEY,
                              ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port_file.read_text()}")
        done = ray_build(cluster, repo, "--agent", "claude", env=env)
    finally:
        server.terminate()
        server.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    assert git(repo, "show", f"orchestrate/{SPEC}/integration:greet.py") == "print('hi')"
    record = subtasks(repo)["sub-alpha"]
    assert record["orchestrate"]["usage"]["output_tokens"] == 9
    tasks = cluster.namespace.run(str(Path(sys.executable).parent / "ray"), "list", "tasks",
                                  "--detail", "--address",
                                  f"http://127.0.0.1:{DASHBOARD_PORT}", env=cluster.env)
    assert tasks.returncode == 0, tasks.stderr
    assert "run_attempt" in tasks.stdout
    assert FAKE_API_KEY not in tasks.stdout + tasks.stderr
    for folder in (cluster.temp_dir, plan.parent):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and "sockets" not in path.parts:
                assert FAKE_API_KEY.encode() not in path.read_bytes(), path
    assert FAKE_API_KEY not in done.stdout + done.stderr


def test_runner_ray_without_ray_installed_is_refused_untouched(repo: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    before = plan.read_bytes()
    code = ("import sys; sys.modules['ray'] = None; from orchestrator.cli.app import main; "
            "sys.argv = ['orchestrate', *sys.argv[1:]]; main()")
    done = subprocess.run([sys.executable, "-c", code, "build", SPEC, "--runner", "ray",
                           "--agent-command", "true"], cwd=repo, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "pip install 'orchestrate[ray]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert plan.read_bytes() == before
    assert git(repo, "for-each-ref", "refs/heads/orchestrate/") == ""


def test_a_remote_that_is_not_configured_is_refused(repo: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    done = subprocess.run([*ORCHESTRATE, "build", SPEC, "--runner", "ray", "--remote", "nowhere",
                           "--agent-command", "true"], cwd=repo, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "'nowhere' is not a git remote" in done.stderr
    assert "git remote add nowhere" in done.stderr
    assert git(repo, "for-each-ref", "refs/heads/orchestrate/") == ""
    assert "orchestrate" not in json.loads(plan.read_text())


def test_a_ray_address_where_nothing_listens_is_refused_at_once(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    git(repo, "remote", "add", "origin", f"file://{repo}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    done = subprocess.run([*ORCHESTRATE, "build", SPEC, "--runner", "ray", "--ray-address",
                           f"127.0.0.1:{port}", "--agent-command", "true"], cwd=repo,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"ray_address '127.0.0.1:{port}': nothing answers there" in done.stderr
    assert "ray start --head" in done.stderr
    assert git(repo, "for-each-ref", "refs/heads/orchestrate/") == ""


def test_nodes_with_other_orchestrate_code_run_the_coordinators_shipped_code(
        repo: Path, remote: Path, recorder: Recorder, tmp_path: Path) -> None:
    other = tmp_path / "other-code"
    for package in ("orchestrator", "merge"):
        shutil.copytree(ROOT / package, other / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    with (other / "orchestrator" / "__init__.py").open("a") as changed:
        changed.write("# another version of orchestrate\n")
    write_plan(repo, SPEC, plan_of(phase(1, ["shipped"])))
    home = tmp_path / "home-other"
    home.mkdir()
    with running_cluster(home, other, nodes=1, slots=2) as own:
        done = own.namespace.run(*ORCHESTRATE, "build", SPEC, "--agent-command",
                                 command(recorder), env=coordinator_env(own), cwd=repo,
                                 timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    log = (plan_path(repo).parent / "logs" / "shipped.log").read_text()
    found = re.search(r"with orchestrate from (\S+)\]", log)
    assert found, log
    assert not found[1].startswith(str(other))
    assert "runtime_resources" in found[1]
