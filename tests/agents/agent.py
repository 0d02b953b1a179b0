"""A scriptable stand-in for a coding agent, run by `orchestrate build --agent-command`.

It writes `<subtask-id>.txt` in its worktree and appends JSON lines (start, end, child) to the
file named by ORCH_TEST_RECORD, so tests measure what really happened from outside the program
under test. Options take `ID=VALUE` pairs; `*` as ID matches every subtask.

In a resolution round (ORCHESTRATE_RESOLVING set) an agent given `--resolve ID=MODE` does only
MODE: `both` keeps both sides of every conflict block in the files `git status` shows
unmerged, `leave` changes nothing, `commit` resolves and commits, `abort` aborts the merge,
`hang` sleeps; without `--resolve` it does its usual work.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SUBTASK = os.environ.get("ORCHESTRATE_SUBTASK_ID", "?")


def record(event: str, **fields: object) -> None:
    line = json.dumps({"event": event, "id": SUBTASK, "pid": os.getpid(),
                       "pgid": os.getpgid(0), "t": time.time(), **fields}) + "\n"
    fd = os.open(os.environ["ORCH_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one O_APPEND write: lines of concurrent agents never mix
    finally:
        os.close(fd)


def value_for(pairs: list[str], default: str | None = None) -> str | None:
    """The VALUE of the last `ID=VALUE` (or bare `ID`) naming this subtask or `*`."""
    found = default
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if key in (SUBTASK, "*"):
            found = value if sep else ""
    return found


def fail(reason: str) -> None:
    print(f"BOOM {SUBTASK}: {reason}")
    print(f"BOOM-STDERR {SUBTASK}: {reason}", file=sys.stderr)
    record("end", ok=False, reason=reason)
    sys.exit(1)


def spawn_grandchild(ignore_term: bool) -> None:
    code = ("import signal, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
            + "time.sleep(1000)\n")
    child = subprocess.Popen([sys.executable, "-c", code])
    record("child", child=child.pid)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for name in ("sleep", "fail", "fail-while", "require", "hang", "dump-stdin", "commit",
                 "special", "grandchild", "ignore-term", "print", "show", "append", "switch",
                 "resolve"):
        parser.add_argument(f"--{name}", action="append", default=[])
    return parser.parse_args()


def main() -> None:
    args = parse()
    prompt = sys.stdin.read()
    env = {k: v for k, v in os.environ.items() if k.startswith("ORCHESTRATE_")}
    shown = {name: Path(name).read_text() if Path(name).is_file() else None
             for name in (value_for(args.show) or "").split(",") if name}
    record("start", cwd=os.getcwd(), env=env, prompt=prompt, files=shown,
           branch=current_branch(), resolving=os.environ.get("ORCHESTRATE_RESOLVING"))
    if os.environ.get("ORCHESTRATE_RESOLVING") and (mode := value_for(args.resolve)):
        resolve(mode)
        record("end", ok=True)
        return
    if value_for(args.ignore_term) is not None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if (folder := value_for(args.dump_stdin)) is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Path(folder, f"{SUBTASK}.{time.time_ns()}.txt").write_text(prompt)
    if (text := value_for(args.print)) is not None:
        print(text, flush=True)
    if (mode := value_for(args.grandchild)) is not None:
        spawn_grandchild(ignore_term=mode == "ignore-term")
    if value_for(args.hang) is not None:
        time.sleep(1000)
    time.sleep(float(value_for(args.sleep, "0") or 0))
    for needed in (value_for(args.require) or "").split(","):
        if needed and not Path(needed).exists():
            fail(f"{needed} is missing")
    if (flag := value_for(args.fail_while)) is not None and Path(flag).exists():
        fail(f"{flag} exists")
    if value_for(args.fail) is not None:
        fail("told to fail")
    Path(f"{SUBTASK}.txt").write_text(f"work of {SUBTASK}\n")
    for name in (value_for(args.append) or "").split(","):
        if name:
            with Path(name).open("a") as handle:
                handle.write(f"edit by {SUBTASK}\n")
    if value_for(args.commit) is not None:
        do_own_commit()
    if (other := value_for(args.switch)) is not None:
        subprocess.run(["git", "switch", "-q", "-c", other], check=True)
    if value_for(args.special) is not None:
        for folder in (".orchestrate", ".auto-claude"):
            Path(folder).mkdir(exist_ok=True)
            Path(folder, f"{SUBTASK}-note.txt").write_text("agent scratch\n")
    record("end", ok=True)


def resolve(mode: str) -> None:
    if mode == "hang":
        time.sleep(1000)
    if mode == "abort":
        subprocess.run(["git", "merge", "--abort"], check=True)
    if mode in ("both", "commit"):
        for path in unmerged_paths():
            keep_both_sides(Path(path))
    if mode == "commit":
        subprocess.run(["git", "commit", "-qam", "resolved by the agent itself"], check=True)


def unmerged_paths() -> list[str]:
    done = subprocess.run(["git", "diff", "--name-only", "--diff-filter=U", "-z"],
                          capture_output=True, text=True, check=True)
    return [p for p in done.stdout.split("\0") if p]


def keep_both_sides(path: Path) -> None:
    """Drop git's marker lines: both sides' lines stay, ours first."""
    markers = ("<<<<<<< ", "=======", ">>>>>>> ", "||||||| ")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines
                            if not line.rstrip("\n").startswith(markers)
                            and line.rstrip("\n") != "======="))


def current_branch() -> str:
    done = subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip()


def do_own_commit() -> None:
    Path(f"{SUBTASK}-own.txt").write_text(f"committed by the agent of {SUBTASK}\n")
    subprocess.run(["git", "add", f"{SUBTASK}-own.txt"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"agent's own commit for {SUBTASK}"],
                   check=True)


if __name__ == "__main__":
    main()
