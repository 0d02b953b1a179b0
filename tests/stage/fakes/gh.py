"""A stand-in for the GitHub CLI (`gh`), put on PATH by the pull-request tests.

It keeps its pull requests in the JSON file named by FAKE_GH_STATE and records every call
(argv, and the body file's text at the time). Like the real `gh`, `pr create` fails unless
the head branch exists on the remote (the bare repository named by FAKE_GH_REMOTE).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

STATE = Path(os.environ["FAKE_GH_STATE"])


def load() -> dict[str, Any]:
    if STATE.exists():
        state: dict[str, Any] = json.loads(STATE.read_text())
        return state
    return {"authenticated": True, "pulls": [], "calls": []}


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def body_of(args: list[str]) -> str | None:
    path = option(args, "--body-file")
    return Path(path).read_text(encoding="utf-8") if path else None


def on_remote(branch: str) -> bool:
    done = subprocess.run(["git", "--git-dir", os.environ["FAKE_GH_REMOTE"], "rev-parse",
                           "--verify", "--quiet", f"refs/heads/{branch}"],
                          capture_output=True, check=False)
    return done.returncode == 0


def pr_create(state: dict[str, Any], args: list[str]) -> int:
    head = option(args, "--head") or ""
    if not on_remote(head):
        print(f"pull request create failed: head branch {head!r} not found", file=sys.stderr)
        return 1
    number = len(state["pulls"]) + 1
    url = f"https://github.example/acme/app/pull/{number}"
    state["pulls"].append({"number": number, "url": url, "head": head,
                           "base": option(args, "--base"), "title": option(args, "--title"),
                           "body": body_of(args), "draft": "--draft" in args, "state": "open"})
    print(url)
    return 0


def pr_edit(state: dict[str, Any], args: list[str]) -> int:
    pull = next(p for p in state["pulls"] if p["number"] == int(args[2]))
    if (body := body_of(args)) is not None:
        pull["body"] = body
    if (title := option(args, "--title")) is not None:
        pull["title"] = title
    print(pull["url"])
    return 0


def pr_list(state: dict[str, Any], args: list[str]) -> int:
    head, wanted = option(args, "--head"), option(args, "--state") or "open"
    found = [{"number": p["number"], "url": p["url"]} for p in state["pulls"]
             if p["head"] == head and p["state"] == wanted]
    print(json.dumps(found[: int(option(args, "--limit") or 30)]))
    return 0


def main() -> int:
    args = sys.argv[1:]
    state = load()
    state["calls"].append({"argv": args, "body": body_of(args)})
    try:
        if args[:2] == ["auth", "status"]:
            if not state["authenticated"]:
                print("You are not logged into any GitHub hosts. To log in, run: gh auth login",
                      file=sys.stderr)
                return 1
            print("Logged in to github.example account tester")
            return 0
        commands = {("pr", "create"): pr_create, ("pr", "edit"): pr_edit,
                    ("pr", "list"): pr_list}
        handler = commands.get((args[0], args[1]) if len(args) > 1 else ("", ""))
        if handler is None:
            print(f"fake gh: unsupported call {args}", file=sys.stderr)
            return 2
        return handler(state, args)
    finally:
        STATE.write_text(json.dumps(state, indent=2))


if __name__ == "__main__":
    sys.exit(main())
