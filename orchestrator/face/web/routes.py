"""The page's ASGI application: its own routes and nothing else (404), GET and HEAD only (405),
the token when the server is bound beyond loopback (401, before anything is looked up), and
reads only: the spec folders (plan, logs, events.jsonl, conflict report) and git's objects.

Spec names and subtask ids in a path are compared with the repository's spec folders and the
plan's subtasks, never joined into a file path, so `..` (plain or %2e%2e) finds nothing."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote

import trio

from merge import GitError
from orchestrator import names
from orchestrator.errors import OrchestrateError
from orchestrator.face.review import review_diff
from orchestrator.face.web.page import asset, page_html
from orchestrator.face.web.responses import (
    Push,
    Receive,
    Request,
    Scope,
    Send,
    event_stream,
    lifespan,
    respond,
    respond_json,
    respond_json_text,
    respond_plain,
)
from orchestrator.face.web.snapshot import Chains, check_output, report_json, snapshot, spec_rows
from orchestrator.face.web.sources import (
    EventReader,
    LogPiece,
    events_path,
    log_since,
    log_tail,
    stamp,
)
from orchestrator.plan.model import Subtask
from orchestrator.plan.parse import load_plan
from orchestrator.plan.specs import Spec, all_specs

ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
DIFF_LIMIT = 2 * 1024 * 1024


class NotFound(Exception):
    """No such route, spec or subtask: 404."""


@dataclass
class UiApp:
    """The web page of the specs in `repo`. `token`: required in every request's query
    (`?token=`) when given. `loopback`: the server listens on loopback only, so requests must
    name a loopback host (a page of another site that resolves its name to 127.0.0.1 is
    refused). `budget`: the build's --budget, when the build serves the page."""

    repo: Path
    token: str | None = None
    loopback: bool = True
    budget: float | None = None
    poll_s: float = 0.25
    chains: Chains = field(default_factory=Chains)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        # websockets are not one of the page's routes: hypercorn closes them unanswered

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if not self._authorised(query):
            await respond_plain(send, 401, "401 unauthorised: open the URL orchestrate printed, "
                         "with its ?token=\n")
            return
        if self.loopback and not _loopback_host(scope):
            await respond_plain(send, 403, "403 forbidden: use the URL orchestrate printed\n")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await respond_plain(send, 405, "405 method not allowed: this page only reads\n",
                         extra=[(b"allow", b"GET, HEAD")])
            return
        parts = _segments(scope.get("raw_path") or scope["path"].encode())
        request = Request(scope["method"], parts or [], query, send, receive)
        try:
            if parts is None:
                raise NotFound
            await self._route(request)
        except NotFound:
            await respond_plain(send, 404, "404 not found\n", head=request.head)
        except (OrchestrateError, GitError) as exc:
            await respond_json(request, {"error": _message(exc)}, status=500)

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        given = query.get("token", [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _route(self, request: Request) -> None:
        match request.parts:
            case []:
                await self._page(request, None)
            case ["specs", name]:
                await self._page(request, await self._spec(name))
            case ["static", name] if name in ASSETS:
                await respond(request, 200, ASSETS[name], asset(name))
            case ["api", "specs"]:
                await respond_json(request, await trio.to_thread.run_sync(spec_rows, self.repo))
            case ["api", "specs", name]:
                spec = await self._spec(name)
                await respond_json_text(request, await self._snapshot(spec, EventReader(
                    events_path(spec.logs))))
            case ["api", "specs", name, "stream"]:
                await self._follow_spec(request, await self._spec(name))
            case ["api", "specs", name, "report"]:
                spec = await self._spec(name)
                await respond_json(request, await trio.to_thread.run_sync(report_json, spec))
            case ["api", "specs", name, "subtasks", subtask_id, what]:
                await self._subtask_route(request, name, subtask_id, what)
            case _:
                raise NotFound

    async def _subtask_route(self, request: Request, name: str, subtask_id: str,
                             what: str) -> None:
        if what not in ("log", "diff", "check"):
            raise NotFound
        spec = await self._spec(name)
        subtask = await self._subtask(spec, subtask_id)
        if what == "log":
            await self._follow_log(request, names.subtask_log(spec.logs, subtask.id))
        elif what == "diff":
            text = await trio.to_thread.run_sync(_diff, spec, subtask.id)
            await respond(request, 200, "text/plain; charset=utf-8", text.encode())
        else:
            await respond_json(request, await trio.to_thread.run_sync(check_output, spec, subtask))

    async def _page(self, request: Request, spec: Spec | None) -> None:
        page = await trio.to_thread.run_sync(page_html, self.repo, spec, self.token)
        await respond(request, 200, "text/html; charset=utf-8", page.encode())

    async def _spec(self, name: str) -> Spec:
        specs = await trio.to_thread.run_sync(all_specs, self.repo)
        found = next((s for s in specs if s.name == name), None)
        if found is None:
            raise NotFound
        return found

    async def _subtask(self, spec: Spec, subtask_id: str) -> Subtask:
        plan = await trio.to_thread.run_sync(load_plan, spec.plan_path)
        found = next((s for s in plan.subtasks() if s.id == subtask_id), None)
        if found is None:
            raise NotFound
        return found

    async def _snapshot(self, spec: Spec, reader: EventReader) -> str:
        def build() -> str:
            state = snapshot(spec, reader.read(), self.chains, budget=self.budget)
            return json.dumps(state, ensure_ascii=False, separators=(",", ":"))
        return await trio.to_thread.run_sync(build)

    async def _follow_spec(self, request: Request, spec: Spec) -> None:
        """Server-sent events: `state` (the spec's JSON) at once and whenever the plan,
        events.jsonl or the conflict report change."""
        reader = EventReader(events_path(spec.logs))
        watched = (spec.plan_path, reader.path, spec.folder / names.REPORT_JSON)

        async def produce(push: Push) -> None:
            seen: object = None
            sent: str | None = None
            while True:
                now = await trio.to_thread.run_sync(stamp, *watched)
                if now != seen:
                    seen = now
                    body: str | None
                    try:
                        body = await self._snapshot(spec, reader)
                    except (OrchestrateError, GitError) as exc:  # a plan edited by hand
                        await push("problem", json.dumps({"error": _message(exc)}))
                        body = sent
                    if body is not None and body != sent:
                        await push("state", body)
                        sent = body
                await trio.sleep(self.poll_s)

        await event_stream(request, produce)

    async def _follow_log(self, request: Request, path: Path) -> None:
        """Server-sent events: `tail` (the log's last lines; the page replaces what it
        shows) and then `append` with each new line as the agent writes it."""

        async def produce(push: Push) -> None:
            piece = await trio.to_thread.run_sync(log_tail, path)
            await push("tail", _piece_json(piece))
            offset = piece.offset
            while True:
                await trio.sleep(self.poll_s)
                size = await trio.to_thread.run_sync(stamp, path)
                if size[0][0] < offset:  # a new attempt started the log over
                    piece = await trio.to_thread.run_sync(log_tail, path)
                    await push("tail", _piece_json(piece))
                elif size[0][0] > offset:
                    piece = await trio.to_thread.run_sync(log_since, path, offset)
                    if piece.text or piece.skipped:
                        await push("tail" if piece.skipped else "append", _piece_json(piece))
                offset = piece.offset

        await event_stream(request, produce)


def _message(exc: OrchestrateError | GitError) -> str:
    return exc.message if isinstance(exc, OrchestrateError) else str(exc)


def _piece_json(piece: LogPiece) -> str:
    return json.dumps({"text": piece.text, "skipped": piece.skipped}, ensure_ascii=False)


def _diff(spec: Spec, subtask_id: str) -> str:
    """What `orchestrate review SPEC ID` shows, without colour, at most DIFF_LIMIT bytes."""
    try:
        text = review_diff(spec, load_plan(spec.plan_path), subtask_id, color=False)
    except OrchestrateError as exc:
        return f"{exc.message}\n" + (f"{exc.hint}\n" if exc.hint else "")
    if len(text.encode()) > DIFF_LIMIT:
        cut = text.encode()[:DIFF_LIMIT].decode("utf-8", errors="ignore")
        text = cut[:cut.rfind("\n") + 1] + (f"... (cut at {DIFF_LIMIT // 1024} KiB: "
                                            f"`orchestrate review {spec.name} {subtask_id}` "
                                            "shows all of it)\n")
    return text


def _segments(raw_path: bytes) -> list[str] | None:
    """The path's segments, each percent-decoded; None for anything that is not a plain
    absolute path (`.`, `..`, empty segments, NUL, backslashes), before or after decoding."""
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.startswith("/"):
        return None
    parts = text[1:].split("/")
    if parts == [""]:
        return []
    try:
        decoded = [unquote(part, errors="strict") for part in parts]
    except UnicodeDecodeError:
        return None
    if any(p in ("", ".", "..") or "\x00" in p or "\\" in p or p.startswith(".")
           for p in decoded):
        return None
    return decoded


def _loopback_host(scope: Scope) -> bool:
    host = next((value.decode("latin-1") for key, value in scope.get("headers", [])
                 if key == b"host"), "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.lower() in LOOPBACK_HOSTS or name.startswith("127.")


