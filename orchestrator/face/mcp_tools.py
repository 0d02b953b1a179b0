"""The MCP tools and resources of `orchestrate mcp`, over an Orchestra (mcp_server.py).

Only imported when the `mcp` extra is installed. Each tool returns what the matching command
prints with `--json`; an OrchestrateError becomes a tool error carrying the CLI's message.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import trio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from orchestrator.errors import OrchestrateError
from orchestrator.face.mcp_server import Json, Orchestra, error_text

P = ParamSpec("P")
R = TypeVar("R")

INSTRUCTIONS = """\
orchestrate runs an implementation plan's subtasks with coding agents, each in its own git \
worktree and branch, and merges the branches into one integration branch. Create a spec with \
init_spec (a plan in Auto-Claude's implementation_plan.json format), check it with validate, \
start it with build (it runs in the background), poll status and logs, then read report."""


def _tool_errors(func: Callable[P, R]) -> Callable[P, R]:
    @wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except OrchestrateError as exc:
            raise ToolError(error_text(exc)) from exc
    return run


def _async_tool_errors(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @wraps(func)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except OrchestrateError as exc:
            raise ToolError(error_text(exc)) from exc
    return run


def make_server(orchestra: Orchestra) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("orchestrate", instructions=INSTRUCTIONS)
    _reading_tools(server, orchestra)
    _running_tools(server, orchestra)
    _resources(server, orchestra)
    return server


def _reading_tools(server: MCPServer[Any], orchestra: Orchestra) -> None:
    @server.tool()
    @_tool_errors
    def list_specs() -> Json:
        """The specs in this repository with their progress."""
        return orchestra.list_specs()

    @server.tool()
    @_tool_errors
    def init_spec(spec: str, plan: str) -> Json:
        """Create the spec folder `spec` with `plan` (implementation_plan.json as JSON text),
        validated like `validate`; a rejected plan writes nothing."""
        return orchestra.init_spec(spec, plan)

    @server.tool()
    @_tool_errors
    def validate(spec: str) -> Json:
        """Check the spec's plan: the summary and predicted overlaps, or the problems."""
        return orchestra.validate(spec)

    @server.tool()
    @_tool_errors
    def status(spec: str, build_id: str | None = None) -> Json:
        """Phases and subtasks with status, branch, merge result and times; with the
        `build_id` of a build started here, also `build`: its state and exit code."""
        return orchestra.status(spec, build_id)

    @server.tool()
    @_tool_errors
    def logs(spec: str, subtask: str, offset: int = 0) -> Json:
        """A subtask's agent log from byte `offset`: `text` and `next_offset` (to poll)."""
        return orchestra.logs(spec, subtask, offset)

    @server.tool()
    @_tool_errors
    def report(spec: str, format: str = "json") -> str:
        """The conflict report of the last merge stage: format json, md or github."""
        return orchestra.report(spec, format)

    @server.tool()
    @_tool_errors
    def review(spec: str, subtask: str | None = None) -> str:
        """Each subtask branch's commits and diffstat; with `subtask`, its full diff."""
        return orchestra.review(spec, subtask)


def _running_tools(server: MCPServer[Any], orchestra: Orchestra) -> None:
    @server.tool()
    @_async_tool_errors
    async def build(spec: str, max_parallel: int | None = None, agent: str | None = None,
                    agent_command: str | None = None, model: str | None = None,
                    base: str | None = None, timeout: float | None = None,  # noqa: ASYNC109
                    retries: int | None = None, overlap: str | None = None,
                    no_merge: bool = False, retry_failed: bool = False,
                    keep_worktrees: bool = False, check: str | None = None,
                    schedule: str | None = None, budget: float | None = None,
                    resolve: str | None = None, runner: str | None = None) -> Json:
        """Start `orchestrate build SPEC` in the background; returns at once with its
        build_id. Poll status and logs; stop it with cancel. Options as the CLI's."""
        options = {"max_parallel": max_parallel, "agent": agent, "agent_command": agent_command,
                   "model": model, "base": base, "timeout": timeout, "retries": retries,
                   "overlap": overlap, "no_merge": no_merge, "retry_failed": retry_failed,
                   "keep_worktrees": keep_worktrees, "check": check, "schedule": schedule,
                   "budget": budget, "resolve": resolve, "runner": runner}
        return await orchestra.build(spec, options)

    @server.tool()
    @_async_tool_errors
    async def cancel(spec: str, build_id: str) -> Json:
        """Stop a build started with `build` like Ctrl-C (unfinished subtasks return to
        pending); returns its state, exit code and events. On a finished build: the same,
        without stopping anything."""
        return await orchestra.cancel(spec, build_id)

    @server.tool()
    @_async_tool_errors
    async def merge(spec: str, overlap: str | None = None, check: str | None = None) -> Json:
        """Integrate committed-but-unmerged and conflict subtasks (`orchestrate merge`);
        returns its exit code and events."""
        return await orchestra.merge(spec, {"overlap": overlap, "check": check})


def _resources(server: MCPServer[Any], orchestra: Orchestra) -> None:
    @server.resource("orchestrate://specs/{spec}/plan", mime_type="application/json")
    def plan(spec: str) -> str:
        """The spec's implementation_plan.json."""
        return orchestra.spec(spec).plan_path.read_text(encoding="utf-8")

    @server.resource("orchestrate://specs/{spec}/report.json", mime_type="application/json")
    def report_json(spec: str) -> str:
        """The conflict report as JSON."""
        return orchestra.report(spec, "json")

    @server.resource("orchestrate://specs/{spec}/report.md", mime_type="text/markdown")
    def report_md(spec: str) -> str:
        """The conflict report in Markdown, ready for a pull request."""
        return orchestra.report(spec, "md")


def serve(repo: Path) -> None:
    """Serve the tools over stdio until the client closes it."""
    import anyio

    anyio.run(_serve, repo, backend="trio")


async def _serve(repo: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="orchestrate-mcp-") as scratch:
        async with trio.open_nursery() as nursery:
            orchestra = Orchestra(repo, nursery, Path(scratch))
            await make_server(orchestra).run_stdio_async()
            await orchestra.stop_all()
