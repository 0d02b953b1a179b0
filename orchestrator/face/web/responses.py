"""HTTP for the page's ASGI app: the request as the routes see it, whole responses with the
page's security headers, and server-sent event streams that end when the client goes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import trio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HEARTBEAT_S = 10.0
HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
           (b"content-security-policy",
            b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            b"img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            b"frame-ancestors 'none'")]


@dataclass
class Request:
    method: str
    parts: list[str]  # the path's segments, each percent-decoded
    query: dict[str, list[str]]
    send: Send
    receive: Receive

    @property
    def head(self) -> bool:
        return self.method == "HEAD"


Push = Callable[[str, str], Awaitable[None]]  # sends one event: its name and its data


async def event_stream(request: Request, produce: Callable[[Push], Awaitable[None]]) -> None:
    """Answer with server-sent events: `produce` pushes them until the client disconnects
    (then it is cancelled); a comment-free `ping` keeps an idle stream alive."""
    await request.send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8"), *HEADERS]})
    if request.head:
        await request.send({"type": "http.response.body", "body": b""})
        return
    last = trio.current_time()

    async def push(name: str, data: str) -> None:
        nonlocal last
        lines = "".join(f"data: {line}\n" for line in data.split("\n"))
        await request.send({"type": "http.response.body", "more_body": True,
                            "body": f"event: {name}\n{lines}\n".encode()})
        last = trio.current_time()

    async def heartbeat() -> None:
        while True:
            await trio.sleep(HEARTBEAT_S / 2)
            if trio.current_time() - last >= HEARTBEAT_S:
                await push("ping", "")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_until_disconnect, request.receive, nursery.cancel_scope)
        nursery.start_soon(heartbeat)
        await produce(push)


async def _until_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def respond_json(request: Request, value: object, *, status: int = 200) -> None:
    await respond_json_text(request, json.dumps(value, ensure_ascii=False, separators=(",", ":")),
                     status=status)


async def respond_json_text(request: Request, text: str, *, status: int = 200) -> None:
    await respond(request, status, "application/json", text.encode())


async def respond(request: Request, status: int, content_type: str, body: bytes) -> None:
    await request.send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
        *HEADERS]})
    await request.send({"type": "http.response.body", "body": b"" if request.head else body})


async def respond_plain(send: Send, status: int, text: str, *, head: bool = False,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), *HEADERS, *(extra or [])]})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
