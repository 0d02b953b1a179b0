"""The real Claude Code CLI (installed by .ci/run into .venv/node) adds `orchestrate mcp` with
`claude mcp add` and calls its `status` tool, the model being the fake Messages API scripted to
ask for that call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.test_claude_code import CLAUDE, QUIET
from tests.conftest import FAKE_API_KEY, phase, plan_of, write_plan
from tests.fake_anthropic import FakeAnthropic, reply, tool

pytestmark = pytest.mark.slow  # the real Claude Code CLI
pytest.importorskip("mcp", reason="the mcp extra is not installed")

MARKER = "mcp-status-7c1e"


@pytest.mark.skipif(CLAUDE is None, reason="Claude Code is not installed: `npm install --prefix "
                    ".venv/node @anthropic-ai/claude-code` (done by .ci/run) failed or was not run")
def test_claude_code_calls_status_through_orchestrate_mcp(repo: Path,
                                                          fake_api: FakeAnthropic) -> None:
    assert CLAUDE is not None
    write_plan(repo, "001-mcp", plan_of(phase(1, ["alpha", "beta"], parallel=True)))
    fake_api.script(MARKER, [
        reply("Checking the build.", tool("mcp__orchestrate__status", spec="001")),
        reply("Both subtasks are pending."),
    ])
    path = os.pathsep.join([str(CLAUDE.parent), str(Path(sys.executable).parent),
                            os.environ["PATH"]])
    env = {**os.environ, **QUIET, "PATH": path, "ANTHROPIC_BASE_URL": fake_api.url,
           "ANTHROPIC_API_KEY": FAKE_API_KEY}

    added = subprocess.run([str(CLAUDE), "mcp", "add", "orchestrate", "--", "orchestrate",
                            "mcp"], cwd=repo, env=env, capture_output=True, text=True,
                           check=False, timeout=120, stdin=subprocess.DEVNULL)
    assert added.returncode == 0, added.stdout + added.stderr

    done = subprocess.run([str(CLAUDE), "-p", f"{MARKER}: how is spec 001 doing?",
                           "--model", "claude-sonnet-5-5", "--output-format", "json",
                           "--allowedTools", "mcp__orchestrate__status"],
                          cwd=repo, env=env, capture_output=True, text=True, check=False,
                          timeout=240, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert fake_api.problems == []
    [first, *_] = fake_api.bodies(MARKER)
    assert "mcp__orchestrate__status" in {t.get("name") for t in first.get("tools", [])}
    [result] = fake_api.tool_results(MARKER)
    assert not result.get("is_error"), result
    content = result["content"]
    shown = content if isinstance(content, str) else "".join(
        block.get("text", "") for block in content)
    status = json.loads(shown)
    assert status["spec"] == "001-mcp"
    ids = {s["id"]: s["status"] for p in status["phases"] for s in p["subtasks"]}
    assert ids == {"alpha": "pending", "beta": "pending"}
    assert json.loads(done.stdout)["result"] == "Both subtasks are pending."
