"""Cost (SPEC 12): Claude Code's JSON result read and recorded per subtask and summed for the
spec; the claude agent's tokens priced from the table or [prices.<model>]; `status` and the
report show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.agents.cost import PRICES, price_of
from orchestrator.settings import Price
from tests.buildkit import SPEC, subtasks
from tests.conftest import (
    FAKE_API_KEY,
    claude_env,
    commit_all,
    phase,
    plan_of,
    read_json,
    run_cli,
    write_plan,
)
from tests.fake_anthropic import FakeAnthropic, editor, reply
from tests.presets_support import claude_result, install_fake_tools

pytestmark = pytest.mark.slow  # real builds with fake agent tools and the fake API

CLAUDE_CODE_TOKENS = {"input_tokens": 1200, "output_tokens": 300,
                      "cache_read_input_tokens": 5000, "cache_creation_input_tokens": 800}


def test_claude_code_cost_and_usage_are_recorded_per_subtask_and_summed(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-a", "sub-b"], parallel=True)))
    tools = install_fake_tools(tmp_path / "bin", names=("claude",))
    env = tools.env(FAKE_CLAUDE_RESULT=claude_result(0.4125, **CLAUDE_CODE_TOKENS))
    done = run_cli(repo, "build", "001", "--agent", "claude-code", env=env, check=0)
    records = subtasks(repo)
    for subtask_id in ("sub-a", "sub-b"):
        assert records[subtask_id]["status"] == "completed"
        assert records[subtask_id]["orchestrate"]["cost_usd"] == 0.4125
        assert records[subtask_id]["orchestrate"]["usage"] == CLAUDE_CODE_TOKENS
    assert read_json(plan_path)["orchestrate"]["cost_usd"] == 0.825
    assert "cost 0.82 USD" in done.stdout or "cost 0.83 USD" in done.stdout
    status = run_cli(repo, "status", "001", check=0).stdout
    assert "cost: 0.83 USD in total" in status or "cost: 0.82 USD in total" in status
    assert status.count("0.41 USD") == 2
    as_json = json.loads(run_cli(repo, "status", "001", "--json", check=0).stdout)
    assert as_json["cost_usd"] == 0.825
    report = run_cli(repo, "report", "001", check=0).stdout
    summary = next(line for line in report.splitlines() if line.startswith("**"))
    assert "Cost 0.82 USD" in summary or "Cost 0.83 USD" in summary
    # a second build with nothing left to do adds nothing
    run_cli(repo, "build", "001", "--agent", "claude-code", "--retry-failed", env=env, check=0)
    assert read_json(plan_path)["orchestrate"]["cost_usd"] == 0.825


def test_error_max_turns_fails_the_attempt_and_every_attempt_is_paid_for(
        repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-a"])))
    tools = install_fake_tools(tmp_path / "bin", names=("claude",))
    result = claude_result(0.25, subtype="error_max_turns", is_error=True, input_tokens=10)
    done = run_cli(repo, "build", "001", "--agent", "claude-code", "--retries", "1",
                   env=tools.env(FAKE_CLAUDE_RESULT=result), check=1)
    record = subtasks(repo)["sub-a"]
    assert record["status"] == "failed"
    assert "error_max_turns" in record["orchestrate"]["error"]
    assert record["orchestrate"]["attempts"] == 2
    assert record["orchestrate"]["cost_usd"] == 0.5
    assert record["orchestrate"]["usage"]["input_tokens"] == 20
    assert read_json(plan_path)["orchestrate"]["cost_usd"] == 0.5
    assert "error_max_turns" in done.stdout


def test_is_error_fails_even_when_claude_code_exits_0(repo: Path, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-a"])))
    tools = install_fake_tools(tmp_path / "bin", names=("claude",))
    result = json.dumps({"type": "result", "subtype": "success", "is_error": True,
                         "result": "API Error: 401 invalid x-api-key", "total_cost_usd": 0})
    run_cli(repo, "build", "001", "--agent", "claude-code", "--retries", "0",
            env=tools.env(FAKE_CLAUDE_RESULT=result), check=1)
    error = subtasks(repo)["sub-a"]["orchestrate"]["error"]
    assert "401 invalid x-api-key" in error


def test_the_claude_agent_prices_its_tokens_with_the_configured_price(
        repo: Path, fake_api: FakeAnthropic) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-a"])))
    (repo / "orchestrate.toml").write_text(
        "[prices.claude-sonnet-5-5]\ninput = 2.0\noutput = 10.0\ncache_read = 0.5\n"
        "cache_write = 4.0\n")
    commit_all(repo, "prices")
    fake_api.script("sub-a", [
        reply(editor("create", path="a.txt", file_text="a\n"),
              usage={"input_tokens": 1000, "output_tokens": 100,
                     "cache_creation_input_tokens": 2000}),
        reply("Done.", usage={"input_tokens": 10, "output_tokens": 50,
                              "cache_read_input_tokens": 2000}),
    ])
    run_cli(repo, "build", "001", "--agent", "claude", env=claude_env(fake_api), check=0)
    # 1010 in x 2 + 150 out x 10 + 2000 cache read x 0.5 + 2000 cache write x 4, per million
    expected = (1010 * 2 + 150 * 10 + 2000 * 0.5 + 2000 * 4) / 1e6
    record = subtasks(repo)["sub-a"]["orchestrate"]
    assert record["cost_usd"] == pytest.approx(expected)
    assert read_json(plan_path)["orchestrate"]["cost_usd"] == pytest.approx(expected)
    assert FAKE_API_KEY not in plan_path.read_text()


def test_the_price_table_finds_a_models_family() -> None:
    assert price_of("claude-sonnet-4-5-20250929", {}) == PRICES["claude-sonnet"]
    assert price_of("claude-opus-4-1-20250805", {}).input == 15.0  # type: ignore[union-attr]
    assert price_of("claude-haiku-4-5", {}).output == 5.0  # type: ignore[union-attr]
    assert price_of("gpt-5", {}) is None
    mine = Price(1, 2, 3, 4)
    assert price_of("claude-sonnet-5-5", {"claude-sonnet-5-5": mine}) is mine


@pytest.mark.parametrize(("toml", "named"), [
    ('[prices.claude-x]\ninput = "cheap"\noutput = 1\n', "[prices.claude-x] key `input`"),
    ("[prices.claude-x]\ninput = 1\n", "missing `output`"),
    ("[prices.claude-x]\ninput = 1\noutput = 2\nbogus = 3\n", "unknown key `bogus`"),
    ("prices = 3\n", "key `prices`"),
    ("budget = -1\n", "key `budget`"),
])
def test_bad_prices_and_budgets_are_refused(repo: Path, toml: str, named: str) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-a"])))
    before = plan_path.read_bytes()
    (repo / "orchestrate.toml").write_text(toml)
    done = run_cli(repo, "build", "001", "--agent-command", "true", check=2)
    assert named in done.stderr
    assert "Traceback" not in done.stderr
    assert plan_path.read_bytes() == before


def test_codex_token_usage_is_recorded_and_no_cost_is_guessed(repo: Path, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-a"])))
    tools = install_fake_tools(tmp_path / "bin", names=("codex",))
    turns = [{"input_tokens": 1000, "cached_input_tokens": 600, "output_tokens": 50},
             {"input_tokens": 2000, "cached_input_tokens": 1500, "output_tokens": 70}]
    run_cli(repo, "build", "001", "--agent", "codex",
            env=tools.env(FAKE_CODEX_TURNS=json.dumps(turns)), check=0)
    record = subtasks(repo)["sub-a"]["orchestrate"]
    assert record["usage"] == {"input_tokens": 900, "cache_read_input_tokens": 2100,
                               "output_tokens": 120}
    assert "cost_usd" not in record
    assert "cost_usd" not in read_json(plan_path)["orchestrate"]
