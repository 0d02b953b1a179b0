"""Agents that try to escape their worktree, in one real build with `--sandbox bwrap` (slow tier:
one build of 14 sandboxed agents at once). Each escape has its own test: the escape failed,
nothing outside the worktree changed (the user's checkout, the sibling worktree, $HOME, refs,
.git, the plan, processes), and the escaping agent's own work was committed and merged."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.buildkit import INTEGRATION, SPEC
from tests.conftest import PINNED_ENV, commit_all, git, phase, plan_of, run_cli, write_plan
from tests.sandbox_support import needs_bwrap

pytestmark = [pytest.mark.slow, needs_bwrap]

ESCAPEE = Path(__file__).resolve().parents[1] / "agents" / "escapee.py"
ESCAPES = ("checkout", "sibling", "deletes", "secrets", "hooks", "excludes", "stash", "refs",
           "plan", "lingers", "network", "unix", "home")
SECRET = "sk-ant-escape-test-5b1f0c-DO-NOT-LEAK"
MARK = "escapee-lingers-8d2a"


@dataclass
class Scene:
    repo: Path
    home: Path
    before: dict[str, object]
    after: dict[str, object]
    stdout: str
    connections: int  # to the host's loopback server
    unix_connections: int
    lingering: list[int]

    def results(self, subtask: str) -> str:
        return git(self.repo, "show", f"{INTEGRATION}:{subtask}.result")

    def assert_own_work_merged(self, subtask: str) -> None:
        assert git(self.repo, "show", f"{INTEGRATION}:{subtask}.txt") == subtask
        plan = json.loads((self.repo / ".orchestrate" / "specs" / SPEC /
                           "implementation_plan.json").read_text())
        [record] = [s for p in plan["phases"] for s in p["subtasks"] if s["id"] == subtask]
        assert record["status"] == "completed"


def _files(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not path.is_socket() and not relative.startswith(skip):
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _snapshot(repo: Path, home: Path) -> dict[str, object]:
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return {
        "checkout": _files(repo, (".git/", ".orchestrate/")),
        "git": {k: v for k, v in _files(repo / ".git").items()
                if k in ("config", "packed-refs", "HEAD") or k.startswith(("hooks/", "info/"))},
        "refs": [r for r in refs if not r.startswith("refs/heads/orchestrate/")],
        "home": _files(home),
    }


def _pending(listener: socket.socket) -> int:
    listener.setblocking(False)
    accepted = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return accepted
        conn.close()
        accepted += 1


def _lingering(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    commit_all(repo, "initial")
    (repo / "README.md").write_text("# demo\nstashed work\n")
    git(repo, "stash", "-q")  # the user's own stash, which an agent could pop
    (repo / "notes.txt").write_text("the user's uncommitted notes\n")
    (repo / ".git" / "info" / "exclude").write_text(".orchestrate/\n")
    return repo


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("escapes")
    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    env = {**PINNED_ENV, "HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
           "ANTHROPIC_API_KEY": SECRET,
           # orchestrate's own record goes beside the home: the home shows what agents did
           "XDG_STATE_HOME": str(root / "state")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the test's own git calls see the same home
    try:
        repo = _make_repo(root)
        with socket.socket() as server, socket.socket(socket.AF_UNIX) as unix_server:
            server.bind(("127.0.0.1", 0))
            server.listen(16)
            unix_path = repo / ".orchestrate" / "agent.sock"
            unix_path.parent.mkdir()
            unix_server.bind(str(unix_path))
            unix_server.listen(16)
            (repo / ".orchestrate" / "escape.json").write_text(json.dumps({
                "secret": SECRET, "port": server.getsockname()[1], "socket": str(unix_path),
                "mark": MARK}))
            write_plan(repo, SPEC, plan_of(phase(1, [f"{e}-1" for e in (*ESCAPES, "victim")],
                                                 parallel=True)))
            before = _snapshot(repo, home)
            done = run_cli(repo, "build", SPEC, "--sandbox", "bwrap", "--max-parallel", "14",
                           "--agent-command", f"python3 {ESCAPEE}",
                           env={**env, "ORCHESTRATE_SANDBOX": "none"}, timeout=240)
            assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
            yield Scene(repo, home, before, _snapshot(repo, home), done.stdout,
                        _pending(server), _pending(unix_server), _lingering(MARK))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _refused(results: str, *whats: str) -> None:
    for what in whats:
        assert f"{what}: refused" in results, results


def test_the_users_checkout_cannot_be_written(scene: Scene) -> None:
    _refused(scene.results("checkout-1"), "write a new file", "change a tracked file")
    assert scene.after["checkout"] == scene.before["checkout"]
    assert (scene.repo / "notes.txt").read_text() == "the user's uncommitted notes\n"
    scene.assert_own_work_merged("checkout-1")


def test_a_running_siblings_worktree_cannot_be_written(scene: Scene) -> None:
    _refused(scene.results("sibling-1"), "plant a file")
    files = git(scene.repo, "ls-tree", "-r", "--name-only", INTEGRATION).splitlines()
    assert "planted.txt" not in files
    scene.assert_own_work_merged("sibling-1")
    scene.assert_own_work_merged("victim-1")


def test_a_siblings_worktree_cannot_be_deleted(scene: Scene) -> None:
    _refused(scene.results("deletes-1"), "delete the sibling's worktree")
    scene.assert_own_work_merged("victim-1")
    scene.assert_own_work_merged("deletes-1")


def test_no_credential_and_no_other_process_is_visible(scene: Scene) -> None:
    results = scene.results("secrets-1")
    assert "credentials found: []" in results
    assert SECRET not in results
    [seen] = [line for line in results.splitlines() if line.startswith("processes seen: ")]
    assert "escapee.py" in seen  # itself, its shell, the proxy's forwarder: nobody else
    assert "orchestrator" not in seen
    assert "subtasks seen: ['secrets-1']" in results
    assert "'HOME'" in results
    for name in ("GIT_CONFIG_GLOBAL", "GIT_AUTHOR_NAME", "ANTHROPIC_API_KEY"):
        assert f"'{name}'" not in results  # nothing of the user's environment but PATH...
    scene.assert_own_work_merged("secrets-1")


def test_hooks_config_filters_and_merge_drivers_cannot_be_planted(scene: Scene) -> None:
    _refused(scene.results("hooks-1"), "plant a hook", "set core.fsmonitor", "add a filter",
             "add a merge driver", "plant attributes")
    assert scene.after["git"] == scene.before["git"]
    scene.assert_own_work_merged("hooks-1")


def test_the_shared_exclude_file_cannot_be_changed(scene: Scene) -> None:
    _refused(scene.results("excludes-1"), "append to info/exclude")
    assert (scene.repo / ".git" / "info" / "exclude").read_text() == ".orchestrate/\n"
    scene.assert_own_work_merged("excludes-1")


def test_the_users_stash_cannot_be_popped_or_dropped(scene: Scene) -> None:
    _refused(scene.results("stash-1"), "pop the user's stash", "drop the user's stash")
    assert any(r.startswith("refs/stash ") for r in scene.after["refs"])  # type: ignore[attr-defined]
    assert scene.after["refs"] == scene.before["refs"]
    scene.assert_own_work_merged("stash-1")


def test_no_ref_moves_and_the_agent_cannot_commit(scene: Scene) -> None:
    _refused(scene.results("refs-1"), "move main", "make a branch", "commit itself")
    assert scene.after["refs"] == scene.before["refs"]
    scene.assert_own_work_merged("refs-1")


def test_the_plan_cannot_be_edited(scene: Scene) -> None:
    _refused(scene.results("plan-1"), "edit the plan")
    scene.assert_own_work_merged("plan-1")  # the plan still holds every subtask, completed


def test_nothing_the_agent_started_outlives_its_attempt(scene: Scene) -> None:
    assert "leave a process running: done" in scene.results("lingers-1")
    assert scene.lingering == []
    scene.assert_own_work_merged("lingers-1")


def test_the_network_is_reachable_only_through_the_proxy(scene: Scene) -> None:
    _refused(scene.results("network-1"), "reach the host's loopback", "reach the internet",
             "tunnel to a host not on the list")
    assert scene.connections == 0
    log = (scene.repo / ".orchestrate" / "specs" / SPEC / "logs" / "network-1.log").read_text()
    assert "egress refused: not-on-the-list.example:443" in log
    scene.assert_own_work_merged("network-1")


def test_no_unix_socket_of_the_host_can_be_reached(scene: Scene) -> None:
    _refused(scene.results("unix-1"), "connect to a host Unix socket")
    assert scene.unix_connections == 0
    scene.assert_own_work_merged("unix-1")


def test_the_home_folder_is_private_and_empty(scene: Scene) -> None:
    _refused(scene.results("home-1"), "read ~/.ssh/id_ed25519")
    assert "write into the home: done" in scene.results("home-1")  # into the private one
    assert scene.after["home"] == scene.before["home"]
    scene.assert_own_work_merged("home-1")
