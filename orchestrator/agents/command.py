"""Any command-line agent (Claude Code, Aider, Codex, a script) as a child process group.

The prompt reaches it on stdin, in ORCHESTRATE_PROMPT and in the file ORCHESTRATE_PROMPT_FILE;
it is never put into the command line, so nothing in a plan can reach a shell unquoted.
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

from orchestrator.agents.base import AgentResult, AgentTask, git_ceiling
from orchestrator.orphans import stop_orphaned_agents
from orchestrator.procs import run_in_group

TAIL_BYTES = 4000
ENV_PROMPT_LIMIT = 100_000  # one environment string may not exceed 128 KiB on Linux


class CommandAgent:
    name = "command"

    def __init__(self, command: str) -> None:
        self.command = command

    async def run(self, task: AgentTask) -> AgentResult:
        prompt_file = task.log_path.with_suffix(".prompt.md")
        await trio.Path(prompt_file).write_text(task.prompt, encoding="utf-8")
        with task.log_path.open("ab") as log, prompt_file.open("rb") as stdin:
            start = log.tell()
            try:
                code = await run_in_group(self.command, cwd=task.worktree, output=log,
                                          stdin=stdin, env=self._environment(task, prompt_file))
            finally:
                with trio.CancelScope(shield=True):  # what escaped the group dies too
                    await stop_orphaned_agents(task.worktree)
        tail = read_tail(task.log_path, start)
        if code == 0:
            return AgentResult(ok=True, output_tail=tail)
        return AgentResult(ok=False, error=f"agent command exited with code {code}",
                           output_tail=tail)

    @staticmethod
    def _environment(task: AgentTask, prompt_file: Path) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if k != "ORCHESTRATE_RESOLVING"}
        resolving = {"ORCHESTRATE_RESOLVING": str(task.resolving)} if task.resolving else {}
        return {**inherited, **resolving,
                "ORCHESTRATE_PROMPT": _clip_for_env(task.prompt),
                "ORCHESTRATE_PROMPT_FILE": str(prompt_file),
                "ORCHESTRATE_SPEC": task.spec,
                "ORCHESTRATE_SUBTASK_ID": task.subtask_id,
                "ORCHESTRATE_WORKTREE": str(task.worktree),
                "ORCHESTRATE_BRANCH": task.branch,
                "ORCHESTRATE_PORT": str(task.port),
                "ORCHESTRATE_ATTEMPT": str(task.attempt),
                "GIT_CEILING_DIRECTORIES": git_ceiling(task.worktree)}


def _clip_for_env(prompt: str) -> str:
    if len(prompt.encode()) <= ENV_PROMPT_LIMIT:
        return prompt
    clipped = prompt.encode()[:ENV_PROMPT_LIMIT].decode(errors="ignore")
    return clipped + "\n[truncated: the whole prompt is in ORCHESTRATE_PROMPT_FILE]"


def read_tail(path: Path, start: int, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes written to `path` after offset `start`, as text."""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.seek(max(start, end - limit))
        return handle.read().decode("utf-8", errors="replace")
