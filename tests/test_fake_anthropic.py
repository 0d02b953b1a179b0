"""The fake Messages API itself: it refuses what the real API refuses, and runs standalone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.claude_support import make_task, run_agent
from tests.fake_anthropic import FakeAnthropic, validate

USER = {"role": "user", "content": "go"}
TOOL_TURN = {"role": "assistant", "content": [
    {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}}]}


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": list(messages), **fields}


@pytest.mark.parametrize(("request_body", "problem"), [
    (body(USER, USER), "roles must alternate"),
    (body(TOOL_TURN), "role must be user"),
    (body(USER, TOOL_TURN), "the last message must be a user message"),
    (body(USER, TOOL_TURN, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}), "do not match"),
    (body(USER, TOOL_TURN, USER), "do not match"),
    (body(USER, max_tokens=0), "max_tokens"),
    (body(USER, model=""), "model"),
    (body({"role": "user", "content": [{"type": "text", "text": ""}]}), "non-empty"),
    (body(USER, tools=[{"type": "bash_20250124", "name": "shell"}]), "must be named bash"),
    (body(USER, tools=[{"name": f"t{n}", "input_schema": {}, "cache_control": {"type": "ephemeral"}}
                       for n in range(5)]), "cache_control"),
])
def test_requests_the_real_api_refuses_are_refused(request_body: dict[str, Any],
                                                   problem: str) -> None:
    assert any(problem in found for found in validate(request_body)), validate(request_body)


def test_a_well_formed_tool_exchange_passes() -> None:
    answer = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py", "is_error": False}]}
    assert validate(body(USER, TOOL_TURN, answer)) == []


def test_it_runs_standalone_from_a_script_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    script = {"latency": 0.01, "api_key": "standalone-key",
              "conversations": {"solo": [{"content": [{"type": "text", "text": "hi"}]}]}}
    (tmp_path / "script.json").write_text(json.dumps(script))
    port_file, record = tmp_path / "port", tmp_path / "record.jsonl"
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fake_anthropic.py")),
                               "--script", str(tmp_path / "script.json"),
                               "--port-file", str(port_file), "--record", str(record)])
    try:
        port = _wait_for(port_file)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "standalone-key")
        result = trio.run(run_agent, make_task(tmp_path, "solo"))
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert result.ok, result.error
    [line] = record.read_text().splitlines()
    assert json.loads(line)["marker"] == "solo"
    assert "standalone-key" not in record.read_text()


def _wait_for(port_file: Path) -> int:
    deadline = time.monotonic() + 20
    while not port_file.exists():
        assert time.monotonic() < deadline, "the fake server did not start"
        time.sleep(0.05)
    return int(port_file.read_text())


def test_unscripted_conversations_are_refused() -> None:
    fake = FakeAnthropic().start()
    try:
        status, _, payload = fake.answer(body({"role": "user", "content": "nobody"}), None)
    finally:
        fake.stop()
    assert status == 400
    assert b"no scripted conversation" in payload
