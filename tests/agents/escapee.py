#!/usr/bin/env python3
"""An agent that tries to break out of its worktree (the sandbox tests): the subtask id's first
word picks the escape. Each one writes its own work (`<id>.txt`) and what its escape did
(`<id>.result`, one line per try: `<what>: done` or `<what>: refused (<error>)`) into its
worktree, and exits 0 whatever happened: a refused action is the agent's problem.

Its targets are in `.orchestrate/escape.json` of the user's checkout (which the sandbox shows
read-only): `secret` (the API key to look for), `port` (a TCP server on the host's loopback),
`socket` (a Unix socket of the host), `mark` (the name of a process to leave running).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

WORKTREE = Path.cwd()
SUBTASK = os.environ.get("ORCHESTRATE_SUBTASK_ID", WORKTREE.name)
# the user's checkout: three levels above .orchestrate/worktrees/<spec>/<id>
REPO = WORKTREE.parents[3]
SIBLING = WORKTREE.parent / "victim"
RESULTS: list[str] = []
TARGETS = json.loads((REPO / ".orchestrate" / "escape.json").read_text())


def attempt(what: str, action: Callable[[], object]) -> None:
    try:
        action()
        RESULTS.append(f"{what}: done")
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if isinstance(
            exc, subprocess.CalledProcessError) and exc.stderr else str(exc)
        RESULTS.append(f"{what}: refused ({' '.join(detail.split())[:200]})")


def run(*argv: str, cwd: Path = WORKTREE) -> None:
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, timeout=30)


def write(path: Path, text: str, mode: str = "w") -> None:
    with path.open(mode) as handle:
        handle.write(text)


def checkout() -> None:
    attempt("write a new file", lambda: write(REPO / "planted.txt", "escaped\n"))
    attempt("change a tracked file", lambda: write(REPO / "README.md", "escaped\n", "a"))


def sibling() -> None:
    attempt("plant a file", lambda: write(SIBLING / "planted.txt", "escaped\n"))


def deletes() -> None:
    attempt("delete the sibling's worktree", lambda: shutil.rmtree(SIBLING))


def victim() -> None:
    time.sleep(4)  # alive while the others try


def secrets() -> None:
    secret = TARGETS["secret"]
    found = [k for k, v in os.environ.items() if secret in v or k.startswith("ANTHROPIC")]
    subtasks = set()
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            data = Path(path).read_bytes()
        except OSError:
            continue
        subtasks |= {v.split(b"=", 1)[1].decode() for v in data.split(b"\0")
                     if v.startswith(b"ORCHESTRATE_SUBTASK_ID=")}
        if secret.encode() in data:
            found.append(f"{path}: {data.decode(errors='replace')}")
    seen = []
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            seen.append(Path(path).read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    RESULTS.append(f"processes seen: {seen}")
    RESULTS.append(f"subtasks seen: {sorted(subtasks)}")
    RESULTS.append(f"credentials found: {found}")
    RESULTS.append(f"environment: {sorted(os.environ)}")


def hooks() -> None:
    git_dir = REPO / ".git"
    attempt("plant a hook", lambda: write(git_dir / "hooks" / "post-commit", "#!/bin/sh\n"))
    attempt("set core.fsmonitor", lambda: run("git", "config", "core.fsmonitor", "touch x"))
    attempt("add a filter", lambda: run("git", "config", "filter.x.clean", "touch x"))
    attempt("add a merge driver", lambda: run("git", "config", "merge.x.driver", "touch x"))
    attempt("plant attributes", lambda: write(git_dir / "info" / "attributes", "* merge=x\n"))


def excludes() -> None:
    exclude = REPO / ".git" / "info" / "exclude"
    attempt("append to info/exclude", lambda: write(exclude, "*.txt\n", "a"))


def stash() -> None:
    attempt("pop the user's stash", lambda: run("git", "stash", "pop", cwd=REPO))
    attempt("drop the user's stash", lambda: run("git", "stash", "drop", cwd=REPO))


def refs() -> None:
    attempt("move main", lambda: run("git", "update-ref", "refs/heads/main", "HEAD"))
    attempt("make a branch", lambda: run("git", "branch", "escaped"))
    attempt("commit itself", lambda: run("git", "commit", "--allow-empty", "-qm", "own"))


def plan() -> None:
    plans = glob.glob(str(REPO / ".orchestrate" / "specs" / "*" / "implementation_plan.json"))
    attempt("edit the plan", lambda: write(Path(plans[0]), "{}\n"))


def lingers() -> None:
    mark = TARGETS["mark"]
    attempt("leave a process running", lambda: subprocess.Popen(
        ["setsid", "sh", "-c", f"exec -a {mark} sleep 300"], start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def network() -> None:
    port = TARGETS["port"]
    attempt("reach the host's loopback", lambda: socket.create_connection(
        ("127.0.0.1", port), timeout=5).close())
    attempt("reach the internet", lambda: socket.create_connection(
        ("1.1.1.1", 443), timeout=5).close())
    proxy = os.environ.get("HTTPS_PROXY", "")
    if proxy:
        attempt("tunnel to a host not on the list", lambda: _connect_through(proxy))


def _connect_through(proxy: str) -> None:
    host, port = proxy.removeprefix("http://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"CONNECT not-on-the-list.example:443 HTTP/1.1\r\n\r\n")
        answer = conn.recv(4096).decode(errors="replace").splitlines()[0]
    if " 200 " not in answer:
        raise OSError(answer)


def unix() -> None:
    path = TARGETS["socket"]

    def connect() -> None:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(path)
    attempt("connect to a host Unix socket", connect)


def home() -> None:
    attempt("read ~/.ssh/id_ed25519", lambda: Path("~/.ssh/id_ed25519").expanduser().read_text())
    attempt("write into the home", lambda: write(Path("~/planted.txt").expanduser(), "x\n"))


ESCAPES = {"checkout": checkout, "sibling": sibling, "deletes": deletes, "victim": victim,
           "secrets": secrets, "hooks": hooks, "excludes": excludes, "stash": stash,
           "refs": refs, "plan": plan, "lingers": lingers, "network": network, "unix": unix,
           "home": home}


def main() -> int:
    ESCAPES[SUBTASK.split("-")[0]]()
    (WORKTREE / f"{SUBTASK}.txt").write_text(f"{SUBTASK}\n")
    (WORKTREE / f"{SUBTASK}.result").write_text("".join(f"{line}\n" for line in RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
