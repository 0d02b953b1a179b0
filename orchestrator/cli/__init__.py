"""The command line: the click group (app.py) and the modules that register its commands."""

from orchestrator.cli import (
    build_commands,
    mcp_command,
    plan_commands,
    review_commands,
    ui_command,
    watch_commands,
)
from orchestrator.cli.app import cli, main

__all__ = ["build_commands", "cli", "main", "mcp_command", "plan_commands", "review_commands",
           "ui_command", "watch_commands"]
