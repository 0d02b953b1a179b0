"""Driving the web page's ASGI app in-process, the way hypercorn does: a scope, a receive that
gives the (empty) request body and then a disconnect, and a send that collects the response.
An event stream is read until `until` appears in its body, then the client disconnects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from orchestrator.face.web.routes import UiApp


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class _Exchange:
    until: bytes | None
    messages: list[dict[str, Any]] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    sent_request: bool = False

    async def receive(self) -> dict[str, Any]:
        if not self.sent_request:
            self.sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        body = b"".join(m.get("body", b"") for m in self.messages)
        ended = message["type"] == "http.response.body" and not message.get("more_body")
        if ended or (self.until is not None and self.until in body):
            self.done.set()


async def call(app: UiApp, path: str, *, method: str = "GET", query: str = "",
               host: str = "127.0.0.1:8000", until: bytes | None = None) -> Response:
    """One request; `path` is sent as the raw path, exactly as given (no normalising)."""
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "headers": [(b"host", host.encode())],
             "http_version": "1.1", "scheme": "http"}
    exchange = _Exchange(until)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, scope, exchange.receive, exchange.send)
            await exchange.done.wait()
            nursery.cancel_scope.deadline = trio.current_time() + 2
    start = next(m for m in exchange.messages if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in exchange.messages)
    return Response(start["status"], headers, body)
