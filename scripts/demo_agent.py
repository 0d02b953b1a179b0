#!/usr/bin/env python3
"""The demo's offline, deterministic agent: no API key, no network.

It plays a coding agent for the demo plan of scripts/demo.sh: it reads which subtask it is from
ORCHESTRATE_SUBTASK_ID, "thinks" for DEMO_AGENT_SECONDS, then writes that subtask's code.
In a resolution round (ORCHESTRATE_RESOLVING is the round) it resolves every conflict git left
in its worktree by keeping both sides' lines, its own first, and writes its operation again
with the right symbol (what the check's output in its prompt asks for).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

OPERATIONS = {"add": "a + b", "subtract": "a - b", "multiply": "a * b",
              "divide": "a / b", "power": "a ** b"}
# Each operation's symbol for the command line. On its first try the subtract agent copies add's
# symbol: each branch passes the check on its own, together they break it, so the check ejects
# subtract (SPEC 9) and its resolution round, told the check's output, fixes it (SPEC 10).
FIRST_TRY = {"add": "+", "subtract": "+", "multiply": "*", "divide": "/", "power": "^"}
SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "^"}
NOTES = {"divide": "divide(a, 0) raises ZeroDivisionError.",
         "power": "power(-8, 1 / 3) is a complex number."}


def write_operation(name: str, symbols: dict[str, str]) -> None:
    Path("calc").mkdir(exist_ok=True)
    Path(f"calc/{name}.py").write_text(
        f'"""The {name} operation."""\n\nSYMBOL = "{symbols[name]}"\n\n\n'
        f"def {name}(a: float, b: float) -> float:\n    return {OPERATIONS[name]}\n")
    docs = Path("docs/operations.md")
    text = docs.read_text().replace(f"- {name}: TODO", f"- {name}: `{name}(a, b)`")
    if name in NOTES:  # divide and power both edit this line: one conflict for the demo
        text = text.replace("Notes: none yet.", f"Notes: {NOTES[name]}")
    docs.write_text(text)


def resolve_conflicts() -> None:
    """Keep both sides of every conflict block: drop git's marker lines."""
    listed = subprocess.run(["git", "diff", "--name-only", "--diff-filter=U", "-z"],
                            capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        path = Path(name)
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines
                if not line.startswith(("<<<<<<< ", ">>>>>>> ", "||||||| "))
                and line.rstrip("\n") != "======="]
        path.write_text("".join(kept))
        print(f"demo agent: resolved {name}, both sides kept")


def write_registry() -> None:
    imports = "".join(f"from calc.{n} import {n}\n" for n in OPERATIONS)
    table = ", ".join(f'"{n}": {n}' for n in OPERATIONS)
    Path("calc/__init__.py").write_text(f"{imports}\nOPERATIONS = {{{table}}}\n")


def write_cli() -> None:
    Path("calc/__main__.py").write_text(
        "import sys\n\nfrom calc import OPERATIONS\n\n"
        "op, a, b = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])\n"
        "print(OPERATIONS[op](a, b))\n")


def main() -> int:
    subtask = os.environ["ORCHESTRATE_SUBTASK_ID"]
    print(f"demo agent: working on {subtask} in {Path.cwd()}")
    thinking = float(os.environ.get("DEMO_AGENT_SECONDS", "3"))
    if subtask in OPERATIONS and not os.environ.get("ORCHESTRATE_RESOLVING"):
        # writes first, then looks it over: the conflict radar sees the edits while it works
        time.sleep(thinking / 3)
        write_operation(subtask, FIRST_TRY)
        print("demo agent: written; reading it over")
        time.sleep(2 * thinking / 3)
        print("demo agent: done")
        return 0
    time.sleep(thinking)
    if os.environ.get("ORCHESTRATE_RESOLVING"):
        resolve_conflicts()
        if subtask in OPERATIONS:  # a second look at its own code, as a check failure asks
            write_operation(subtask, SYMBOLS)
    elif subtask == "registry":
        write_registry()
    elif subtask == "cli":
        write_cli()
    else:
        print(f"demo agent: no idea how to do {subtask}", file=sys.stderr)
        return 1
    print("demo agent: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
