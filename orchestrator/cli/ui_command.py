"""`orchestrate ui [SPEC]`: the build in a browser, read-only, on loopback by default; and the
piece `build --ui` uses to serve the same page for the duration of a build."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import cli, repo_of
from orchestrator.cli.support import complete_spec
from orchestrator.plan.specs import Spec, resolve_spec

if TYPE_CHECKING:
    from orchestrator.face.web.server import Listening


@cli.command(short_help="Follow builds in a browser: a live, read-only page.")
@click.argument("spec", required=False, shell_complete=complete_spec)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default="a free port",
              help="The TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on; anything but loopback requires the random "
                   "token printed in the URL.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
@click.pass_context
def ui(ctx: click.Context, spec: str | None, port: int, host: str, open_browser: bool) -> None:
    """Serve a page listing the repository's specs, and one per spec that follows a build
    live (statuses, timeline, logs, diffs, conflicts, bisection, cost); print its URL and
    serve until Ctrl-C (exit 0). Nothing is ever changed."""
    import trio

    from orchestrator.face.web.server import app_for, bind, serve
    from orchestrator.settings import load_settings

    repo = repo_of(ctx)
    found = resolve_spec(repo, spec) if spec else None
    budget = load_settings(repo, {}).budget
    listening = bind(host, port)
    url = listening.url(found.name if found else None)
    click.echo(url)
    if listening.token:
        click.echo(f"listening on {host} beyond loopback: the page needs the token in "
                   "this URL", err=True)
    served = partial(serve, app_for(repo, listening, budget=budget), listening)
    trio.run(_until_signal, served, url if open_browser else None)


async def _until_signal(served: Callable[[], Awaitable[None]], open_url: str | None) -> None:
    import trio

    async with trio.open_nursery() as nursery:
        nursery.start_soon(served)
        if open_url:
            import webbrowser

            nursery.start_soon(partial(trio.to_thread.run_sync, webbrowser.open, open_url))
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


def build_page(spec: Spec, budget: float | None) -> Callable[[], Awaitable[None]]:
    """`build --ui`: bind a free loopback port, print the spec page's URL (the first line the
    build prints) and return the server to run alongside the build."""
    from orchestrator.face.web.server import app_for, bind, serve

    listening: Listening = bind()
    click.echo(listening.url(spec.name))
    return partial(serve, app_for(spec.repo, listening, budget=budget), listening)
