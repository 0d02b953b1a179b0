"""The page's HTML as the server sends it: the shell the script fills in, with the statuses
already in it (a reader without JavaScript, or a plain HTTP client, sees every subtask's id,
description and status word; the script replaces it with the live page)."""

from __future__ import annotations

from html import escape
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from orchestrator.errors import OrchestrateError
from orchestrator.face.web.snapshot import spec_rows
from orchestrator.plan.parse import load_plan
from orchestrator.plan.specs import Spec

PLACEHOLDER = '<p class="muted">loading…</p>'


def asset(name: str) -> bytes:
    return (resources.files("orchestrator.face.web") / "static" / name).read_bytes()


def page_html(repo: Path, spec: Spec | None, token: str | None) -> str:
    query = f"?token={quote(token)}" if token else ""
    shell = asset("index.html").decode().replace("{{query}}", query)
    body = spec_table(spec) if spec else spec_list(repo, query)
    return shell.replace(PLACEHOLDER, body)


def spec_table(spec: Spec) -> str:
    try:
        plan = load_plan(spec.plan_path)
    except OrchestrateError as exc:
        return f'<p class="error">{escape(exc.message)}</p>'
    rows = "".join(
        f'<tr data-subtask="{escape(s.id)}"><td><code>{escape(s.id)}</code></td>'
        f"<td>{escape(s.title)}</td><td><span class=\"status s-{s.status}\">{s.status}"
        "</span></td></tr>" for s in plan.subtasks())
    return (f"<h1>{escape(spec.name)}</h1><table class=\"subtasks\"><thead><tr><th>subtask"
            f"</th><th>description</th><th>status</th></tr></thead><tbody>{rows}</tbody>"
            "</table>")


def spec_list(repo: Path, query: str) -> str:
    rows = "".join(
        f'<tr><td><a href="/specs/{quote(row["name"], safe="")}{escape(query)}">'
        f'{escape(row["name"])}</a></td><td>{escape(_counts(row))}</td></tr>'
        for row in spec_rows(repo))
    return f"<h2>Specs</h2><table><tbody>{rows}</tbody></table>"


def _counts(row: dict[str, object]) -> str:
    counts = row.get("counts")
    if not isinstance(counts, dict):
        return str(row.get("error") or "")
    return ", ".join(f"{n} {word}" for word, n in counts.items())
