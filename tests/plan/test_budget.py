"""--budget (SPEC 12): once the spec's recorded cost reaches the budget no subtask or attempt
starts; the rest stay pending saying so, and the build exits 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.buildkit import SPEC, subtasks
from tests.conftest import (
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

pytestmark = pytest.mark.slow  # real builds that spend a budget

IDS = [f"sub-{n}" for n in range(1, 7)]
# the fake's default usage is 100 input and 20 output tokens per call; two calls per subtask:
# 200 x 10000 + 40 x 25000 per million = 2 + 1 = 3 USD a subtask
PRICES = "[prices.claude-sonnet-5-5]\ninput = 10000\noutput = 25000\n"


def test_a_budget_stops_new_subtasks_and_leaves_them_pending(
        repo: Path, fake_api: FakeAnthropic, tmp_path: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, IDS[:3]), phase(2, IDS[3:])))
    (repo / "orchestrate.toml").write_text(PRICES)
    commit_all(repo, "prices")
    for ident in IDS:
        fake_api.script(ident, [reply(editor("create", path=f"{ident}.txt", file_text="x\n")),
                                reply("Done.")])
    done = run_cli(repo, "build", "001", "--agent", "claude", "--budget", "10",
                   env=claude_env(fake_api), check=1)
    started = {r["marker"] for r in fake_api.requests}
    assert len(started) <= 4
    records = subtasks(repo)
    assert [records[i]["status"] for i in IDS[:4]] == ["completed"] * 4
    for ident in IDS[4:]:
        assert records[ident]["status"] == "pending"
        assert records[ident]["orchestrate"]["error"] == "budget reached (12.00 of 10.00 USD)"
    assert read_json(plan_path)["orchestrate"]["cost_usd"] == 12.0
    assert "budget reached (12.00 of 10.00 USD)" in done.stdout
    # the recorded cost counts for the next build too, whatever its agent: nothing starts
    tools = install_fake_tools(tmp_path / "bin", names=("claude",))
    again = run_cli(repo, "build", "001", "--agent", "claude-code", "--budget", "10",
                    env=tools.env(), check=1)
    assert "budget reached (12.00 of 10.00 USD)" in again.stdout
    assert tools.calls() == []
    assert [subtasks(repo)[i]["status"] for i in IDS[4:]] == ["pending"] * 2


def test_a_budget_reached_by_a_failed_attempt_stops_the_retries(
        repo: Path, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-1"])))
    tools = install_fake_tools(tmp_path / "bin", names=("claude",))
    failing = claude_result(0.75, subtype="error_max_turns", is_error=True)
    done = run_cli(repo, "build", "001", "--agent", "claude-code", "--retries", "3",
                   "--budget", "1.5", env=tools.env(FAKE_CLAUDE_RESULT=failing), check=1)
    record = subtasks(repo)["sub-1"]
    assert len(tools.calls()) == 2
    assert record["status"] == "pending"
    assert record["orchestrate"]["error"] == "budget reached (1.50 of 1.50 USD)"
    assert record["orchestrate"]["cost_usd"] == 1.5
    assert "budget reached" in done.stdout


def test_in_a_parallel_phase_waiting_subtasks_stay_pending_once_the_budget_is_spent(
        repo: Path, tmp_path: Path) -> None:
    ids = [f"par-{n}" for n in range(1, 6)]
    write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True), phase(2, ["after"])))
    tools = install_fake_tools(tmp_path / "bin", names=("claude",))
    env = tools.env(FAKE_CLAUDE_RESULT=claude_result(1.0))
    done = run_cli(repo, "build", "001", "--agent", "claude-code", "--max-parallel", "2",
                   "--budget", "2", env=env, check=1)
    records = subtasks(repo)
    ran = {c["subtask"] for c in tools.calls()}
    assert 2 <= len(ran) <= 3  # the two first agents, and at most one that started beside them
    assert all(records[i]["status"] == "completed" for i in ran)
    for ident in [*(set(ids) - ran), "after"]:
        assert records[ident]["status"] == "pending"
        assert records[ident]["orchestrate"]["error"].startswith("budget reached (")
    assert "budget reached" in done.stdout
