"""A command agent for the conflict radar's tests, run by `orchestrate build --agent-command`.

Options take `ID=VALUE` pairs (`*` matches every subtask), done in this order:
    --after ID=MARK      wait until the file $RADAR_MARKS/MARK exists, then --pause seconds
    --edit ID=PATH:LINE  replace line LINE of PATH with a line naming the subtask
    --create ID=PATH     write a new file
    --mark ID=MARK       create $RADAR_MARKS/MARK
    --hear ID            wait (at most 60 s) until the radar told this subtask: its entry in the
                         plan's `orchestrate.radar` (--radar show) or text in
                         ORCHESTRATE_RADAR_FILE (--radar tell), copied to $RADAR_MARKS/<ID>.heard
    --then-edit ID=PATH:LINE   another edit after hearing, then --pause seconds
    --git-loop ID=SECONDS      run `git status` and `git add -A` in a loop; exit 3 on a lock error
Every step is appended as a JSON line to $RADAR_MARKS/<ID>.steps with its time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SUBTASK = os.environ.get("ORCHESTRATE_SUBTASK_ID", "?")
MARKS = Path(os.environ.get("RADAR_MARKS", "."))
HEAR_LIMIT_S = 60.0


def value_for(pairs: list[str]) -> str | None:
    found = None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if key in (SUBTASK, "*"):
            found = value if sep else ""
    return found


def step(name: str, **fields: object) -> None:
    with (MARKS / f"{SUBTASK}.steps").open("a") as handle:
        handle.write(json.dumps({"step": name, "t": time.time(), **fields}) + "\n")


def edit(target: str) -> None:
    path, _, line = target.rpartition(":")
    lines = Path(path).read_text().splitlines(keepends=True)
    lines[int(line) - 1] = f"changed by {SUBTASK}\n"
    Path(path).write_text("".join(lines))
    step("edit", path=path, line=int(line))


def heard() -> str:
    radar_file = os.environ.get("ORCHESTRATE_RADAR_FILE")
    if radar_file:
        return Path(radar_file).read_text() if Path(radar_file).exists() else ""
    plan = json.loads(Path(os.environ["RADAR_PLAN"]).read_text())
    for phase in plan["phases"]:
        for subtask in phase["subtasks"]:
            if subtask["id"] == SUBTASK and subtask.get("orchestrate", {}).get("radar"):
                return json.dumps(subtask["orchestrate"]["radar"])
    return ""


def hear() -> None:
    deadline = time.monotonic() + HEAR_LIMIT_S
    while not (text := heard()) and time.monotonic() < deadline:
        time.sleep(0.05)
    (MARKS / f"{SUBTASK}.heard").write_text(text)
    step("heard", text=text)


def git_loop(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        Path(f"{SUBTASK}-loop.txt").write_text(f"round {rounds}\n")
        for args in (["git", "status", "--porcelain"], ["git", "add", "-A"]):
            done = subprocess.run(args, capture_output=True, text=True, check=False)
            if done.returncode != 0 or "index.lock" in done.stderr:
                step("git-error", args=args, stderr=done.stderr)
                sys.exit(3)
        rounds += 1
    step("git-loop", rounds=rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("after", "edit", "create", "mark", "hear", "then-edit", "git-loop"):
        parser.add_argument(f"--{name}", action="append", default=[])
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args()
    step("start")
    if (mark := value_for(args.after)) is not None:
        while not (MARKS / mark).exists():
            time.sleep(0.02)
        time.sleep(args.pause)
    if (target := value_for(args.edit)) is not None:
        edit(target)
    if (created := value_for(args.create)) is not None:
        Path(created).write_text(f"made by {SUBTASK}\n")
        step("create", path=created)
    if (mark := value_for(args.mark)) is not None:
        (MARKS / mark).touch()
    if (seconds := value_for(args.git_loop)) is not None:
        git_loop(float(seconds))
    if value_for(args.hear) is not None:
        hear()
    if (target := value_for(args.then_edit)) is not None:
        edit(target)
        time.sleep(args.pause)
    step("end")


if __name__ == "__main__":
    main()
