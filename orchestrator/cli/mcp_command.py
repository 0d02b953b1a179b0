"""`orchestrate mcp`: serve the Model Context Protocol over stdio (the `mcp` extra)."""

from __future__ import annotations

import click

from orchestrator.cli.app import cli, repo_of
from orchestrator.errors import UsageError


@cli.command(short_help="Serve orchestrate's tools to an agent over MCP (stdio).")
@click.pass_context
def mcp(ctx: click.Context) -> None:
    """Serve the Model Context Protocol on stdin/stdout, so an agent can drive builds:
    `claude mcp add orchestrate -- orchestrate mcp`. Needs the `mcp` extra."""
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"`orchestrate mcp` needs the mcp extra ({exc})",
                         "Install it: pip install 'orchestrate[mcp]'.") from exc
    from orchestrator.face.mcp_tools import serve

    serve(repo_of(ctx))
