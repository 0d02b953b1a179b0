"""The plan file as shared state: locked read-modify-write with atomic replace, and the run lock.

Everything here is blocking on purpose. Under trio, call `PlanStore.update` through ONE
`trio.to_thread.run_sync` so the lock is taken and released in the same thread (filelock's
async lock is asyncio-only, and a lock split across thread calls breaks).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from merge import pid_alive
from orchestrator import names
from orchestrator.errors import LockHeld, PlanError, RunFailed
from orchestrator.plan.model import Plan
from orchestrator.plan.parse import load_plan

T = TypeVar("T")
PLAN_FILE = names.PLAN_FILE
LOCK_WAIT_S = 60.0


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PlanStore:
    """Reads and writes one spec's implementation_plan.json."""

    def __init__(self, spec_dir: Path) -> None:
        self.path = spec_dir / PLAN_FILE
        self.lock_path = spec_dir / (PLAN_FILE + ".lock")
        self.writes = 0  # how many times this store replaced the file

    def read(self) -> Plan:
        """The current plan; no lock is needed because writers replace the file atomically."""
        return load_plan(self.path)

    def update(self, change: Callable[[Plan], T]) -> T:
        """Apply `change` to a fresh copy of the plan and write it back, all under the lock.

        The plan is written only if `change` altered it. Raises RunFailed if the plan became
        unreadable or unwritable (another program broke it), so a build can stop cleanly.
        """
        from filelock import FileLock, Timeout  # here: `--help` and `status` never need it

        try:
            with FileLock(self.lock_path, timeout=LOCK_WAIT_S):
                plan = self.read()
                before = plan.dumps()
                result = change(plan)
                after = plan.dumps()
                if after != before:
                    self._replace(after)
                return result
        except Timeout:
            raise RunFailed(f"{self.lock_path}: could not take the plan lock in "
                            f"{LOCK_WAIT_S:.0f} s",
                            "Another program holds it; try again when it is done.") from None
        except PlanError as exc:
            raise RunFailed(f"the plan changed under the run and is no longer usable:\n"
                            f"{exc.message}", "Restore the plan, then run the build again; "
                            "finished branches and worktrees were kept.") from None

    def _replace(self, text: str) -> None:
        folder = self.path.parent
        try:
            mode = self.path.stat().st_mode & 0o777
        except OSError:
            mode = 0o644
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=".implementation_plan.", suffix=".tmp", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                if tmp:
                    os.unlink(tmp)
            raise RunFailed(f"{self.path}: cannot write the plan: {exc.strerror or exc}",
                            "Make the spec folder writable, then run the build again.") from None
        _fsync_dir(folder)
        self.writes += 1


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunLock:
    """One build per spec at a time: a non-blocking flock on `<spec>/.orchestrate-run.lock`.

    The holder's pid is written into the file so a refused run can name it.
    """

    def __init__(self, spec_dir: Path) -> None:
        self.path = spec_dir / names.RUN_LOCK

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise LockHeld(f"another build of this spec is running (pid {self._holder(fd)})",
                               f"Wait for it to finish, or stop it (kill {self._holder(fd)}); "
                               f"lock file: {self.path}") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _holder(fd: int) -> str:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return text or "unknown"


def running_pid(spec_dir: Path) -> str | None:
    """The pid of the build or merge holding the spec's run lock, or None. Never blocks, and
    probes the lock only while the pid recorded in it is alive, so a build starting at that
    instant is not refused because of the probe."""
    try:
        fd = os.open(spec_dir / names.RUN_LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        pid = RunLock._holder(fd)
        if not pid.isdigit() or not pid_alive(int(pid)):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return pid
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)

