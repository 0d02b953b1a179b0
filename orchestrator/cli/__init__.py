"""The command line: the click group and its commands."""

from orchestrator.cli.app import main

__all__ = ["main"]
