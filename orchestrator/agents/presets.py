"""Presets for the common CLI agents (SPEC 12): each tool's documented headless command line as an
argument list, run through the command agent's machinery (process group, timeout, the prompt on
stdin and in ORCHESTRATE_PROMPT_FILE). Nothing from the plan is ever formatted into a shell
string: a preset's command line is a list, and the prompt reaches a tool on stdin, or as a file
path, or (only for a tool that takes it nowhere else) as one argument of its own.

Standard library only, so that `status` stays fast; settings.py lists the names.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

PROMPT_FILE = "{prompt_file}"  # replaced by the path of the file holding the prompt
LOG_BASE = "{log_base}"  # replaced by <spec>/logs/<subtask-id> (for a tool's own history files)
ARGUMENT_LIMIT = 100_000  # one argument may not exceed 128 KiB on Linux
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
              "cache_creation_input_tokens")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
SHELL_WORDS = frozenset({  # builtins and keywords: the shell runs them, not a program on PATH
    "!", "{", "(", ".", ":", "[", "alias", "bg", "break", "builtin", "case", "cd", "command",
    "continue", "echo", "eval", "exec", "exit", "export", "false", "fg", "for", "function",
    "getopts", "hash", "if", "jobs", "kill", "local", "printf", "pwd", "read", "readonly",
    "return", "select", "set", "shift", "source", "test", "time", "times", "trap", "true",
    "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while"})


@dataclass(frozen=True)
class ToolReport:
    """What a tool's own result object says about an attempt."""

    ok: bool
    error: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None


ResultReader = Callable[[str], ToolReport | None]


@dataclass(frozen=True)
class Preset:
    name: str
    program: str
    args: tuple[str, ...]  # after the program; PROMPT_FILE and LOG_BASE are replaced
    model_option: str | None  # how the tool takes --model, None when it has no such option
    tail: tuple[str, ...] = ()  # after agent_args (a positional such as codex's `-`)
    prompt_argument: bool = False  # the tool takes the prompt only as its last argument
    read_result: ResultReader | None = None  # reads the tool's printed result, if documented

    def argv(self, *, prompt: str, prompt_file: str, log_base: str, model: str | None,
             extra: Sequence[str] = ()) -> list[str]:
        words = [self.program, *(arg.replace(PROMPT_FILE, prompt_file).replace(LOG_BASE, log_base)
                                 for arg in self.args)]
        if model and self.model_option:
            words += [self.model_option, model]
        words += [*extra, *self.tail]
        if self.prompt_argument:
            words.append(clip_argument(prompt))
        return words

    def shown(self) -> str:
        """The command line as the README shows it."""
        words = [self.program, *self.args]
        if self.model_option:
            words.append(f"[{self.model_option} MODEL]")
        words += ["[agent_args...]", *self.tail]
        if self.prompt_argument:
            words.append("PROMPT")
        return " ".join(words)


def clip_argument(prompt: str) -> str:
    if len(prompt.encode()) <= ARGUMENT_LIMIT:
        return prompt
    clipped = prompt.encode()[:ARGUMENT_LIMIT].decode(errors="ignore")
    return clipped + "\n[truncated: the whole prompt is in the file ORCHESTRATE_PROMPT_FILE]"


def read_claude_code_result(output: str) -> ToolReport | None:
    """Claude Code's `--output-format json` result object: the last JSON object of type
    `result` it printed. `is_error` and `subtype` decide; `total_cost_usd` and `usage` are
    what the attempt spent. None when it printed no result object."""
    found = last_json_object(output, lambda obj: obj.get("type") == "result")
    if found is None:
        return None
    subtype = str(found.get("subtype") or "")
    cost = found.get("total_cost_usd")
    report = ToolReport(ok=True, usage=_token_counts(found.get("usage")),
                        cost_usd=float(cost) if isinstance(cost, int | float) and
                        not isinstance(cost, bool) and cost >= 0 else None)
    if found.get("is_error") is True or (subtype and subtype != "success"):
        detail = found.get("result") if isinstance(found.get("result"), str) else ""
        errors = found.get("errors")
        if not detail and isinstance(errors, list):
            detail = "; ".join(str(e) for e in errors[:3])
        why = f"Claude Code ended with {subtype or 'an error'}"
        text = f"{why}: {' '.join(str(detail).split())[:300]}" if detail else why
        return ToolReport(ok=False, error=text, usage=report.usage, cost_usd=report.cost_usd)
    return report


def read_codex_usage(output: str) -> ToolReport | None:
    """`codex exec --json` prints one JSON event a line; each `turn.completed` carries the
    turn's `usage` (input_tokens, of them cached_input_tokens, and output_tokens). Their sum,
    in the claude agent's keys; no cost (Codex prints none). The exit status decides."""
    usage = dict.fromkeys(USAGE_KEYS[:3], 0)
    turns = 0
    for line in output.splitlines():
        event = _json_line(line)
        if event is None or event.get("type") != "turn.completed":
            continue
        counts = _token_counts_of(event.get("usage"),
                                  ("input_tokens", "cached_input_tokens", "output_tokens"))
        turns += 1
        cached = counts.get("cached_input_tokens", 0)
        usage["input_tokens"] += max(counts.get("input_tokens", 0) - cached, 0)
        usage["cache_read_input_tokens"] += cached
        usage["output_tokens"] += counts.get("output_tokens", 0)
    return ToolReport(ok=True, usage=usage) if turns else None


def _json_line(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not (line.startswith("{") and line.endswith("}")):
        return None
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def last_json_object(output: str,
                     wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    for line in reversed(output.splitlines()):
        found = _json_line(line)
        if found is not None and wanted(found):
            return found
    return None


def _token_counts(raw: object) -> dict[str, int]:
    return _token_counts_of(raw, USAGE_KEYS)


def _token_counts_of(raw: object, keys: Sequence[str]) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {key: int(raw[key]) for key in keys
            if isinstance(raw.get(key), int) and not isinstance(raw[key], bool) and raw[key] >= 0}


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (
    # Claude Code 2.1: print mode reads the prompt from stdin; acceptEdits because it refuses
    # bypassPermissions as root; the JSON result carries cost and usage
    Preset("claude-code", "claude",
           ("-p", "--output-format", "json", "--permission-mode", "acceptEdits",
            "--allowedTools", "Read,Write,Edit,Bash,Glob,Grep"),
           model_option="--model", read_result=read_claude_code_result),
    # Codex: `exec` is its non-interactive mode, `-` reads the prompt from stdin, and the
    # workspace-write sandbox lets it edit the worktree (it never asks for approval in exec);
    # --json prints its events, whose turn.completed lines carry the token usage
    Preset("codex", "codex",
           ("exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check"),
           model_option="--model", tail=("-",), read_result=read_codex_usage),
    # Aider: one message from a file, then exit; never commit (the orchestrator does), keep
    # its .gitignore edit and chat history out of the worktree, never ask anything
    Preset("aider", "aider",
           ("--message-file", PROMPT_FILE, "--yes-always", "--no-auto-commits",
            "--no-dirty-commits", "--no-gitignore", "--no-check-update", "--analytics-disable",
            "--chat-history-file", f"{LOG_BASE}.aider.chat.md",
            "--input-history-file", f"{LOG_BASE}.aider.input.history"),
           model_option="--model"),
    # Gemini CLI: headless when stdin is not a terminal (the prompt is read from it); --yolo
    # approves its tool calls
    Preset("gemini", "gemini", ("--yolo",), model_option="--model"),
    # opencode: `run` is its non-interactive mode and takes the message only as an argument
    Preset("opencode", "opencode", ("run",), model_option="--model", prompt_argument=True),
)}


def command_program(command: str) -> str:
    """The program an --agent-command runs: its first word that is not a VAR=value
    assignment; empty when the shell decides (a builtin, an expansion, unbalanced quotes)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    for word in words:
        if ASSIGNMENT.match(word):
            continue
        if word in SHELL_WORDS or any(c in word for c in "$`*?[]{}()<>|;&~"):
            return ""
        return word
    return ""
