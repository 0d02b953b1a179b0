"""The claude agent with `--sandbox bwrap`: its bash tool runs in the sandbox with no credential
at all, so nothing it can print (its environment, every /proc/*/environ it can see) carries the
API key that orchestrate uses for the Messages API outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agents.test_claude_code import CLAUDE, QUIET
from tests.conftest import FAKE_API_KEY, claude_env, git, phase, plan_of, run_cli, write_plan
from tests.fake_anthropic import FakeAnthropic, bash, reply, tool
from tests.sandbox_support import needs_bwrap

pytestmark = [pytest.mark.slow, needs_bwrap]
INTEGRATION = "orchestrate/001-demo/integration"
EVERY_ENVIRON = "for f in /proc/[0-9]*/environ; do echo \"== $f\"; tr '\\0' '\\n' < $f; done"


def test_the_bash_tool_sees_no_api_key_anywhere(repo: Path, fake_api: FakeAnthropic) -> None:
    write_plan(repo, "001-demo", plan_of(phase(1, ["sub-env"])))
    fake_api.script("sub-env", [
        reply(bash("env")),
        reply(bash(EVERY_ENVIRON)),
        reply(bash("echo /proc/[0-9]*")),  # a builtin: no process but bash itself
        reply(bash("echo sandboxed > result.txt")),
        reply("Done."),
    ])
    run_cli(repo, "build", "001", "--agent", "claude", "--sandbox", "bwrap",
            env=claude_env(fake_api), check=0)
    assert fake_api.problems == []
    results = [str(r["content"]) for r in fake_api.tool_results("sub-env")]
    environment, environs, processes = results[0], results[1], results[2]
    assert "PATH=" in environment
    assert "ANTHROPIC" not in environment
    assert "== /proc/1/environ" in environs  # it read what it could see: its own processes
    assert "ANTHROPIC" not in environs
    assert processes.strip() == "/proc/1"  # bash alone: orchestrate and the rest are unseen
    for result in results:
        assert FAKE_API_KEY not in result
    assert git(repo, "show", f"{INTEGRATION}:result.txt") == "sandboxed"


@pytest.mark.skipif(CLAUDE is None, reason="Claude Code is not installed: `npm install --prefix "
                    ".venv/node @anthropic-ai/claude-code` (done by .ci/run) failed or was not run")
def test_real_claude_code_works_inside_the_sandbox_through_the_proxy(
        repo: Path, fake_api: FakeAnthropic) -> None:
    assert CLAUDE is not None
    write_plan(repo, "001-demo", plan_of(phase(1, ["sub-cc"])))
    worktree = repo / ".orchestrate" / "worktrees" / "001-demo" / "sub-cc"
    fake_api.script("sub-cc", [
        reply("Looking around.", tool("Bash", command="env; cat /proc/1/environ | tr '\\0' '\\n'",
                                      description="environment")),
        reply("Creating the file.", tool("Write", file_path=str(worktree / "hello.txt"),
                                         content="hello from a sandbox\n")),
        reply("Done."),
    ])
    env = {**QUIET, "PATH": f"{CLAUDE.parent}{os.pathsep}{os.environ['PATH']}",
           "ANTHROPIC_BASE_URL": fake_api.url, "ANTHROPIC_API_KEY": FAKE_API_KEY}
    done = run_cli(repo, "build", "001", "--agent", "claude-code", "--sandbox", "bwrap",
                   "--timeout", "240", env=env, check=None)
    log = (repo / ".orchestrate" / "specs" / "001-demo" / "logs" / "sub-cc.log").read_text(
        errors="replace")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log[-3000:]}"
    assert fake_api.problems == []
    assert git(repo, "show", f"{INTEGRATION}:hello.txt") == "hello from a sandbox"
    # it reached the fake API (on the host's loopback) only through the build's proxy, and
    # its own Bash saw the key it was given (the preset names it), no other secret
    [looked, *_] = [str(r["content"]) for r in fake_api.tool_results("sub-cc")]
    assert "HTTPS_PROXY=http://127.0.0.1:" in looked
    assert "GIT_CONFIG_GLOBAL" not in looked
    assert FAKE_API_KEY not in log
