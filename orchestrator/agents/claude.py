"""The claude agent: a tool-use loop on the Anthropic Messages API (the SDK's async client, under
trio). The model edits the worktree through the orchestrator's text editor and bash tools.

Importing this module imports `anthropic` (seconds): the build imports it only when the claude
agent is chosen.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anthropic
import trio

from orchestrator.agents.base import Agent, AgentResult, AgentTask, anthropic_api_key
from orchestrator.agents.claude_api import USAGE_KEYS, ApiFailure, Reply, ToolUse, create_message
from orchestrator.agents.output import clip, redact
from orchestrator.agents.ratelimit import RequestLimit
from orchestrator.agents.tools import Toolbox
from orchestrator.agents.transcript import Transcript
from orchestrator.events import Event, EventKind, Sink
from orchestrator.plan.model import Status
from orchestrator.settings import Settings

SECRET_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
REQUEST_TIMEOUT = 600.0
CACHE = {"type": "ephemeral"}
TAIL_ENTRIES = 6
TAIL_LIMIT = 3000
DONE = frozenset({"end_turn", "stop_sequence"})
GO_ON = frozenset({"tool_use", "max_tokens", "pause_turn"})
SYSTEM_PROMPT = """\
You are a careful software engineer working on one subtask of a larger plan. Your working \
directory is a git worktree checked out on a branch made for this subtask; other engineers work \
on the other subtasks in their own worktrees at the same time.

Rules:
- Work only inside this worktree. Paths may be relative to it or absolute inside it.
- Do not commit, and do not switch, create, reset or delete branches: the orchestrator commits \
what you leave in the worktree and integrates it.
- Use the str_replace_based_edit_tool to read and change files, and bash (when offered) to \
explore, build and run tests. Each bash call runs in a fresh shell in the worktree with a time \
limit; anything it starts in the background is stopped when the call ends.
- Keep changes focused on the subtask; follow the existing code's style and patterns.
- Check your work (run the relevant tests or the subtask's verification command if you can).

When the subtask is done, reply with a short summary of what you changed and stop calling tools.\
"""

MERGE_RULES = """

This time the worktree is in the middle of a merge (a resolution round): the orchestrator ran \
`git merge --no-commit` of the integration branch into your branch, and git left conflict \
markers (<<<<<<<, =======, >>>>>>>) in the files the prompt lists. Resolve them so that both \
sides' work is kept, and remove every marker. You may run `git status`, `git diff`, `git log` \
and `git show` through bash (when offered) to see both sides. Do not commit, and do not abort, \
continue or undo the merge (no `git commit`, `git merge --abort`, `git reset`, `git checkout`, \
`git switch`, `git stash`): the orchestrator checks the files and commits the merge.\
"""


@asynccontextmanager
async def open_claude_agent(settings: Settings, sink: Sink | None = None) -> AsyncIterator[Agent]:
    """One client and one request limit for the whole build, closed at the end. Every response
    the client receives (the SDK's retried ones too) reaches the limit through a hook."""
    key = anthropic_api_key()
    limit = RequestLimit(settings.max_parallel, _announce_limit(sink))

    async def observe(response: Any) -> None:  # an httpx(2) Response of the SDK's client
        limit.observe(int(response.status_code))

    http = anthropic.DefaultAsyncHttpxClient(event_hooks={"response": [observe]})
    client = anthropic.AsyncAnthropic(api_key=key, max_retries=settings.claude.max_retries,
                                      timeout=REQUEST_TIMEOUT, http_client=http)
    async with client:
        yield ClaudeAgent(client, settings, secrets=_secrets(key), limit=limit)


def _announce_limit(sink: Sink | None) -> Callable[[int, str], None] | None:
    if sink is None:
        return None

    def announce(limit: int, why: str) -> None:
        display = f"Messages API: at most {limit} requests in flight"
        sink.emit(Event(EventKind.REQUEST_LIMIT,
                        f"Messages API requests in flight: at most {limit} ({why})",
                        data={"limit": limit, "reason": why, "display": display}))
    return announce


def _secrets(key: str) -> tuple[str, ...]:
    return (key, *(os.environ[name] for name in SECRET_ENV if os.environ.get(name)))


class ClaudeAgent:
    name = "claude"

    def __init__(self, client: anthropic.AsyncAnthropic, settings: Settings, *,
                 secrets: tuple[str, ...] = (), limit: RequestLimit | None = None) -> None:
        self.client = client
        self.settings = settings
        self.secrets = secrets
        self.limit = limit or RequestLimit(settings.max_parallel)

    async def run(self, task: AgentTask) -> AgentResult:
        session = _Session(self, task)
        try:
            error = await session.converse()
        except ApiFailure as exc:
            error = str(exc)
        except OSError as exc:  # the transcript cannot be written
            error = f"cannot write the transcript {task.log_path}: {exc.strerror or exc}"
        if error:
            await session.note(Status.FAILED, error)
        return session.result(error)


class _Session:
    """One attempt: the conversation, its token count and the tail of its output."""

    def __init__(self, agent: ClaudeAgent, task: AgentTask) -> None:
        self.agent = agent
        self.task = task
        self.limits = agent.settings.claude
        self.toolbox = Toolbox(task.worktree, self.limits)
        self.log = Transcript(task.log_path, agent.secrets)
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": task.prompt}]
        self.usage = task.usage
        self.usage.update(dict.fromkeys(USAGE_KEYS, 0))
        self.tail: deque[str] = deque(maxlen=TAIL_ENTRIES)
        self.radar_read = 0  # how much of the task's radar file has been passed on

    async def converse(self) -> str:
        """Empty when the model finished, else why the attempt failed."""
        settings = self.agent.settings
        await self.log.write("claude", f"attempt {self.task.attempt}: model {settings.model}, "
                                       f"worktree {self.task.worktree}")
        await self.log.save_prompt(self.task.prompt)
        for turn in range(1, self.limits.max_turns + 1):
            reply = await create_message(self.agent.client, self._request(), self.agent.limit)
            self._count(reply)
            await self._log_reply(turn, reply)
            if reply.stop_reason in DONE:
                return ""
            problem = self._stop_problem(reply)
            if problem:
                return problem
            await self._answer(reply)
        return (f"stopped after {self.limits.max_turns} turns without finishing "
                "(the limit is claude.max_turns in orchestrate.toml)")

    def _stop_problem(self, reply: Reply) -> str:
        if reply.stop_reason == "refusal":
            detail = f" ({reply.stop_detail})" if reply.stop_detail else ""
            return f"the model refused the subtask{detail}"
        if reply.stop_reason == "model_context_window_exceeded":
            return "the conversation outgrew the model's context window"
        if reply.stop_reason not in GO_ON:
            return f"unexpected stop_reason {reply.stop_reason!r} from the Messages API"
        spent = sum(self.usage.values())
        if spent >= self.limits.token_budget:
            return (f"token budget spent: {spent} tokens used, the limit is "
                    f"{self.limits.token_budget} (claude.token_budget in orchestrate.toml)")
        return ""

    def _request(self) -> dict[str, Any]:
        tools = self.toolbox.definitions()
        tools[-1] = {**tools[-1], "cache_control": CACHE}
        return {"model": self.agent.settings.model, "max_tokens": self.limits.max_tokens,
                "system": [{"type": "text", "cache_control": CACHE, "text": SYSTEM_PROMPT
                            + (MERGE_RULES if self.task.resolving else "")}],
                "tools": tools, "messages": _with_cache_point(self.messages)}

    def _count(self, reply: Reply) -> None:
        for key, value in reply.usage.items():
            self.usage[key] += value

    async def _answer(self, reply: Reply) -> None:
        content = reply.content or [{"type": "text", "text": "(no content)"}]
        self.messages.append({"role": "assistant", "content": content})
        if not reply.tool_uses:
            why = ("Your reply was cut off by the max_tokens limit. Continue, in smaller steps."
                   if reply.stop_reason == "max_tokens" else "Continue.")
            blocks: list[dict[str, Any]] = [{"type": "text", "text": why}]
        else:
            blocks = [await self._run_tool(use) for use in reply.tool_uses]
        news = await self._radar_news()
        if news:
            blocks.append({"type": "text", "text": news})
        plain = not reply.tool_uses and not news  # just "Continue.", as a plain string
        self.messages.append({"role": "user", "content": blocks[0]["text"] if plain else blocks})

    async def _radar_news(self) -> str:
        """What the conflict radar wrote to the task's radar file since the last turn."""
        if self.task.radar_file is None:
            return ""
        try:
            data = await trio.Path(self.task.radar_file).read_bytes()
        except FileNotFoundError:
            return ""
        news = data[self.radar_read:]
        if not news.endswith(b"\n\n"):  # a note being written: take it at the next turn
            news = news[:news.rfind(b"\n\n") + 2] if b"\n\n" in news else b""
        self.radar_read += len(news)
        text = news.decode("utf-8", errors="replace").strip()
        if text:
            await self.log.write("radar", text)
        return text

    async def _run_tool(self, use: ToolUse) -> dict[str, Any]:
        await self.log.write(f"tool {use.name}", _show_input(use.input))
        outcome = await self.toolbox.call(use.name, use.input)
        label = "tool error" if outcome.is_error else "tool result"
        await self.log.write(label, outcome.text)
        self.tail.append(f"[{label}] {outcome.text}")
        return {"type": "tool_result", "tool_use_id": use.id, "content": outcome.text,
                "is_error": outcome.is_error}

    async def _log_reply(self, turn: int, reply: Reply) -> None:
        used = ", ".join(f"{key} {value}" for key, value in reply.usage.items() if value)
        await self.log.write(f"turn {turn}", f"stop_reason {reply.stop_reason}; {used}")
        for text in reply.texts:
            if text.strip():
                await self.log.write("assistant", text)
                self.tail.append(text)

    async def note(self, label: str, text: str) -> None:
        with suppress(OSError):
            await self.log.write(label, text)

    def result(self, error: str) -> AgentResult:
        tail = redact(clip("\n".join(self.tail), TAIL_LIMIT), self.agent.secrets)
        return AgentResult(ok=not error, error=redact(error, self.agent.secrets),
                           output_tail=tail, usage=dict(self.usage))


def _with_cache_point(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation with a cache breakpoint on its newest block, so each turn reads the
    previous turns from the prompt cache."""
    *earlier, last = messages
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    blocks[-1] = {**blocks[-1], "cache_control": CACHE}
    return [*earlier, {**last, "content": blocks}]


def _show_input(tool_input: dict[str, Any]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in tool_input.items())
