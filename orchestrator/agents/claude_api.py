"""One Messages API call: the SDK's own retries, a few outer rounds for rate limits and overload,
and a strict reading of the answer, so a broken response fails the attempt with a clear message
instead of surfacing as an odd error deep in the loop."""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import anthropic
import trio

from orchestrator.agents.ratelimit import RequestLimit

OUTER_ROUNDS = 3  # each round is a call with the SDK's own max_retries
OUTER_BACKOFF = 5.0
MAX_DELAY = 60.0
RETRY_STATUSES = frozenset({408, 409, 429})
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
              "cache_creation_input_tokens")
PASSED_BACK = frozenset({"thinking", "redacted_thinking"})  # must be returned verbatim


class ApiFailure(Exception):
    """The attempt cannot go on; the message is short and safe to show and store."""


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any]


@dataclass
class Reply:
    stop_reason: str
    content: list[dict[str, Any]] = field(default_factory=list)  # to send back as is
    texts: list[str] = field(default_factory=list)
    tool_uses: list[ToolUse] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    stop_detail: str = ""


async def create_message(client: anthropic.AsyncAnthropic, params: dict[str, Any],
                         limit: RequestLimit | None = None) -> Reply:
    """One turn's request, sent when `limit` has a free request slot (which the backoff
    between outer rounds does not hold)."""
    for round_number in range(1, OUTER_ROUNDS + 1):
        try:
            async with limit.slot() if limit else nullcontext():
                raw = await client.messages.with_raw_response.create(**params)
                body = await raw.read()
            return parse_reply(body)
        except anthropic.APIError as exc:
            if round_number == OUTER_ROUNDS or not _retryable(exc):
                raise ApiFailure(describe(exc)) from None
            await trio.sleep(_delay(exc, round_number))
        except anthropic.AnthropicError as exc:
            raise ApiFailure(f"Anthropic client error: {_excerpt(str(exc))}") from None
        except ValueError as exc:  # the SDK refusing the parameters before sending them
            raise ApiFailure(f"invalid request: {exc}") from None
    raise AssertionError("unreachable")


def _retryable(exc: anthropic.APIError) -> bool:
    if isinstance(exc, anthropic.APIConnectionError):
        return True
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code in RETRY_STATUSES or exc.status_code >= 500
    return False


def _delay(exc: anthropic.APIError, round_number: int) -> float:
    """The server's Retry-After when it sent one, else exponential backoff."""
    if isinstance(exc, anthropic.APIStatusError):
        headers = exc.response.headers
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            try:
                return min(max(float(headers.get(name, "")) * scale, 0.0), MAX_DELAY)
            except ValueError:
                continue
    return float(min(OUTER_BACKOFF * 2 ** (round_number - 1), MAX_DELAY))


def describe(exc: anthropic.APIError) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        kind = f" {exc.type}" if exc.type else ""
        detail = exc.api_message or _excerpt(str(exc.body or ""))
        return f"API error {exc.status_code}{kind}: {detail}"
    if isinstance(exc, anthropic.APIConnectionError):
        return f"cannot reach the Messages API at {exc.request.url.copy_with(query=None)}: " \
               f"{exc.message}"
    return f"API error: {_excerpt(exc.message)}"


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def parse_reply(body: bytes) -> Reply:
    try:
        data = json.loads(body)
    except ValueError:
        shown = _excerpt(body.decode("utf-8", "replace"), 80) or "an empty body"
        raise ApiFailure(f"malformed response from the Messages API (not JSON): {shown!r}") \
            from None
    if not isinstance(data, dict) or data.get("type") != "message":
        raise _malformed("not a message object")
    stop_reason = data.get("stop_reason")
    if not isinstance(stop_reason, str):
        raise _malformed("no stop_reason")
    reply = Reply(stop_reason=stop_reason, usage=_usage(data.get("usage")),
                  stop_detail=_stop_detail(data.get("stop_details")))
    content = data.get("content")
    if not isinstance(content, list):
        raise _malformed("`content` is not a list")
    for block in content:
        _add_block(reply, block)
    return reply


def _add_block(reply: Reply, block: object) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _malformed("a content block has no type")
    kind = block["type"]
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise _malformed("a text block has no text")
        reply.texts.append(text)
        if text:  # the API refuses empty text blocks in requests
            reply.content.append({"type": "text", "text": text})
    elif kind == "tool_use":
        use = _tool_use(block)
        reply.tool_uses.append(use)
        reply.content.append({"type": "tool_use", "id": use.id, "name": use.name,
                              "input": use.input})
    elif kind in PASSED_BACK:
        reply.content.append(block)


def _tool_use(block: dict[str, Any]) -> ToolUse:
    ident, name, tool_input = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(ident, str) or not ident or not isinstance(name, str):
        raise _malformed("a tool_use block lacks its id or name")
    if not isinstance(tool_input, dict):
        raise _malformed("a tool_use block's input is not an object")
    return ToolUse(ident, name, tool_input)


def _usage(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise _malformed("no usage")
    usage = {}
    for key in USAGE_KEYS:
        value = raw.get(key) or 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _malformed(f"usage.{key} is not a token count")
        usage[key] = value
    return usage


def _stop_detail(raw: object) -> str:
    if not isinstance(raw, dict):
        return ""
    parts = [str(raw[key]) for key in ("category", "explanation") if raw.get(key)]
    return ": ".join(parts)


def _malformed(what: str) -> ApiFailure:
    return ApiFailure(f"malformed response from the Messages API: {what}")
