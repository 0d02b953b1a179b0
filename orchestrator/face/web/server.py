"""Serving the page: a socket bound before anything is printed (so the URL is known and a
taken port is refused with exit 2), then hypercorn (an ASGI server with a trio worker) serving
the page's app on it until cancelled. Loopback by default; bound anywhere else, every request
needs the random token printed in the URL."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import trio

from orchestrator.errors import UsageError
from orchestrator.face.web.routes import UiApp

DEFAULT_HOST = "127.0.0.1"
GRACE_S = 0.5  # open event streams get this long to end when the server stops


@dataclass
class Listening:
    """A bound, listening socket and how to reach it."""

    sock: socket.socket
    host: str
    port: int
    token: str | None  # None on loopback

    def url(self, spec_name: str | None = None) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        path = f"/specs/{quote(spec_name, safe='')}" if spec_name else "/"
        query = f"?token={self.token}" if self.token else ""
        return f"http://{shown}:{self.port}{path}{query}"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str = DEFAULT_HOST, port: int = 0) -> Listening:
    """Bind `host`:`port` (0: a free port). Refused with exit 2 naming --host or --port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"option --host: cannot listen on {host!r}: {exc}",
                         "Give an address of this machine, such as 127.0.0.1 (the default) "
                         "or 0.0.0.0 for every interface.") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        where = "option --port" if port else "option --host"
        raise UsageError(f"{where}: cannot listen on {host}:{port}: {exc.strerror or exc}",
                         "Choose another port (or leave --port out for a free one).") from None
    bound = sock.getsockname()
    loopback = is_loopback(str(bound[0]))
    return Listening(sock, str(bound[0]), int(bound[1]),
                     None if loopback else secrets.token_urlsafe(24))


def app_for(repo: Path, listening: Listening, *, budget: float | None = None) -> UiApp:
    return UiApp(repo, token=listening.token, loopback=listening.token is None, budget=budget)


async def serve(app: UiApp, listening: Listening, *,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `app` on the bound socket until cancelled."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = [f"fd://{listening.sock.detach()}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = GRACE_S
    config.include_server_header = False
    await hypercorn_serve(app, config, task_status=task_status)  # type: ignore[arg-type]
