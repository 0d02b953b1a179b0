"""`orchestrate mcp` driven by the mcp package's own stdio client, against a real repository
and real command agents (small shell scripts)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import ORCHESTRATE, git, phase, plan_of, read_json, write_plan

mcp = pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.types import CallToolResult, TextContent  # noqa: E402

SPEC = "001-mcp"
TOOLS = {"list_specs", "init_spec", "validate", "status", "build", "logs", "report", "review",
         "merge", "cancel"}


@asynccontextmanager
async def served(repo: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=ORCHESTRATE[0], args=[*ORCHESTRATE[1:], "mcp"],
                                   cwd=repo, env=dict(os.environ))
    with (repo.parent / "mcp-stderr.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    return await session.call_tool(tool, arguments)


def text_of(result: CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, TextContent)
    return first.text


def json_of(result: CallToolResult) -> Any:
    assert not result.is_error, text_of(result)
    return json.loads(text_of(result))


def good_plan() -> dict[str, Any]:
    return plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["c"]))


@pytest.mark.slow
async def test_tools_validate_and_init_spec(repo: Path) -> None:
    write_plan(repo, SPEC, good_plan())
    write_plan(repo, "002-broken", '{"phases": [')
    async with served(repo) as session:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == TOOLS

        valid = json_of(await call(session, "validate", spec="001"))
        assert valid["valid"] is True
        assert valid["spec"] == SPEC
        assert "2 phases" in valid["summary"]
        assert "3 subtasks" in valid["summary"]

        broken = await call(session, "validate", spec="002-broken")
        assert broken.is_error
        assert "orchestrate: error:" in text_of(broken)
        assert "implementation_plan.json" in text_of(broken)
        assert "line 1" in text_of(broken)

        plan_text = json.dumps(plan_of(phase(1, ["x"])), indent=2)
        made = json_of(await call(session, "init_spec", spec="003-new", plan=plan_text))
        assert made["valid"] is True
        assert made["spec"] == "003-new"
        folder = repo / ".orchestrate/specs/003-new"
        assert read_json(folder / "implementation_plan.json") == plan_of(phase(1, ["x"]))
        assert (folder / "spec.md").is_file()

        cyclic = json.dumps(plan_of(phase(1, ["y"], depends_on=[2]),
                                    phase(2, ["z"], depends_on=[1])))
        refused = await call(session, "init_spec", spec="004-cycle", plan=cyclic)
        assert refused.is_error
        assert "cycle" in text_of(refused)
        assert not (repo / ".orchestrate/specs/004-cycle").exists()

        listed_specs = json_of(await call(session, "list_specs"))
        assert {row["spec"]: row["valid"] for row in listed_specs["specs"]} == {
            SPEC: True, "002-broken": False, "003-new": True}

        missing = await call(session, "status", spec="nope")
        assert missing.is_error
        assert "nope" in text_of(missing)


AGENT = ("printf 'working on %s\\n' \"$ORCHESTRATE_SUBTASK_ID\"; "
         "echo \"$ORCHESTRATE_SUBTASK_ID\" > \"$ORCHESTRATE_SUBTASK_ID.txt\"")


async def poll_until(session: ClientSession, done: Any, *, limit: float = 120,
                     **arguments: Any) -> Any:
    with trio.fail_after(limit):
        while True:
            status = json_of(await call(session, "status", spec=SPEC, **arguments))
            if done(status):
                return status
            await trio.sleep(0.3)


def statuses(status: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for phase in status["phases"] for s in phase["subtasks"]}


@pytest.mark.slow
async def test_a_build_runs_in_the_background_and_reports(repo: Path) -> None:
    write_plan(repo, SPEC, good_plan())
    async with served(repo) as session:
        started = json_of(await call(session, "build", spec=SPEC, agent="command",
                                     agent_command=AGENT))
        assert started["state"] == "running"
        assert started["build_id"]

        text, offset = "", 0
        with trio.fail_after(120):
            while "working on a" not in text:
                chunk = json_of(await call(session, "logs", spec=SPEC, subtask="a",
                                           offset=offset))
                assert chunk["next_offset"] >= offset
                text, offset = text + chunk["text"], chunk["next_offset"]
                await trio.sleep(0.2)

        final = await poll_until(session, lambda s: s["build"]["state"] != "running",
                                 build_id=started["build_id"])
        assert final["build"]["exit_code"] == 0
        assert statuses(final) == {"a": "completed", "b": "completed", "c": "completed"}
        finished = json_of(await call(session, "cancel", spec=SPEC,
                                      build_id=started["build_id"]))
        assert finished["state"] == "finished"
        assert finished["exit_code"] == 0
        assert any(e.get("kind") == "build_finished" for e in finished["events"])

        report = json.loads(text_of(await call(session, "report", spec=SPEC)))
        assert report["summary"]["merged"] == 3
        assert report["conflicts"] == []
        merged = json_of(await call(session, "merge", spec=SPEC))  # nothing left to merge
        assert merged["exit_code"] == 0
        assert any(e.get("kind") == "merge_finished" for e in merged["events"])
        review = text_of(await call(session, "review", spec=SPEC))
        assert "a.txt" in review
        plan = await session.read_resource(f"orchestrate://specs/{SPEC}/plan")
        assert '"completed"' in plan.contents[0].text  # type: ignore[union-attr]
    assert git(repo, "show", f"orchestrate/{SPEC}/integration:b.txt") == "b"


@pytest.mark.slow
async def test_cancel_stops_a_build_like_ctrl_c(repo: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    write_plan(repo, SPEC, plan_of(phase(1, ["slow1", "slow2"], parallel=True)))
    agent = f"echo $$ > {pids}/$ORCHESTRATE_SUBTASK_ID; exec sleep 300"
    async with served(repo) as session:
        started = json_of(await call(session, "build", spec=SPEC, agent="command",
                                     agent_command=agent))
        await poll_until(session, lambda s: set(statuses(s).values()) == {"in_progress"})
        agent_pids = await trio.to_thread.run_sync(agent_pids_in, pids)
        second = json_of(await call(session, "build", spec=SPEC, agent="command",
                                    agent_command=agent))
        refused = await poll_until(session, lambda s: s["build"]["state"] != "running",
                                   build_id=second["build_id"])
        assert refused["build"]["exit_code"] == 3  # the first build holds the run lock
        assert "orchestrate: error:" in refused["build"]["message"]
        stopped = json_of(await call(session, "cancel", spec=SPEC,
                                     build_id=started["build_id"]))
        assert stopped["state"] == "cancelled"
        assert stopped["exit_code"] == 130
        assert statuses(json_of(await call(session, "status", spec=SPEC))) == {
            "slow1": "pending", "slow2": "pending"}
    assert [pid for pid in agent_pids if alive(pid)] == [], "agents survived the cancel"


def agent_pids_in(folder: Path) -> list[int]:
    """The pids the two agents wrote (they are in_progress, so they started)."""
    import time

    deadline = time.monotonic() + 60
    while len(written := [p for p in folder.iterdir() if p.read_text().strip()]) < 2:
        assert time.monotonic() < deadline, "the agents did not start"
        time.sleep(0.1)
    return [int(p.read_text()) for p in written]


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
