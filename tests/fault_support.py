"""Helpers for the fault tests: the rogue agent, builds through the real program, what the plan
and the integration branch say, the user's checkout, and a reader that watches the plan."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.conftest import git, read_json, run_cli

ROGUE = Path(__file__).parent / "agents" / "rogue.py"
AGENT = f"{shlex.quote(sys.executable)} {shlex.quote(str(ROGUE))}"
SPEC = "001-demo"
INTEGRATION = f"orchestrate/{SPEC}/integration"
TRAILER = re.compile(r"^Orchestrate-Subtask: (.+)$", re.MULTILINE)


def build(repo: Path, *args: str, spec: str = "001", env: dict[str, str] | None = None,
          check: int | None = None) -> subprocess.CompletedProcess[str]:
    """`orchestrate build SPEC` with the rogue agent."""
    return run_cli(repo, "build", spec, "--agent-command", AGENT, *args, env=env, check=check)


def subtasks(plan_path: Path) -> dict[str, dict[str, Any]]:
    plan = read_json(plan_path)
    return {s["id"]: s for p in plan["phases"] for s in p["subtasks"]}


def statuses(plan_path: Path) -> dict[str, str]:
    return {key: s["status"] for key, s in subtasks(plan_path).items()}


def error_of(plan_path: Path, subtask: str) -> str:
    return str(subtasks(plan_path)[subtask]["orchestrate"].get("error", ""))


def merged_subtasks(repo: Path, branch: str = INTEGRATION) -> Counter[str]:
    """How many merge commits of `branch` carry each `Orchestrate-Subtask:` trailer."""
    log = git(repo, "log", "--merges", "--format=%B", branch)
    return Counter(TRAILER.findall(log))


def tree_of(repo: Path, rev: str = INTEGRATION) -> dict[str, str]:
    """Path -> "mode type" of every entry in `rev`'s tree."""
    listing = git(repo, "ls-tree", "-r", "-z", rev)
    entries = {}
    for record in listing.split("\0"):
        if record:
            info, _, path = record.partition("\t")
            mode, kind, _ = info.split(" ")
            entries[path] = f"{mode} {kind}"
    return entries


def checkout_state(repo: Path) -> tuple[str, ...]:
    """The user's checkout: branch, commit, index and working-tree status (outside
    .orchestrate/, which the tests write plans into), and the index file."""
    index = (repo / ".git" / "index").read_bytes()
    return (git(repo, "symbolic-ref", "-q", "HEAD") if _on_branch(repo) else "detached",
            git(repo, "rev-parse", "HEAD"),
            git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".",
                ":(exclude).orchestrate"),
            str(hash(index)))


def _on_branch(repo: Path) -> bool:
    return subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=repo,
                          capture_output=True, check=False).returncode == 0


class PlanReader:
    """Reads and parses the plan in a loop on a thread until closed; keeps what went wrong."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reads = 0
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PlanReader:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                plan = json.loads(self.path.read_bytes())
                assert isinstance(plan["phases"], list)
            except (OSError, ValueError, KeyError, AssertionError) as exc:
                self.problems.append(f"{type(exc).__name__}: {exc}")
            self.reads += 1
