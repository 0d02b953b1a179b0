"""Git under trio: kept for the modules that import it from here; the door is
orchestrator/processes.py."""

from __future__ import annotations

from orchestrator.processes import GitError, GitResult, git, git_out

__all__ = ["GitError", "GitResult", "git", "git_out"]
