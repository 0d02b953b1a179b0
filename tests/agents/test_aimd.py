"""Rate limits (SPEC 12): a 429 halves the Messages API requests the build keeps in flight;
measured at the fake server, and by the request limit itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from orchestrator.agents.ratelimit import GROW_AFTER, RequestLimit
from tests.buildkit import SPEC, subtasks
from tests.conftest import claude_env, phase, plan_of, run_cli, write_plan
from tests.fake_anthropic import FakeAnthropic, editor, error, reply

pytestmark = pytest.mark.slow  # real builds against a rate-limiting fake API

IDS = [f"sub-{n}" for n in range(1, 7)]


def _script(ident: str) -> list[dict[str, object]]:
    return [reply(editor("create", path=f"{ident}.txt", file_text="x\n"), delay=1.5),
            error(429, "rate_limit_error", "slow down"),
            *(reply(editor("view", path=f"{ident}.txt"), delay=0.3) for _ in range(6)),
            reply("Done.", delay=0.3)]


def test_429s_halve_the_requests_in_flight_and_every_subtask_completes(
        repo: Path, fake_api: FakeAnthropic) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, IDS, parallel=True)))
    for ident in IDS:
        fake_api.script(ident, _script(ident))
    done = run_cli(repo, "build", "001", "--agent", "claude", "--max-parallel", "6", "--json",
                   env=claude_env(fake_api), check=0)
    assert all(s["status"] == "completed" for s in subtasks(repo).values())
    assert fake_api.problems == []
    timeline = fake_api.timeline
    first_429 = min(t for t, kind, _, status in timeline if status == 429)
    last_429 = max(t for t, kind, _, status in timeline if status == 429)
    before = max(n for t, kind, n, _ in timeline if kind == "enter" and t < first_429)
    # the SDK's retries of the rate-limited requests go out in the slots already held;
    # everything that starts after those finished waits for the smaller limit
    after = [n for t, kind, n, _ in timeline if kind == "enter" and t > last_429 + 1.0]
    assert before >= 3
    assert after, "no requests after the rate limit"
    assert max(after) < before
    assert max(after) <= 3
    events = [json.loads(line) for line in done.stdout.splitlines()]
    limits = [e["data"]["limit"] for e in events if e["kind"] == "request_limit"]
    assert limits[:1] == [3]
    assert min(limits) == 1


async def test_the_limit_halves_to_one_and_grows_by_one_per_20_successes() -> None:
    changes: list[int] = []
    limit = RequestLimit(5, lambda n, why: changes.append(n))
    for _ in range(4):
        limit.observe(429)
    assert changes == [2, 1]
    for _ in range(GROW_AFTER - 1):
        limit.observe(200)
    assert limit.limit == 1
    limit.observe(529)  # overloaded: the run of successes starts again
    for _ in range(GROW_AFTER):
        limit.observe(200)
    assert changes == [2, 1, 2]
    for _ in range(GROW_AFTER * 10):
        limit.observe(200)
    assert limit.limit == 5  # never above where it started


async def test_a_request_waits_for_a_free_slot() -> None:
    limit = RequestLimit(2)
    limit.observe(429)
    peak = 0

    async def request() -> None:
        nonlocal peak
        async with limit.slot():
            peak = max(peak, limit.in_flight)
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(request)
    assert peak == 1
