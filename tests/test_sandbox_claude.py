"""The claude agent with `--sandbox bwrap`: its bash tool runs in the sandbox with no credential
at all, so nothing it can print (its environment, every /proc/*/environ it can see) carries the
API key that orchestrate uses for the Messages API outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FAKE_API_KEY, claude_env, git, phase, plan_of, run_cli, write_plan
from tests.fake_anthropic import FakeAnthropic, bash, reply
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
