"""`--agent claude-code` with the real Claude Code CLI (npm @anthropic-ai/claude-code, installed
by .ci/run into .venv/node) talking to the fake Messages API on 127.0.0.1: its Write tool
creates a file, the orchestrator commits and merges it, and Claude Code's own cost is recorded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.buildkit import INTEGRATION, SPEC, subtasks
from tests.conftest import FAKE_API_KEY, git, phase, plan_of, read_json, run_cli, write_plan
from tests.fake_anthropic import FakeAnthropic, reply, tool

pytestmark = pytest.mark.slow  # the real Claude Code CLI

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "claude"
QUIET = {"DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1",
         "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


def _claude_code() -> Path | None:
    if INSTALLED.exists():
        return INSTALLED
    found = shutil.which("claude")
    return Path(found) if found else None


CLAUDE = _claude_code()


@pytest.mark.skipif(CLAUDE is None, reason="Claude Code is not installed: `npm install --prefix "
                    ".venv/node @anthropic-ai/claude-code` (done by .ci/run) failed or was not run")
def test_real_claude_code_writes_a_file_that_is_merged(repo: Path,
                                                       fake_api: FakeAnthropic) -> None:
    assert CLAUDE is not None
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-cc"])))
    worktree = repo / ".orchestrate" / "worktrees" / SPEC / "sub-cc"
    fake_api.script("sub-cc", [
        reply("Creating the file.", tool("Write", file_path=str(worktree / "hello.txt"),
                                         content="hello from claude code\n")),
        reply("Done."),
    ])
    env = {**QUIET, "PATH": f"{CLAUDE.parent}{os.pathsep}{os.environ['PATH']}",
           "ANTHROPIC_BASE_URL": fake_api.url, "ANTHROPIC_API_KEY": FAKE_API_KEY}
    done = run_cli(repo, "build", "001", "--agent", "claude-code", "--model",
                   "claude-sonnet-5-5", "--timeout", "240", env=env, check=None)
    log = (plan_path.parent / "logs" / "sub-cc.log").read_text(errors="replace")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log[-3000:]}"
    assert fake_api.problems == []
    [first, *_] = fake_api.bodies("sub-cc")
    assert first["model"] == "claude-sonnet-5-5"
    assert "sub-cc" in str(first["messages"][0])  # the prompt reached it on stdin
    assert git(repo, "show", f"{INTEGRATION}:hello.txt") == "hello from claude code"
    record = subtasks(repo)["sub-cc"]
    assert record["status"] == "completed"
    assert record["orchestrate"]["cost_usd"] > 0  # Claude Code's own total_cost_usd
    assert record["orchestrate"]["usage"]["input_tokens"] >= 200
    assert read_json(plan_path)["orchestrate"]["cost_usd"] == record["orchestrate"]["cost_usd"]
    assert FAKE_API_KEY not in log
