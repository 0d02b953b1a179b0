"""The build's egress proxy (network `allow`): HTTPS `CONNECT` to the hosts on an allow-list
(port 443, or the exact host:port given), plain HTTP only to an allowed loopback host:port (a
local `ANTHROPIC_BASE_URL`). Names are resolved here, outside the sandbox.

Each sandboxed attempt gets a gate: a Unix socket of its own (bound into its sandbox, where a
forwarder listens on loopback, door/egress_inside.py), its allow-list and its log. Every refused
connection appends `egress refused: HOST:PORT` to that log and is counted for the subtask.
"""

from __future__ import annotations

import errno
import shutil
import socket
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import trio

HEAD_LIMIT = 64 * 1024
CHUNK = 65536
CONNECT_TIMEOUT_S = 30.0
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True)
class AllowList:
    """Hosts reachable by CONNECT on 443, exact (host, port) pairs reachable by CONNECT, and
    loopback (host, port) pairs reachable by plain HTTP."""

    hosts: frozenset[str] = frozenset()
    endpoints: frozenset[tuple[str, int]] = frozenset()
    plain: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def of(cls, hosts: Iterable[str], base_urls: Iterable[str] = ()) -> AllowList:
        """`hosts` by name (or `host:port`); each base URL's host and port (plain HTTP where
        it is loopback)."""
        endpoints: set[tuple[str, int]] = set()
        plain: set[tuple[str, int]] = set()
        names: set[str] = set()
        for host in hosts:
            name, _, number = host.lower().rpartition(":")
            if name and number.isdigit():
                endpoints.add((name, int(number)))
            else:
                names.add(host.lower())
        for url in base_urls:
            parts = urlsplit(url)
            if not parts.hostname:
                continue
            port = parts.port or (443 if parts.scheme == "https" else 80)
            endpoints.add((parts.hostname.lower(), port))
            if parts.scheme == "http" and parts.hostname.lower() in LOOPBACK:
                plain.add((parts.hostname.lower(), port))
        return cls(frozenset(names), frozenset(endpoints), frozenset(plain))

    def tunnel(self, host: str, port: int) -> bool:
        return (port == 443 and host in self.hosts) or (host, port) in self.endpoints

    def forward(self, host: str, port: int) -> bool:
        return (host, port) in self.plain


@dataclass(frozen=True)
class Request:
    tunnel: bool  # CONNECT
    host: str
    port: int
    head: bytes  # what to send upstream for plain HTTP (origin-form request line)


class BadRequest(Exception):
    pass


def parse_head(head: bytes) -> Request:
    """The CONNECT or absolute-form HTTP request whose head (through the blank line) is `head`."""
    line, _, rest = head.partition(b"\r\n")
    words = line.decode("latin-1").split()
    if len(words) != 3:
        raise BadRequest("malformed request line")
    method, target, version = words
    if method.upper() == "CONNECT":
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise BadRequest(f"CONNECT needs host:port, not {target!r}")
        return Request(True, host.strip("[]").lower(), int(port), b"")
    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.hostname:
        raise BadRequest(f"only CONNECT and http:// requests, not {target!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    first = f"{method} {path} {version}\r\n".encode("latin-1")
    return Request(False, parts.hostname.lower(), parts.port or 80, first + rest)


@dataclass
class Gate:
    subtask_id: str
    allow: AllowList
    log_path: Path
    socket_path: Path


class EgressProxy:
    """One per build; `gate` opens a socket for one sandboxed attempt."""

    def __init__(self, nursery: trio.Nursery, folder: Path) -> None:
        self.nursery, self.folder = nursery, folder
        self.refused: Counter[str] = Counter()
        self._serial = 0

    @asynccontextmanager
    async def gate(self, subtask_id: str, allow: AllowList, log_path: Path) -> AsyncIterator[Gate]:
        self._serial += 1
        gate = Gate(subtask_id, allow, log_path, self.folder / f"egress-{self._serial}.sock")
        listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await listener.bind(str(gate.socket_path))
        listener.listen(64)
        scope = trio.CancelScope()
        self.nursery.start_soon(self._serve, trio.SocketListener(listener), gate, scope)
        try:
            yield gate
        finally:
            scope.cancel()
            gate.socket_path.unlink(missing_ok=True)

    async def _serve(self, listener: trio.SocketListener, gate: Gate,
                     scope: trio.CancelScope) -> None:
        with scope:
            async with listener:
                await trio.serve_listeners(partial(self._handle, gate=gate), [listener])

    async def _handle(self, client: trio.SocketStream, *, gate: Gate) -> None:
        async with client:
            try:
                head, extra = await _read_head(client)
                request = parse_head(head)
            except BadRequest as exc:
                await _reply(client, 400, str(exc))
                return
            allowed = (gate.allow.tunnel(request.host, request.port) if request.tunnel
                       else gate.allow.forward(request.host, request.port))
            if not allowed:
                await self._refuse(gate, request)
                await _reply(client, 403, f"egress to {request.host}:{request.port} is not "
                                          "on the sandbox's allow-list")
                return
            await self._connect(client, request, extra)

    async def _connect(self, client: trio.abc.Stream, request: Request, extra: bytes) -> None:
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                upstream = await trio.open_tcp_stream(request.host, request.port)
        except (OSError, trio.TooSlowError) as exc:
            await _reply(client, 502, f"cannot reach {request.host}:{request.port}: {exc}")
            return
        async with upstream:
            if request.tunnel:
                await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                await upstream.send_all(request.head)
            if extra:
                await upstream.send_all(extra)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_copy, client, upstream)
                nursery.start_soon(_copy, upstream, client)

    async def _refuse(self, gate: Gate, request: Request) -> None:
        self.refused[gate.subtask_id] += 1
        line = f"egress refused: {request.host}:{request.port}\n"
        await trio.to_thread.run_sync(_append, gate.log_path, line)


def _append(path: Path, line: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as log:
            log.write(line)
    except OSError:
        pass


async def _read_head(stream: trio.abc.Stream) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(CHUNK)
        if not chunk:
            raise BadRequest("connection closed before the request ended")
        data += chunk
        if len(data) > HEAD_LIMIT:
            raise BadRequest("request head too long")
    head, _, extra = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", extra


async def _reply(stream: trio.abc.Stream, code: int, why: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[code]
    body = f"{why}\n".encode()
    with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\n"
                              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                              .encode() + body)


async def _copy(source: trio.abc.Stream, target: trio.abc.Stream) -> None:
    try:
        while data := await source.receive_some(CHUNK):
            await target.send_all(data)
        if isinstance(target, trio.SocketStream):
            await target.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.EPIPE, errno.ECONNRESET,
                                                          errno.ENOTCONN, None):
            raise


@asynccontextmanager
async def open_egress(needed: bool) -> AsyncIterator[EgressProxy | None]:
    """The build's proxy when some sandbox has network `allow`, else None; its sockets live
    in a private temporary folder, removed at the end."""
    if not needed:
        yield None
        return
    folder = Path(await trio.to_thread.run_sync(
        lambda: tempfile.mkdtemp(prefix="orchestrate-egress-")))
    try:
        async with trio.open_nursery() as nursery:
            yield EgressProxy(nursery, folder)
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
