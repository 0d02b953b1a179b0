"""The build in a browser: a read-only web page per spec that follows a running build (the
plan, events.jsonl, the logs and git), served on loopback by `orchestrate ui` and `build --ui`.

server.py binds and serves (hypercorn on trio); routes.py is the ASGI app (the only routes,
the token, read-only) on responses.py (headers, event streams); page.py is the HTML shell;
snapshot.py and timeline.py turn the plan and the events into the page's JSON; sources.py
reads the files a build writes, defensively; static/ holds the page's script and styles."""
