"""`orchestrate build --agent claude` end to end: the real program as a child process, talking to
the fake Messages API over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    FAKE_API_KEY,
    claude_env,
    git,
    phase,
    plan_of,
    read_json,
    run_cli,
    write_plan,
)
from tests.fake_anthropic import FakeAnthropic, bash, editor, garbage, reply

pytestmark = pytest.mark.slow  # real builds with the claude agent over HTTP

SPEC = "001-demo"
INTEGRATION = f"orchestrate/{SPEC}/integration"


def subtasks_of(plan_path: Path) -> dict[str, dict[str, Any]]:
    plan = read_json(plan_path)
    return {s["id"]: s for p in plan["phases"] for s in p["subtasks"]}


def assert_key_absent(folder: Path, *outputs: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert FAKE_API_KEY not in path.read_text(errors="replace"), path
    for output in outputs:
        assert FAKE_API_KEY not in output


def test_a_claude_session_is_committed_and_merged(repo: Path, fake_api: FakeAnthropic) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-alpha"])))
    fake_api.script("sub-alpha", [
        reply("Adding the greeting.",
              editor("create", path="src/greet.py", file_text="def greet():\n    return 'hi'\n"),
              usage={"input_tokens": 500, "output_tokens": 60,
                     "cache_creation_input_tokens": 400}),
        reply(editor("str_replace", path="src/app.py", old_str="line 3\n", new_str="line three\n"),
              usage={"input_tokens": 40, "output_tokens": 30, "cache_read_input_tokens": 400}),
        reply(bash("python3 -c 'import sys; sys.path.insert(0, \"src\"); "
                   "import greet; print(greet.greet())'"),
              usage={"input_tokens": 20, "output_tokens": 10, "cache_read_input_tokens": 450}),
        reply("Done.", usage={"input_tokens": 5, "output_tokens": 4,
                              "cache_read_input_tokens": 480}),
    ])
    done = run_cli(repo, "build", "001", "--agent", "claude", env=claude_env(fake_api), check=0)
    assert fake_api.problems == []
    assert fake_api.tool_results("sub-alpha")[2]["content"].strip() == "hi"
    assert git(repo, "show", f"{INTEGRATION}:src/greet.py") == "def greet():\n    return 'hi'"
    assert "line three" in git(repo, "show", f"{INTEGRATION}:src/app.py")
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    subtask = subtasks_of(plan_path)["sub-alpha"]
    assert subtask["status"] == "completed"
    assert subtask["orchestrate"]["usage"] == {
        "input_tokens": 565, "output_tokens": 104, "cache_read_input_tokens": 1330,
        "cache_creation_input_tokens": 400}
    message = git(repo, "log", "-1", "--format=%B", f"orchestrate/{SPEC}/sub-alpha")
    assert "Orchestrate-Agent: claude (claude-sonnet-5-5)" in message
    log = (plan_path.parent / "logs" / "sub-alpha.log").read_text()
    assert "[assistant] Adding the greeting." in log
    prompt = (plan_path.parent / "logs" / "sub-alpha.prompt.md").read_text()
    assert prompt.startswith("# Subtask sub-alpha: Do sub-alpha")
    assert_key_absent(plan_path.parent, done.stdout, done.stderr)


def test_a_garbage_response_fails_only_its_subtask(repo: Path, fake_api: FakeAnthropic) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-alpha", "sub-beta"],
                                                     parallel=True)))
    fake_api.script("sub-alpha", [garbage(), garbage("still broken")])
    fake_api.script("sub-beta", [
        reply(editor("create", path="beta.txt", file_text="beta\n")), reply("Done."),
    ])
    done = run_cli(repo, "build", "001", "--agent", "claude", env=claude_env(fake_api), check=1)
    subtasks = subtasks_of(plan_path)
    assert subtasks["sub-alpha"]["status"] == "failed"
    assert subtasks["sub-alpha"]["orchestrate"]["attempts"] == 2
    assert "malformed response from the Messages API (not JSON)" in (
        subtasks["sub-alpha"]["orchestrate"]["error"])
    assert subtasks["sub-beta"]["status"] == "completed"
    assert git(repo, "show", f"{INTEGRATION}:beta.txt") == "beta"
    assert "malformed response" in done.stdout + done.stderr
    second_prompt = fake_api.bodies("sub-alpha")[1]["messages"][0]["content"][0]["text"]
    assert "The previous attempt failed" in second_prompt
    assert_key_absent(plan_path.parent, done.stdout, done.stderr)


def test_the_build_limits_requests_in_flight(repo: Path, fake_api: FakeAnthropic) -> None:
    ids = [f"sub-{n}" for n in range(6)]
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True)))
    fake_api.latency = 0.5
    for ident in ids:
        fake_api.script(ident, [reply(editor("create", path=f"{ident}.txt", file_text="x\n")),
                                reply("Done.")])
    run_cli(repo, "build", "001", "--agent", "claude", "--max-parallel", "3",
            env=claude_env(fake_api), check=0)
    assert 2 <= fake_api.peak_in_flight <= 3
    assert all(s["status"] == "completed" for s in subtasks_of(plan_path).values())


def test_an_attempt_cut_off_by_its_timeout_still_records_the_tokens_it_spent(
        repo: Path, fake_api: FakeAnthropic) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-alpha"])))
    fake_api.script("sub-alpha", [
        reply(editor("create", path="slow.txt", file_text="started\n"),
              usage={"input_tokens": 300, "output_tokens": 40}),
        reply("Done.", delay=5),  # answered after the attempt's time is up
    ])
    done = run_cli(repo, "build", "001", "--agent", "claude", "--timeout", "2", "--retries", "0",
                   env=claude_env(fake_api), check=1)
    subtask = subtasks_of(plan_path)["sub-alpha"]
    assert subtask["status"] == "failed"
    assert "agent timed out after 2 s" in subtask["orchestrate"]["error"]
    assert subtask["orchestrate"]["usage"] == {
        "input_tokens": 300, "output_tokens": 40, "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0}
    assert "timed out" in done.stdout


def test_a_missing_key_is_refused_before_any_work(repo: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-alpha"])))
    before = plan_path.read_bytes()
    done = run_cli(repo, "build", "001", "--agent", "claude", check=2)
    assert "ANTHROPIC_API_KEY is not set" in done.stderr
    assert git(repo, "branch", "--list", "orchestrate/*") == ""
    assert plan_path.read_bytes() == before


def test_read_only_commands_do_not_import_anthropic(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-alpha"])))
    for args in (["--help"], ["validate", "001"], ["status", "001"]):
        done = run_cli(repo, *args, env={"PYTHONPROFILEIMPORTTIME": "1"}, check=0)
        assert "| orchestrator" in done.stderr
        assert "anthropic" not in done.stderr, args
