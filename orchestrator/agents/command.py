"""Any command-line agent (Claude Code, Aider, Codex, a script) as a child process group.

The prompt reaches it on stdin (not with config `pty`: then its terminal is a pseudo-terminal
`orchestrate attach` connects to), in ORCHESTRATE_PROMPT and in the file ORCHESTRATE_PROMPT_FILE;
it is never put into a shell command line, so nothing in a plan can reach a shell unquoted.
A preset (orchestrator/presets.py) runs as an argument list without any shell.

Exit 126 or 127 (the shell's "cannot execute" and "command not found") fails the subtask at
once: another attempt would only fail the same way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import trio

from merge import child_env
from orchestrator import names
from orchestrator.agents.base import AgentResult, AgentTask, git_ceiling
from orchestrator.agents.presets import Preset, command_program
from orchestrator.door.orphans import stop_orphaned_agents
from orchestrator.door.processes import run_in_group, run_in_pty

TAIL_BYTES = 4000
RESULT_BYTES = 1024 * 1024  # how much of an attempt's output is searched for a result object
ENV_PROMPT_LIMIT = 100_000  # one environment string may not exceed 128 KiB on Linux
CANNOT_RUN = frozenset({126, 127})


class CommandAgent:
    name = "command"

    def __init__(self, command: str, *, preset: Preset | None = None,
                 model: str | None = None, extra_args: tuple[str, ...] = (),
                 pty: bool = False) -> None:
        self.command = command
        self.pty = pty  # under a pseudo-terminal one can attach to; no prompt on stdin
        self.preset = preset
        self.model = model
        self.extra_args = extra_args
        self.program = preset.program if preset else command_program(command)

    async def run(self, task: AgentTask) -> AgentResult:
        prompt_file = task.log_path.with_suffix(".prompt.md")
        await trio.Path(prompt_file).write_text(task.prompt, encoding="utf-8")
        with task.log_path.open("ab") as log, prompt_file.open("rb") as stdin:
            start = log.tell()
            command, env = self._command_line(task, prompt_file), self._environment(
                task, prompt_file)
            try:
                if self.pty:
                    code = await run_in_pty(command, cwd=task.worktree, output=log, env=env,
                                            keys=names.attach_keys(task.log_path),
                                            confinement=task.confinement)
                else:
                    code = await run_in_group(command, cwd=task.worktree, output=log,
                                              stdin=stdin, env=env, confinement=task.confinement)
            finally:
                with trio.CancelScope(shield=True):  # what escaped the group dies too
                    await stop_orphaned_agents(task.worktree)
                    await trio.to_thread.run_sync(_collect_own_logs, task)
        return self._result(code, task.log_path, start)

    def _command_line(self, task: AgentTask, prompt_file: Path) -> str | list[str]:
        if self.preset is None:
            return self.command
        return self.preset.argv(prompt=task.prompt, prompt_file=str(prompt_file),
                                log_base=str(_own_logs(task)[0] / task.log_path.stem),
                                model=self.model, extra=self.extra_args,
                                sandboxed=task.confinement is not None)

    def _result(self, code: int, log_path: Path, start: int) -> AgentResult:
        tail = read_tail(log_path, start)
        report = None
        if self.preset is not None and self.preset.read_result is not None:
            report = self.preset.read_result(read_tail(log_path, start, RESULT_BYTES))
        usage = dict(report.usage) if report else {}
        cost = report.cost_usd if report else None
        if code in CANNOT_RUN and report is None:
            return AgentResult(ok=False, error=self._cannot_run(code, tail), output_tail=tail,
                               retry=False)
        if report is not None and not report.ok:
            return AgentResult(ok=False, error=report.error, output_tail=tail, usage=usage,
                               cost_usd=cost)
        if code == 0:
            return AgentResult(ok=True, output_tail=tail, usage=usage, cost_usd=cost)
        return AgentResult(ok=False, error=f"agent command exited with code {code}",
                           output_tail=tail, usage=usage, cost_usd=cost)

    def _cannot_run(self, code: int, tail: str) -> str:
        """`command not found: <program>`, with the shell's own words when it said more (the
        program was found and something it ran was not)."""
        what = self.program or self.command
        said = [line.strip() for line in tail.splitlines()
                if "not found" in line or "cannot execute" in line or "ermission denied" in line]
        why = "" if code == 127 else " (exit 126: it cannot be executed)"
        detail = f" ({said[-1][:200]})" if said and self.preset is None else ""
        return f"command not found: {what}{why}{detail}"

    def _environment(self, task: AgentTask, prompt_file: Path) -> dict[str, str]:
        model = {"ORCHESTRATE_MODEL": self.model} if self.model else {}
        resolving = {"ORCHESTRATE_RESOLVING": str(task.resolving)} if task.resolving else {}
        radar = {"ORCHESTRATE_RADAR_FILE": str(task.radar_file)} if task.radar_file else {}
        return child_env({
            **model, **resolving, **radar,
            "ORCHESTRATE_PROMPT": _clip_for_env(task.prompt),
            "ORCHESTRATE_PROMPT_FILE": str(prompt_file),
            "ORCHESTRATE_SPEC": task.spec,
            "ORCHESTRATE_SUBTASK_ID": task.subtask_id,
            "ORCHESTRATE_WORKTREE": str(task.worktree),
            "ORCHESTRATE_BRANCH": task.branch,
            "ORCHESTRATE_PORT": str(task.port),
            "ORCHESTRATE_ATTEMPT": str(task.attempt),
            "GIT_CEILING_DIRECTORIES": git_ceiling(task.worktree)},
            hidden=("ORCHESTRATE_RESOLVING", "ORCHESTRATE_RADAR_FILE"))


OWN_LOGS = ".agent-logs"  # in the sandbox's private home: where a tool's own logs go


def _own_logs(task: AgentTask) -> tuple[Path, Path | None]:
    """Where the tool writes its own log files (aider's chat history), as it sees the folder,
    and the folder on this side to copy them from after the attempt (None: written in place).
    The spec's logs folder is read-only in the sandbox, so there they go to the private home."""
    confined = task.confinement
    if confined is None or confined.home is None:
        return task.log_path.parent, None
    (confined.home / OWN_LOGS).mkdir(exist_ok=True)
    return confined.user_home / OWN_LOGS, confined.home / OWN_LOGS


def _collect_own_logs(task: AgentTask) -> None:
    """Copy the tool's own log files out of the sandbox's private home into the spec's logs."""
    found = _own_logs(task)[1]
    for path in sorted(found.iterdir()) if found is not None and found.is_dir() else ():
        if path.is_file() and not path.is_symlink():
            shutil.copyfile(path, task.log_path.parent / path.name)


def _clip_for_env(prompt: str) -> str:
    prompt = prompt.replace("\0", "\ufffd")  # an environment variable cannot hold a NUL
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
