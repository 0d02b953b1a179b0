"""A fake Anthropic Messages API: a real HTTP server on 127.0.0.1 that speaks the documented JSON
of POST /v1/messages, checks every request the way the real API would, and answers from a script.

A conversation is recognised by a marker (e.g. a subtask id) in its first user message; its
script is a list of steps, one per request:

    {"content": [...blocks...], "stop_reason": ..., "usage": {...}}   a message; stop_reason
                                  defaults to tool_use when a block is a tool_use, else end_turn
    {"status": 429, "error": {"type": ..., "message": ...}, "headers": {...}}   an HTTP error
    {"garbage": "text", "content_type": "application/json"}          a body that is not JSON
    {"raw": {...}}                                                    any JSON body, as is
Any step may add "delay" (seconds). A request that breaks the API's rules is answered 400 and
its problem recorded in `problems`.

Standalone (for benchmarks):
    python tests/fake_anthropic.py --port-file F --script S.json [--record R.jsonl]
where S.json is {"conversations": {marker: [steps]}, "latency": 0.2, "api_key": "..."}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Step = dict[str, Any]
DEFAULT_USAGE = {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 0,
                 "cache_creation_input_tokens": 0}
KNOWN_TOOLS = {"text_editor_20250728": "str_replace_based_edit_tool", "bash_20250124": "bash"}
MAX_CACHE_POINTS = 4
MID_CONVERSATION_SYSTEM = "mid-conversation-system"  # a beta that allows role "system" messages


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool(name: str, **tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "name": name, "input": tool_input}


def editor(command: str, **tool_input: Any) -> dict[str, Any]:
    return tool("str_replace_based_edit_tool", command=command, **tool_input)


def bash(command: str) -> dict[str, Any]:
    return tool("bash", command=command)


def reply(*blocks: dict[str, Any] | str, **fields: Any) -> Step:
    return {"content": [text(b) if isinstance(b, str) else b for b in blocks], **fields}


def error(status: int, kind: str = "api_error", message: str = "fake failure",
          retry_after_ms: int | None = 1) -> Step:
    headers = {} if retry_after_ms is None else {"retry-after-ms": str(retry_after_ms)}
    return {"status": status, "error": {"type": kind, "message": message}, "headers": headers}


def garbage(body: str = "<html>502 Bad Gateway</html>",
            content_type: str = "application/json") -> Step:
    return {"garbage": body, "content_type": content_type}


class FakeAnthropic:
    def __init__(self, scripts: Mapping[str, Sequence[Step]] | None = None, *,
                 latency: float = 0.0, api_key: str | None = None,
                 record_path: Path | None = None) -> None:
        self.scripts = {marker: list(steps) for marker, steps in (scripts or {}).items()}
        self.latency = latency
        self.api_key = api_key
        self.record_path = record_path
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        # (monotonic time, "enter" | "leave", requests in flight after it, HTTP status or 0)
        self.timeline: list[tuple[float, str, int, int]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def script(self, marker: str, steps: Sequence[Step]) -> None:
        with self._lock:
            self.scripts[marker] = list(steps)

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake server is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self, port: int = 0) -> FakeAnthropic:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def bodies(self, marker: str) -> list[dict[str, Any]]:
        """The request bodies of one conversation, in order."""
        return [r["body"] for r in self.requests if r["marker"] == marker]

    def tool_results(self, marker: str) -> list[dict[str, Any]]:
        """Every tool_result block the conversation sent, each once, in order."""
        seen: dict[str, dict[str, Any]] = {}
        for body in self.bodies(marker):
            for message in body.get("messages", []):
                for block in _blocks(message):
                    if block.get("type") == "tool_result":
                        seen.setdefault(block["tool_use_id"], block)
        return list(seen.values())

    def answer(self, body: object, api_key: str | None,
               betas: str = "") -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body for one request (called by the handler threads)."""
        if self.api_key is not None and api_key != self.api_key:
            return _error_response(401, "authentication_error", "invalid API key")
        if MID_CONVERSATION_SYSTEM in betas and isinstance(body, dict):
            body = {**body, "messages": [
                m for m in body.get("messages") or []
                if not (isinstance(m, dict) and m.get("role") == "system")]}
        problems = validate(body)
        marker = _marker(body, self.scripts) if not problems else None
        if not problems and marker is None:
            problems = ["no scripted conversation matches the first user message"]
        with self._lock:
            self.requests.append({"marker": marker, "body": body})
            self.problems.extend(problems)
            step = self.scripts[marker].pop(0) if marker and self.scripts[marker] else None
        self._record(marker, body)
        if problems:
            return _error_response(400, "invalid_request_error", "; ".join(problems))
        if step is None:
            return _error_response(400, "invalid_request_error", f"script for {marker} is over")
        time.sleep(self.latency + float(step.get("delay", 0)))
        return self._respond(step, body)

    def _respond(self, step: Step, body: Any) -> tuple[int, dict[str, str], bytes]:
        if "status" in step:
            kind = step.get("error", {})
            status, headers, payload = _error_response(
                step["status"], kind.get("type", "api_error"), kind.get("message", "error"))
            return status, {**headers, **step.get("headers", {})}, payload
        if "garbage" in step:
            content_type = step.get("content_type", "application/json")
            return 200, {"content-type": content_type}, step["garbage"].encode()
        message = step["raw"] if "raw" in step else self._message(step, body)
        if body.get("stream") is True:
            return 200, {"content-type": "text/event-stream"}, _event_stream(message)
        return 200, {"content-type": "application/json"}, json.dumps(message).encode()

    def _message(self, step: Step, body: Any) -> dict[str, Any]:
        content = [dict(block) for block in step.get("content", [])]
        for block in content:
            if block["type"] == "tool_use" and "id" not in block:
                block["id"] = f"toolu_{next(self._ids):04d}"
        uses_tools = any(block["type"] == "tool_use" for block in content)
        return {"id": f"msg_{next(self._ids):04d}", "type": "message", "role": "assistant",
                "model": body["model"], "content": content,
                "stop_reason": step.get("stop_reason", "tool_use" if uses_tools else "end_turn"),
                "stop_sequence": None, "stop_details": step.get("stop_details"),
                "usage": {**DEFAULT_USAGE, **step.get("usage", {})}}

    def _record(self, marker: str | None, body: object) -> None:
        if self.record_path is not None:
            with self._lock, self.record_path.open("a") as handle:
                handle.write(json.dumps({"marker": marker, "body": body}) + "\n")

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.timeline.append((time.monotonic(), "enter", self.in_flight, 0))

    def leave(self, status: int = 0) -> None:
        with self._lock:
            self.in_flight -= 1
            self.timeline.append((time.monotonic(), "leave", self.in_flight, status))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropic

    def do_POST(self) -> None:
        self.fake.enter()
        status = 0
        try:
            status, headers, payload = self._answer()
        except Exception as exc:  # a request shape the checks did not foresee
            self.fake.problems.append(f"the fake crashed: {exc!r}")
            status, headers, payload = _error_response(500, "api_error", repr(exc))
        finally:
            self.fake.leave(status)
        self.send_response(status)
        for name, value in {"content-type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _answer(self) -> tuple[int, dict[str, str], bytes]:
        if self.path.split("?")[0] != "/v1/messages":
            return _error_response(404, "not_found_error", f"no route {self.path}")
        if not self.headers.get("anthropic-version"):
            return _error_response(400, "invalid_request_error", "anthropic-version missing")
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            return _error_response(400, "invalid_request_error", "the body is not JSON")
        return self.fake.answer(body, self._api_key(), self.headers.get("anthropic-beta", ""))

    def _api_key(self) -> str | None:
        """The key from x-api-key or, as newer SDKs send it, `Authorization: Bearer`."""
        bearer = self.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return bearer[len("bearer "):]
        return self.headers.get("x-api-key")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _event_stream(message: dict[str, Any]) -> bytes:
    """A message as the Messages API streams it (`"stream": true`): server-sent events."""
    usage = message.get("usage") or {}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start})]
    for index, block in enumerate(message.get("content") or []):
        if block.get("type") == "tool_use":
            opening = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            opening = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block.get("text", "")}
        events += [("content_block_start", {"index": index, "content_block": opening}),
                   ("content_block_delta", {"index": index, "delta": delta}),
                   ("content_block_stop", {"index": index})]
    events += [("message_delta", {"delta": {"stop_reason": message.get("stop_reason"),
                                            "stop_sequence": None},
                                  "usage": {"output_tokens": usage.get("output_tokens", 0)}}),
               ("message_stop", {})]
    return "".join(f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"
                   for name, data in events).encode()


def _error_response(status: int, kind: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return status, {"content-type": "application/json"}, json.dumps(body).encode()


def validate(body: object) -> list[str]:
    """What the real API would refuse in this request body."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    problems = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model: a non-empty string is required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        problems.append("max_tokens: a positive integer is required")
    problems += _check_tools(body.get("tools", []))
    problems += _check_messages(body.get("messages"))
    if _count_cache_points(body) > MAX_CACHE_POINTS:
        problems.append(f"more than {MAX_CACHE_POINTS} blocks have cache_control")
    return problems


def _check_tools(tools: object) -> list[str]:
    if not isinstance(tools, list):
        return ["tools: must be a list"]
    problems = []
    for spec in tools:
        if not isinstance(spec, dict):
            problems.append("tools: each tool must be an object")
            continue
        kind, name = spec.get("type"), spec.get("name")
        if kind in KNOWN_TOOLS and name != KNOWN_TOOLS[kind]:
            problems.append(f"tools: {kind} must be named {KNOWN_TOOLS[kind]}")
        elif kind not in KNOWN_TOOLS and "input_schema" not in spec:
            problems.append(f"tools: unknown tool type {kind!r}")
    names = [spec.get("name") for spec in tools if isinstance(spec, dict)]
    if len(names) != len(set(names)):
        problems.append("tools: names must be unique")
    return problems


def _check_messages(messages: object) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["messages: a non-empty list is required"]
    problems = []
    pending: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            problems.append(f"messages.{index}: role must be {expected}, roles must alternate")
            continue
        blocks = _blocks(message)
        if not blocks or any(b.get("type") == "text" and not b.get("text") for b in blocks):
            problems.append(f"messages.{index}: content and text blocks must be non-empty")
        answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if answered != pending:
            problems.append(f"messages.{index}: tool_result ids {sorted(answered, key=str)} "
                            f"do not match the tool_use ids {sorted(pending)} before them")
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    if messages[-1].get("role") != "user" or pending:
        problems.append("messages: the last message must be a user message")
    return problems


def _blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [text(content)] if content else []
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _count_cache_points(body: Mapping[str, Any]) -> int:
    system = body.get("system")
    blocks = [*(system if isinstance(system, list) else []), *body.get("tools", [])]
    for message in body.get("messages", []):
        blocks += _blocks(message)
    return sum(1 for block in blocks if block.get("cache_control"))


def _marker(body: Mapping[str, Any], scripts: Mapping[str, object]) -> str | None:
    first = " ".join(b.get("text", "") for b in _blocks(body["messages"][0]))
    found = [marker for marker in scripts if marker in first]
    return max(found, key=len) if found else None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", type=Path, default=None)
    args = parser.parse_args(argv)
    config = json.loads(args.script.read_text())
    fake = FakeAnthropic(config.get("conversations", {}), latency=config.get("latency", 0.0),
                         api_key=config.get("api_key"), record_path=args.record).start(args.port)
    partial = args.port_file.with_name(args.port_file.name + ".tmp")
    partial.write_text(str(fake.url.rsplit(":", 1)[1]))
    os.replace(partial, args.port_file)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    fake.stop()


if __name__ == "__main__":
    main()
