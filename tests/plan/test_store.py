"""PlanStore and RunLock across real processes: no lost update, no torn read, no stuck lock."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import LockHeld, RunFailed
from orchestrator.plan.model import Plan
from orchestrator.plan.store import PlanStore, RunLock
from tests.conftest import phase, plan_of, write_plan

WORKERS = 8
UPDATES = 100

CONCURRENT_WRITER = """
import sys, time
from pathlib import Path
from orchestrator.plan.store import PlanStore
spec, worker, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
store = PlanStore(spec)
for i in range(count):
    store.update(lambda plan: plan.subtask(worker).write_meta(**{f"k{i:03}": i}))
print(store.writes)
"""

ENDLESS_WRITER = """
import sys
from pathlib import Path
from orchestrator.plan.store import PlanStore
store = PlanStore(Path(sys.argv[1]))
def bump(plan):
    plan.raw["counter"] = plan.raw.get("counter", 0) + 1
store.update(bump)
print("ready", flush=True)
while True:
    store.update(bump)
"""

LOCK_HOLDER = """
import sys
from pathlib import Path
from orchestrator.plan.store import RunLock
with RunLock(Path(sys.argv[1])).hold():
    print("held", flush=True)
    sys.stdin.read()
print("released", flush=True)
"""

LOCK_CONTENDER = """
import sys
from pathlib import Path
from orchestrator.errors import LockHeld
from orchestrator.plan.store import RunLock
try:
    with RunLock(Path(sys.argv[1])).hold():
        print("acquired")
except LockHeld as exc:
    print(exc.exit_code, exc.message)
"""


def _python(script: str, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", script, *args], **kwargs)  # type: ignore[call-overload]


def _spec_dir(tmp_path: Path, plan: dict[str, object]) -> Path:
    return write_plan(tmp_path, "001-store", plan).parent


@pytest.mark.slow
def test_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    workers = [f"w{n}" for n in range(WORKERS)]
    spec = _spec_dir(tmp_path, plan_of(phase(1, workers, parallel=True)))
    go = tmp_path / "go"
    procs = [_python(CONCURRENT_WRITER, str(spec), worker, str(UPDATES), str(go),
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE) for worker in workers]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip() == str(UPDATES)

    plan = PlanStore(spec).read()
    expected = {f"k{i:03}": i for i in range(UPDATES)}
    for worker in workers:
        assert plan.subtask(worker).meta == expected, worker
        assert list(plan.subtask(worker).meta) == list(expected)
    assert plan.subtask("w0").raw["status"] == "pending"


def _big_plan() -> dict[str, object]:
    """Large enough that a write takes a while, so kills land in the middle of one."""
    subtasks = [f"s{n:03}" for n in range(400)]
    plan = plan_of(phase(1, subtasks, parallel=True), feature="x" * 20_000)
    for subtask in plan["phases"][0]["subtasks"]:
        subtask["description"] = "y" * 200
    return plan


@pytest.mark.slow
def test_killed_writer_never_leaves_a_torn_plan_or_a_stuck_lock(tmp_path: Path) -> None:
    spec = _spec_dir(tmp_path, _big_plan())
    path = spec / "implementation_plan.json"
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    last, reads = 0, 0
    for _round in range(20):
        proc = _python(ENDLESS_WRITER, str(spec), stdout=subprocess.PIPE)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + rng.uniform(0.0, 0.25)
        while time.monotonic() < deadline:
            counter = json.loads(path.read_bytes()).get("counter", 0)
            assert counter >= last, f"seed {seed}: counter went back from {last} to {counter}"
            last, reads = counter, reads + 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        last = json.loads(path.read_bytes()).get("counter", 0)

    assert reads > 100, f"seed {seed}: the reader barely ran"
    assert last >= 20, f"seed {seed}: the writer made only {last} updates"
    store = PlanStore(spec)
    started = time.monotonic()
    store.update(lambda plan: plan.raw.__setitem__("counter", plan.raw["counter"] + 1))
    assert time.monotonic() - started < 10, "the plan lock was left held"
    assert store.read().raw["counter"] == last + 1
    assert len(list(store.read().subtasks())) == 400


def test_run_lock_names_the_holder_pid(tmp_path: Path) -> None:
    spec = _spec_dir(tmp_path, plan_of(phase(1, ["a"])))
    holder = _python(LOCK_HOLDER, str(spec), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None
    assert holder.stdin is not None
    try:
        assert holder.stdout.readline() == b"held\n"

        with pytest.raises(LockHeld) as refused, RunLock(spec).hold():
            pytest.fail("a second holder got the run lock")
        assert f"(pid {holder.pid})" in refused.value.message
        assert refused.value.exit_code == 3

        contender = subprocess.run([sys.executable, "-c", LOCK_CONTENDER, str(spec)],
                                   capture_output=True, text=True, timeout=60, check=True)
        assert contender.stdout.strip() == (
            f"3 another build of this spec is running (pid {holder.pid})")
    finally:
        holder.stdin.close()
    assert holder.stdout.readline() == b"released\n"
    assert holder.wait(timeout=30) == 0
    holder.stdout.close()

    with RunLock(spec).hold():
        assert (spec / ".orchestrate-run.lock").read_text() == f"{os.getpid()}\n"


def test_run_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    spec = _spec_dir(tmp_path, plan_of(phase(1, ["a"])))
    holder = _python(LOCK_HOLDER, str(spec), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None
    assert holder.stdin is not None
    assert holder.stdout.readline() == b"held\n"
    holder.kill()
    holder.wait(timeout=30)
    holder.stdin.close()
    holder.stdout.close()
    with RunLock(spec).hold():
        pass


def test_update_that_changes_nothing_does_not_rewrite(tmp_path: Path) -> None:
    spec = _spec_dir(tmp_path, plan_of(phase(1, ["a"])))
    path = spec / "implementation_plan.json"
    compact = '{"phases": [{"phase": 1, "subtasks": [{"id": "a", "status": "todo"}]}]}'
    path.write_text(compact)  # not how we would format it: a rewrite would show
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = path.stat()
    store = PlanStore(spec)

    def same_value(plan: Plan) -> None:
        plan.subtask("a").raw["status"] = "todo"

    assert store.update(lambda plan: plan.subtask("a").status) == "pending"
    store.update(same_value)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert path.read_text() == compact
    assert store.writes == 0


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_update_keeps_the_file_mode(tmp_path: Path, mode: int) -> None:
    spec = _spec_dir(tmp_path, plan_of(phase(1, ["a"])))
    path = spec / "implementation_plan.json"
    path.chmod(mode)
    inode = path.stat().st_ino
    store = PlanStore(spec)
    store.update(lambda plan: plan.subtask("a").write_meta(attempts=1))
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.stat().st_ino != inode  # replaced, not rewritten in place
    assert store.writes == 1
    assert store.read().subtask("a").meta == {"attempts": 1}
    assert not [p.name for p in spec.iterdir() if p.name.endswith(".tmp")]


def test_failing_change_writes_nothing_and_releases_the_lock(tmp_path: Path) -> None:
    spec = _spec_dir(tmp_path, plan_of(phase(1, ["a"])))
    path = spec / "implementation_plan.json"
    before = path.read_bytes()
    store = PlanStore(spec)

    def broken(plan: Plan) -> None:
        plan.subtask("a").raw["status"] = "failed"
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        store.update(broken)
    assert path.read_bytes() == before
    done = subprocess.run([sys.executable, "-c", CONCURRENT_WRITER, str(spec), "a", "1",
                           str(spec)], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.strip() == "1"


def test_update_of_a_plan_broken_by_another_program_is_a_clean_error(tmp_path: Path) -> None:
    spec = _spec_dir(tmp_path, plan_of(phase(1, ["a"])))
    (spec / "implementation_plan.json").write_text('{"phases": [')
    with pytest.raises(RunFailed, match="no longer usable"):
        PlanStore(spec).update(lambda plan: plan.write_meta(base="abc"))
    assert (spec / "implementation_plan.json").read_text() == '{"phases": ['
