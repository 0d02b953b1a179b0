"""orchestrate: run an implementation plan's subtasks with coding agents in parallel worktrees."""

__version__ = "0.1.0"
