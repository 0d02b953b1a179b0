"""Helpers for the build tests: the scripted agent's command line and records, process checks,
and reads of the plan and the integration branch. Everything observes from outside the program."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ORCHESTRATE, git, run_cli
from tests.watchdog import EXIT_BOUND_S, finished_line, kill_tree, watch

AGENT = Path(__file__).resolve().parent / "agents" / "agent.py"
SPEC = "001-demo"
INTEGRATION = f"orchestrate/{SPEC}/integration"
# Conflicts stay with the user (no agent resolution rounds) where a build supports the choice;
# a build without the setting ignores the variable.
MANUAL_RESOLVE = {"ORCHESTRATE_RESOLVE": "manual"}


def agent_command(*args: str) -> str:
    """The --agent-command that runs tests/agents/agent.py with `args`."""
    return shlex.join([sys.executable, str(AGENT), *args])


@dataclass(frozen=True)
class Recorder:
    """The JSON-lines file every scripted agent appends its start, end and child events to."""

    path: Path

    @property
    def env(self) -> dict[str, str]:
        return {"ORCH_TEST_RECORD": str(self.path)}

    def events(self, kind: str | None = None, subtask: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        found = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        return [e for e in found if (kind is None or e["event"] == kind)
                and (subtask is None or e["id"] == subtask)]

    def starts(self, subtask: str | None = None) -> list[dict[str, Any]]:
        return self.events("start", subtask)

    def invocations(self) -> Counter[str]:
        return Counter(e["id"] for e in self.starts())

    def pids(self) -> set[int]:
        """Every agent and grandchild process the agents reported."""
        events = self.events()
        return ({e["pid"] for e in events} | {e["child"] for e in events if "child" in e})


def build(repo: Path, recorder: Recorder, *agent_args: str, options: tuple[str, ...] = (),
          check: int | None = 0) -> str:
    """Run `orchestrate build` with the scripted agent; return its stdout."""
    done = run_cli(repo, "build", SPEC, *options, "--agent-command", agent_command(*agent_args),
                   env=recorder.env, check=check)
    return done.stdout


def peak_concurrency(events: Iterable[dict[str, Any]]) -> int:
    """The most agents running at one instant, from their own start and end timestamps."""
    edges = sorted((e["t"], 1 if e["event"] == "start" else -1) for e in events
                   if e["event"] in ("start", "end"))
    running = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start (+1)
        running += step
        peak = max(peak, running)
    return peak


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def processes_with_env(marker: str) -> list[int]:
    """Pids of processes whose environment contains `marker` (a unique NAME=VALUE)."""
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0") and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def kill_hard(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


@dataclass
class Build:
    """`orchestrate build` running as a child process we can signal; output goes to a file."""

    process: subprocess.Popen[bytes]
    output: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """Its exit code, under the watchdog: a hang after its summary fails the test."""
        return watch(self.process, self.text, timeout, "build")

    def stop(self) -> None:
        """At the end of the test: one that printed its summary must exit by itself (the
        watchdog's bound); anything else still running is killed with its process tree."""
        if self.process.poll() is None and any(finished_line(line)
                                               for line in self.text().splitlines()):
            self.wait(EXIT_BOUND_S)
        if self.process.poll() is None:
            kill_tree(self.pid)
            self.process.wait()


Launch = Callable[..., Build]


def start_build(repo: Path, *args: str, env: dict[str, str], output: Path) -> Build:
    with output.open("wb") as sink:
        process = subprocess.Popen([*ORCHESTRATE, "build", *args], cwd=repo,
                                   env={**os.environ, **env}, stdout=sink,
                                   stderr=subprocess.STDOUT, process_group=0)
    return Build(process, output)


def plan_path(repo: Path, spec: str = SPEC) -> Path:
    return repo / ".orchestrate" / "specs" / spec / "implementation_plan.json"


def subtasks(repo: Path, spec: str = SPEC) -> dict[str, dict[str, Any]]:
    plan = json.loads(plan_path(repo, spec).read_text())
    return {s["id"]: s for p in plan["phases"] for s in p["subtasks"]}


def statuses(repo: Path, spec: str = SPEC) -> dict[str, str]:
    return {sid: s["status"] for sid, s in subtasks(repo, spec).items()}


def merges_per_subtask(repo: Path, branch: str = INTEGRATION) -> Counter[str]:
    """How many merge commits on `branch` carry each `Orchestrate-Subtask:` trailer."""
    bodies = git(repo, "log", "--merges", "--format=%B%x00", branch)
    return Counter(line.removeprefix("Orchestrate-Subtask:").strip()
                   for body in bodies.split("\0") for line in body.splitlines()
                   if line.startswith("Orchestrate-Subtask:"))


def branch_files(repo: Path, ref: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", ref).splitlines())


def orchestrate_branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)",
               "refs/heads/orchestrate/").splitlines()


def worktree_paths(repo: Path) -> list[str]:
    listing = git(repo, "worktree", "list", "--porcelain")
    return [line.removeprefix("worktree ") for line in listing.splitlines()
            if line.startswith("worktree ")]
