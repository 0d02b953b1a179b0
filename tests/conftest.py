"""Shared fixtures: real throwaway git repositories with pinned identity and dates, an isolated
HOME and git config, and a helper that runs the real `orchestrate` program as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fake_anthropic import FakeAnthropic

if TYPE_CHECKING:
    from tests.buildkit import Build, Launch, Recorder

PINNED_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
}
ORCHESTRATE = [sys.executable, "-m", "orchestrator"]


# the workspace kind every test's builds use: ORCHESTRATE_TEST_WORKSPACE=worktree pytest ...
# runs the suite with plain worktrees (the default, auto, mounts overlays where it can)
TEST_WORKSPACE = os.environ.get("ORCHESTRATE_TEST_WORKSPACE")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own HOME and global git config, pinned identity and dates, and no
    ORCHESTRATE_* or ANTHROPIC_* variables from the developer's shell. Overlay worktrees its
    builds left mounted (kept or failed ones) are unmounted after it."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n"
                                     "[advice]\n\tdetachedHead = false\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    # orchestrate's own record (what it decided, outside the plan) beside the home, not in it:
    # tests that check nothing wrote into the home see only what the agents did
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    for key, value in PINNED_ENV.items():
        monkeypatch.setenv(key, value)
    for key in list(os.environ):
        if key.startswith(("ORCHESTRATE_", "ANTHROPIC_", "GIT_DIR", "GIT_WORK_TREE",
                           "GIT_INDEX_FILE")):
            monkeypatch.delenv(key)
    # agents of the other tests record events and read variables outside their worktree: the
    # sandbox is off unless a test asks for it (--sandbox bwrap beats this variable)
    monkeypatch.setenv("ORCHESTRATE_SANDBOX", "none")
    if TEST_WORKSPACE:
        monkeypatch.setenv("ORCHESTRATE_WORKSPACE", TEST_WORKSPACE)
    yield
    unmount_overlays_under(tmp_path_factory.getbasetemp())


def unmount_overlays_under(folder: Path) -> None:
    from orchestrator.workspace.overlay import unmount_under

    unmount_under(folder)


def git(cwd: Path, *args: str, input: str | None = None) -> str:
    """Run git in `cwd` and return its stripped stdout; fail the test on error."""
    done = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on `main` with one commit (README.md and src/app.py)."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# demo\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    commit_all(path, "initial")
    return path


def write_plan(repo: Path, name: str, plan: dict[str, Any] | str,
               root: str = ".orchestrate/specs") -> Path:
    """Write a spec folder with `plan` (a dict, or raw text) and return the plan's path."""
    folder = repo / root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "implementation_plan.json"
    path.write_text(plan if isinstance(plan, str) else json.dumps(plan, indent=2) + "\n")
    return path


def run_cli(repo: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300, check: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `orchestrate` program (as a child process) in `repo`, under the watchdog
    (tests/watchdog.py): a build still running 30 s after its summary fails the test."""
    from tests.watchdog import run_watched

    full_env = {**os.environ, **(env or {})}
    done = run_watched([*ORCHESTRATE, *args], cwd=repo, env=full_env, timeout=timeout)
    if check is not None:
        assert done.returncode == check, (
            f"exit {done.returncode} != {check}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def plan_of(*phases: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**top, "phases": list(phases)}


def phase(number: int, subtask_ids: Sequence[str], *, parallel: bool = False,
          **fields: Any) -> dict[str, Any]:
    subtasks = [{"id": s, "description": f"Do {s}", "status": "pending"} for s in subtask_ids]
    return {"phase": number, "name": f"Phase {number}", "parallel_safe": parallel, **fields,
            "subtasks": subtasks}


def commit_files(repo: Path, parent: str, files: dict[str, str | bytes | None], message: str,
                 *, branch: str | None = None, parents: Sequence[str] = ()) -> str:
    """Commit `files` (path -> content, None deletes) on top of `parent` with plumbing only,
    so the repository's checkout and index are never touched; optionally point `branch` at it.
    `parents` adds further parents (to make a merge commit)."""
    index = repo / ".git" / f"test-index-{os.getpid()}"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}

    def run(*args: str, data: bytes = b"") -> str:
        done = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True,
                              env=env, check=False)
        assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stderr.decode()}"
        return done.stdout.decode().strip()

    try:
        run("read-tree", parent)
        for path, content in files.items():
            if content is None:
                run("update-index", "--force-remove", "--", path)
                continue
            data = content.encode() if isinstance(content, str) else content
            blob = run("hash-object", "-w", "--stdin", data=data)
            run("update-index", "--add", "--replace", "--cacheinfo", f"100644,{blob},{path}")
        tree = run("write-tree")
    finally:
        index.unlink(missing_ok=True)
    extra = [arg for p in parents for arg in ("-p", p)]
    commit = run("commit-tree", tree, "-p", parent, *extra, data=message.encode())
    if branch:
        run("update-ref", f"refs/heads/{branch}", commit)
    return commit


FAKE_API_KEY = "sk-ant-fake-7f3c9e1d-NEVER-LOG-THIS-KEY"


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """A fake Messages API on 127.0.0.1; ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY point at it."""
    fake = FakeAnthropic(api_key=FAKE_API_KEY).start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_API_KEY)
    yield fake
    fake.stop()


def claude_env(fake: FakeAnthropic) -> dict[str, str]:
    """The environment that points a child `orchestrate` process at the fake API."""
    return {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": FAKE_API_KEY}


@pytest.fixture
def manual_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Conflicts stay with the user (`ORCHESTRATE_RESOLVE=manual`) in every build the test
    spawns, unless it passes --resolve itself."""
    monkeypatch.setenv("ORCHESTRATE_RESOLVE", "manual")


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    """Where the scripted agents (tests/agents/agent.py) record their events: outside the repo.
    Afterwards any process still carrying this test's marker (a test failed) is killed."""
    from tests.buildkit import Recorder, kill_hard, processes_with_env

    found = Recorder(tmp_path / "agent-events.jsonl")
    yield found
    kill_hard(processes_with_env(f"ORCH_TEST_RECORD={found.path}"))


@pytest.fixture
def launch(recorder: Recorder, tmp_path: Path) -> Iterator[Launch]:
    """Start `orchestrate build ARGS` in the background: `launch(repo, *args)`."""
    from tests.buildkit import start_build

    started: list[Build] = []

    def start(repo: Path, *args: str) -> Build:
        build = start_build(repo, *args, env=recorder.env,
                            output=tmp_path / f"build-{len(started)}.out")
        started.append(build)
        return build

    yield start
    for build in started:
        build.stop()
