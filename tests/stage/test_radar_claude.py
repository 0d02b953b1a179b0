"""`--radar tell` with the claude agent: the real program and the real Anthropic client against
the fake Messages API; what the radar saw arrives as a user message at the agent's next turn."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import claude_env, phase, plan_of, read_json, run_cli, write_plan
from tests.fake_anthropic import FakeAnthropic, bash, editor, reply

SPEC = "001-demo"

pytestmark = pytest.mark.slow


def wait_for_radar(plan_path: Path, other: str) -> str:
    """A bash command that returns once the plan records the radar's pair with `other`."""
    needle = shlex.quote(f'"with": "{other}"')
    return (f"for i in $(seq 1200); do grep -q {needle} {shlex.quote(str(plan_path))} "
            "&& exit 0; sleep 0.05; done; exit 1")


def user_texts(body: dict[str, Any]) -> list[str]:
    """The text blocks of the request's last (user) message."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return [content]
    return [block["text"] for block in content if block.get("type") == "text"]


def test_each_claude_agent_hears_of_the_pair_at_its_next_turn(
        repo: Path, fake_api: FakeAnthropic) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-one", "sub-two"], parallel=True)))
    fake_api.script("sub-one", [
        reply(editor("str_replace", path="src/app.py", old_str="line 3\n", new_str="one\n")),
        reply(bash(wait_for_radar(plan_path, "sub-two"))),
        reply("Done."),
    ])
    fake_api.script("sub-two", [
        reply(editor("str_replace", path="src/app.py", old_str="line 4\n", new_str="two\n"),
              delay=1.0),
        reply(bash(wait_for_radar(plan_path, "sub-one"))),
        reply("Done."),
    ])
    run_cli(repo, "build", SPEC, "--agent", "claude", "--radar", "tell", "--radar-interval",
            "0.2", "--resolve", "manual", env=claude_env(fake_api), check=1)
    assert fake_api.problems == []
    for me, other, mine, theirs in (("sub-one", "sub-two", 3, 4), ("sub-two", "sub-one", 4, 3)):
        bodies = fake_api.bodies(me)
        assert len(bodies) == 3
        assert not any("orchestrate radar" in text for body in bodies[:2]
                       for text in user_texts(body))
        told = [text for text in user_texts(bodies[2]) if "orchestrate radar" in text]
        assert len(told) == 1, user_texts(bodies[2])
        assert f"subtask {other} is also changing src/app.py" in told[0]
        assert f"Do {other}" in told[0]
        assert f"your lines there: {mine}; theirs: {theirs}" in told[0]
    report = read_json(plan_path.parent / "conflict_report.json")
    assert report["radar"] == [{"subtasks": ["sub-one", "sub-two"], "path": "src/app.py",
                                "overlapping": True, "outcome": "conflict"}]
