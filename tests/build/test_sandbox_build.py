"""`--sandbox` at the build's level: auto without a working bwrap warns once and builds without
one, `bwrap` without one is exit 2 before anything exists, status and the report say which
sandbox the build had, and the egress proxy lets a listed host through and refuses the rest."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.buildkit import INTEGRATION, SPEC, subtasks
from tests.conftest import ORCHESTRATE, git, phase, plan_of, run_cli, write_plan
from tests.sandbox_support import needs_bwrap

WRITES = f"{sys.executable} -c \"open('done.txt', 'w').write('done')\""


def _broken_bwrap(tmp_path: Path) -> dict[str, str]:
    """A PATH whose first `bwrap` cannot make a namespace (as in a container without them)."""
    folder = tmp_path / "fakebin"
    folder.mkdir()
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_bwrap_that_cannot_work_is_exit_2_before_anything_exists(repo: Path,
                                                                  tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-a"])))
    done = run_cli(repo, "build", SPEC, "--sandbox", "bwrap", "--agent-command", WRITES,
                   env=_broken_bwrap(tmp_path), check=2)
    assert "--sandbox bwrap" in done.stderr
    assert "No permissions to creating new namespace" in done.stderr
    assert "apt-get install -y bubblewrap" in done.stderr
    assert git(repo, "branch", "--list", "orchestrate/*") == ""
    assert not (repo / ".orchestrate" / "worktrees").exists()


def test_auto_without_a_working_bwrap_warns_once_and_builds_without(repo: Path,
                                                                     tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-a", "sub-b"], parallel=True)))
    done = run_cli(repo, "build", SPEC, "--sandbox", "auto", "--agent-command", WRITES,
                   env=_broken_bwrap(tmp_path), check=0)
    warnings = [line for line in done.stdout.splitlines() if "warning: sandbox: none" in line]
    assert len(warnings) == 1, done.stdout
    assert "cannot create a sandbox" in warnings[0]
    assert "apt-get install -y bubblewrap" in warnings[0]
    assert any(line.startswith("done in") and "sandbox: none" in line  # the summary says it
               for line in done.stdout.splitlines())
    status = run_cli(repo, "status", SPEC, check=0).stdout
    assert "sandbox: none\n" in status  # every subtask ran as the build did: none listed
    for record in subtasks(repo).values():  # each attempt's own sandbox, recorded as on Ray
        assert record["orchestrate"]["sandbox"] == "none"
        assert "cannot create a sandbox" in record["orchestrate"]["sandbox_reason"]


def test_a_bad_sandbox_setting_is_refused_naming_its_source(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-a"])))
    done = run_cli(repo, "build", SPEC, "--agent-command", WRITES,
                   env={"ORCHESTRATE_SANDBOX_NETWORK": "everything"}, check=2)
    assert "ORCHESTRATE_SANDBOX_NETWORK" in done.stderr
    (repo / "orchestrate.toml").write_text('sandbox_paths = ["relative/cache"]\n')
    done = run_cli(repo, "build", SPEC, "--agent-command", WRITES, check=2)
    assert "sandbox_paths" in done.stderr


EGRESS_AGENT = r"""
import os, socket, sys
def connect(target):
    host, port = os.environ["HTTPS_PROXY"].removeprefix("http://").rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    answer = conn.recv(4096).decode()
    return conn, answer.splitlines()[0]
conn, line = connect(sys.argv[1])
conn.sendall(b"hello")
reply = conn.recv(100).decode() if " 200 " in line else line
refused = connect("not-listed.example:443")[1]
open("egress.txt", "w").write(f"{reply}\n{refused}\n")
"""


@pytest.mark.slow
@needs_bwrap
def test_a_listed_host_gets_through_the_proxy_and_others_are_refused(repo: Path,
                                                                     tmp_path: Path) -> None:
    agent = repo / ".orchestrate" / "egress_agent.py"  # where the sandbox can read it
    agent.parent.mkdir()
    agent.write_text(EGRESS_AGENT)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(60)
        port = server.getsockname()[1]
        (repo / "orchestrate.toml").write_text(f'sandbox_allow = ["127.0.0.1:{port}"]\n')
        write_plan(repo, SPEC, plan_of(phase(1, ["sub-net"])))
        build = subprocess.Popen(
            [*ORCHESTRATE, "build", SPEC, "--sandbox", "bwrap", "--agent-command",
             f"{sys.executable} {agent} 127.0.0.1:{port}"], cwd=repo, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            conn, _ = server.accept()  # the agent, through the proxy
            with conn:
                conn.sendall(b"echo:" + conn.recv(100))
            output, _ = build.communicate(timeout=120)
        finally:
            build.kill()
    assert build.returncode == 0, output
    reply, refused = git(repo, "show", f"{INTEGRATION}:egress.txt").splitlines()
    assert reply == "echo:hello"
    assert refused.startswith("HTTP/1.1 403")
    log = (repo / ".orchestrate" / "specs" / SPEC / "logs" / "sub-net.log").read_text()
    assert "egress refused: not-listed.example:443" in log
    assert subtasks(repo)["sub-net"]["orchestrate"]["egress_refused"] == 1
    report = json.loads(run_cli(repo, "report", SPEC, "--format", "json", check=0).stdout)
    assert report["sandbox"] == {"mode": "bwrap", "egress_refused": {"sub-net": 1}}
    assert "Egress refused: `sub-net` (1)" in run_cli(repo, "report", SPEC, check=0).stdout
    assert "sandbox: bwrap" in run_cli(repo, "status", SPEC, check=0).stdout


FAKE_AIDER = """#!/bin/sh
# a stand-in for aider: its chat history where --chat-history-file says, its work in the worktree
while [ $# -gt 0 ]; do
  [ "$1" = --chat-history-file ] && history="$2"
  shift
done
echo "chat of $ORCHESTRATE_SUBTASK_ID" > "$history"
echo "history at $history" > done.txt
"""


@pytest.mark.slow
@needs_bwrap
def test_a_tools_own_log_is_copied_out_and_its_program_runs_from_a_masked_path(
        repo: Path, tmp_path: Path) -> None:
    tools = tmp_path / "bin"  # under /tmp, which the sandbox masks: PATH folders stay readable
    tools.mkdir()
    (tools / "aider").write_text(FAKE_AIDER)
    (tools / "aider").chmod(0o755)
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-ai"])))
    run_cli(repo, "build", SPEC, "--agent", "aider", "--sandbox", "bwrap",
            env={"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}, check=0)
    logs = repo / ".orchestrate" / "specs" / SPEC / "logs"
    assert (logs / "sub-ai.aider.chat.md").read_text() == "chat of sub-ai\n"
    assert "history at " in git(repo, "show", f"{INTEGRATION}:done.txt")


def test_presets_turn_off_an_inner_sandbox_that_cannot_nest_in_ours() -> None:
    from orchestrator.agents.presets import PRESETS

    codex = PRESETS["codex"]
    plain = codex.argv(prompt="p", prompt_file="f", log_base="l", model=None)
    inside = codex.argv(prompt="p", prompt_file="f", log_base="l", model=None, sandboxed=True)
    assert plain[plain.index("--sandbox") + 1] == "workspace-write"
    assert inside[inside.index("--sandbox") + 1] == "danger-full-access"
    assert "--no-auto-commits" in PRESETS["aider"].args
    assert "ANTHROPIC_API_KEY" in PRESETS["claude-code"].credentials
    assert "~/.claude" in PRESETS["claude-code"].config_paths


@pytest.mark.slow
@needs_bwrap
def test_the_check_runs_in_the_sandbox_too(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-a"])))
    check = "if touch ../../../../planted-by-check; then exit 1; fi"
    done = run_cli(repo, "build", SPEC, "--sandbox", "bwrap", "--check", check,
                   "--agent-command", WRITES, check=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (repo / "planted-by-check").exists()
    assert git(repo, "show", f"{INTEGRATION}:done.txt") == "done"
