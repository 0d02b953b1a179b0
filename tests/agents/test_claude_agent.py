"""The claude agent's loop, driven with the real AsyncAnthropic client against the fake API."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from orchestrator.agents.base import AgentResult
from orchestrator.agents.claude import open_claude_agent
from orchestrator.errors import UsageError
from orchestrator.settings import Settings
from tests.claude_support import make_task, run_agent, settings
from tests.conftest import FAKE_API_KEY
from tests.fake_anthropic import FakeAnthropic, bash, editor, error, garbage, reply


async def test_a_multi_turn_session_edits_the_worktree(fake_api: FakeAnthropic,
                                                       tmp_path: Path) -> None:
    fake_api.script("edit-1", [
        reply("I'll create the module.", editor("create", path="pkg/mod.py",
                                                   file_text="def f():\n    return 1\n")),
        reply(editor("str_replace", path="pkg/mod.py", old_str="return 1", new_str="return 2")),
        reply(editor("view", path="pkg/mod.py"), bash("python3 -c 'print(6 * 7)'")),
        reply("Done: f returns 2."),
    ])
    task = make_task(tmp_path, "edit-1")
    result = await run_agent(task)
    assert result.ok, result.error
    assert (task.worktree / "pkg" / "mod.py").read_text() == "def f():\n    return 2\n"
    results = fake_api.tool_results("edit-1")
    assert [r.get("is_error") for r in results] == [False] * 4
    assert "     2\t    return 2" in results[2]["content"]
    assert results[3]["content"].strip() == "42"
    assert "Done: f returns 2." in result.output_tail
    assert fake_api.problems == []


async def test_requests_offer_both_tools_and_cache_the_prefix(fake_api: FakeAnthropic,
                                                              tmp_path: Path) -> None:
    fake_api.script("shape", [reply(bash("true")), reply("ok")])
    assert (await run_agent(make_task(tmp_path, "shape"))).ok
    first, second = fake_api.bodies("shape")
    assert first["model"] == "claude-sonnet-5-5"
    assert first["max_tokens"] == 8192
    assert [(t["type"], t["name"]) for t in first["tools"]] == [
        ("text_editor_20250728", "str_replace_based_edit_tool"), ("bash_20250124", "bash")]
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "do not commit" in first["system"][0]["text"].lower()
    assert first["messages"][0]["content"][0]["text"] == "Subtask shape: do the work."
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert "cache_control" not in second["messages"][0]["content"][0]


async def test_without_bash_the_tool_is_not_offered(fake_api: FakeAnthropic,
                                                    tmp_path: Path) -> None:
    fake_api.script("nobash", [reply(bash("touch made")), reply("ok")])
    task = make_task(tmp_path, "nobash")
    assert (await run_agent(task, settings(bash=False))).ok
    tools = fake_api.bodies("nobash")[0]["tools"]
    assert [t["name"] for t in tools] == ["str_replace_based_edit_tool"]
    [result] = fake_api.tool_results("nobash")
    assert result["is_error"] is True
    assert "unknown tool 'bash'" in result["content"]
    assert not (task.worktree / "made").exists()


async def test_rate_limits_and_server_errors_are_retried(fake_api: FakeAnthropic,
                                                         tmp_path: Path) -> None:
    fake_api.script("retry", [
        error(429, "rate_limit_error"), error(529, "overloaded_error"),
        error(500, "api_error"), reply("finished"),
    ])
    # One SDK retry per call: 429 is retried by the SDK, 529 then ends the first call and the
    # agent's own outer round retries (500, then success from the SDK's retry).
    result = await run_agent(make_task(tmp_path, "retry"), settings(max_retries=1))
    assert result.ok, result.error
    assert len(fake_api.bodies("retry")) == 4


async def test_a_client_error_fails_the_attempt_without_retrying(fake_api: FakeAnthropic,
                                                                 tmp_path: Path) -> None:
    fake_api.script("bad", [error(400, "invalid_request_error", "prompt is too long"),
                            reply("never reached")])
    result = await run_agent(make_task(tmp_path, "bad"))
    assert not result.ok
    assert result.error == "API error 400 invalid_request_error: prompt is too long"
    assert len(fake_api.bodies("bad")) == 1


@pytest.mark.parametrize(("step", "message"), [
    (garbage(), "malformed response from the Messages API (not JSON): '<html>502 Bad"),
    (garbage("oops", content_type="text/plain"), "(not JSON): 'oops'"),
    ({"raw": {"type": "message", "content": "nope", "stop_reason": "end_turn",
              "usage": {"input_tokens": 1, "output_tokens": 1}}}, "`content` is not a list"),
    ({"raw": {"type": "message", "content": [], "stop_reason": "end_turn"}}, "no usage"),
])
async def test_a_malformed_response_fails_with_a_clear_error(
        fake_api: FakeAnthropic, tmp_path: Path, step: dict[str, object], message: str) -> None:
    fake_api.script("junk", [step])
    result = await run_agent(make_task(tmp_path, "junk"))
    assert not result.ok
    assert message in result.error
    assert result.error.startswith("malformed response from the Messages API")


async def test_a_refusal_fails_the_attempt(fake_api: FakeAnthropic, tmp_path: Path) -> None:
    fake_api.script("refuse", [reply("I can't help with that.", stop_reason="refusal",
                                     stop_details={"type": "refusal", "category": "cyber",
                                                   "explanation": "policy"})])
    result = await run_agent(make_task(tmp_path, "refuse"))
    assert not result.ok
    assert result.error == "the model refused the subtask (cyber: policy)"


async def test_max_turns_stops_the_session(fake_api: FakeAnthropic, tmp_path: Path) -> None:
    fake_api.script("loop", [reply(bash("true")) for _ in range(5)])
    result = await run_agent(make_task(tmp_path, "loop"), settings(max_turns=2))
    assert not result.ok
    assert "stopped after 2 turns without finishing" in result.error
    assert "claude.max_turns" in result.error
    assert len(fake_api.bodies("loop")) == 2


async def test_the_token_budget_stops_the_session(fake_api: FakeAnthropic,
                                                  tmp_path: Path) -> None:
    fake_api.script("budget", [reply(bash("true")) for _ in range(5)])
    result = await run_agent(make_task(tmp_path, "budget"), settings(token_budget=250))
    assert not result.ok
    assert result.error.startswith("token budget spent: 360 tokens used, the limit is 250")
    assert len(fake_api.bodies("budget")) == 3


async def test_usage_is_summed_across_turns(fake_api: FakeAnthropic, tmp_path: Path) -> None:
    fake_api.script("usage", [
        reply(bash("true"), usage={"input_tokens": 1000, "output_tokens": 50,
                                   "cache_creation_input_tokens": 900}),
        reply(bash("true"), usage={"input_tokens": 30, "output_tokens": 40,
                                   "cache_read_input_tokens": 900}),
        reply("done", usage={"input_tokens": 7, "output_tokens": 3,
                             "cache_read_input_tokens": 950, "cache_creation_input_tokens": 5}),
    ])
    result = await run_agent(make_task(tmp_path, "usage"))
    assert result.ok
    assert result.usage == {"input_tokens": 1037, "output_tokens": 93,
                            "cache_read_input_tokens": 1850, "cache_creation_input_tokens": 905}


async def test_the_key_never_reaches_the_model_the_log_or_the_result(
        fake_api: FakeAnthropic, tmp_path: Path) -> None:
    fake_api.script("secret", [
        reply(bash("env; echo key=$ANTHROPIC_API_KEY")),
        reply(editor("view", path="/proc/self/environ")),
        error(401, "authentication_error", f"bad key {FAKE_API_KEY}"),
    ])
    task = make_task(tmp_path, "secret")
    result = await run_agent(task)
    assert not result.ok
    env_output = fake_api.tool_results("secret")[0]["content"]
    assert "key=\n" in env_output
    assert "ANTHROPIC_API_KEY" not in env_output
    log = task.log_path.read_text()
    assert "[tool bash] command: env" in log
    for text in (log, result.error, result.output_tail, str(fake_api.requests)):
        assert FAKE_API_KEY not in text
    assert "[REDACTED]" in result.error


async def test_the_transcript_is_appended(fake_api: FakeAnthropic, tmp_path: Path) -> None:
    fake_api.script("log", [reply("Looking.", editor("view", path=".")), reply("All done.")])
    task = make_task(tmp_path, "log", attempt=2)
    task.log_path.parent.mkdir()
    task.log_path.write_text("=== attempt 2 (written by the runner)\n")
    assert (await run_agent(task)).ok
    log = task.log_path.read_text()
    assert log.startswith("=== attempt 2 (written by the runner)\n[claude] attempt 2: model ")
    assert ("[assistant] Looking.\n"
            "[tool str_replace_based_edit_tool] command: view\npath: .\n") in log
    assert "[assistant] All done." in log


async def test_a_missing_key_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY is not set") as caught:
        async with open_claude_agent(Settings()):
            pass
    assert "export ANTHROPIC_API_KEY=" in caught.value.hint


async def test_concurrent_runs_respect_the_capacity_limiter(fake_api: FakeAnthropic,
                                                            tmp_path: Path) -> None:
    fake_api.latency = 0.2
    markers = [f"par-{n}" for n in range(6)]
    for marker in markers:
        fake_api.script(marker, [reply(bash(f"echo {marker} > {marker}.txt")), reply("done")])
    limiter = trio.CapacityLimiter(3)
    results: dict[str, AgentResult] = {}
    async with open_claude_agent(Settings()) as agent:

        async def one(marker: str) -> None:
            (tmp_path / marker).mkdir()
            async with limiter:
                results[marker] = await agent.run(make_task(tmp_path / marker, marker))

        async with trio.open_nursery() as nursery:
            for marker in markers:
                nursery.start_soon(one, marker)
    assert len(results) == 6
    assert all(result.ok for result in results.values())
    assert fake_api.peak_in_flight == 3
    assert (tmp_path / "par-4" / "worktree" / "par-4.txt").read_text() == "par-4\n"


async def test_cancellation_during_a_request_propagates(fake_api: FakeAnthropic,
                                                        tmp_path: Path) -> None:
    fake_api.script("stuck", [{**reply("late"), "delay": 5}])
    started = trio.current_time()
    with trio.move_on_after(0.5) as scope:
        await run_agent(make_task(tmp_path, "stuck"))
    assert scope.cancelled_caught
    assert trio.current_time() - started < 3
