#!/usr/bin/env python3
"""The demo's offline, deterministic agent: no API key, no network.

It plays a coding agent for the demo plan of scripts/demo.sh: it reads which subtask it is from
ORCHESTRATE_SUBTASK_ID, "thinks" for DEMO_AGENT_SECONDS, then writes that subtask's code.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

OPERATIONS = {"add": "a + b", "subtract": "a - b", "multiply": "a * b",
              "divide": "a / b", "power": "a ** b"}
# Each operation's symbol for the command line. The power agent picks multiply's: each branch
# passes the check on its own, together they break it, so the check ejects power (SPEC 9).
SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "*"}


def write_operation(name: str) -> None:
    Path("calc").mkdir(exist_ok=True)
    Path(f"calc/{name}.py").write_text(
        f'"""The {name} operation."""\n\nSYMBOL = "{SYMBOLS[name]}"\n\n\n'
        f"def {name}(a: float, b: float) -> float:\n    return {OPERATIONS[name]}\n")
    docs = Path("docs/operations.md")
    docs.write_text(docs.read_text().replace(f"- {name}: TODO", f"- {name}: `{name}(a, b)`"))


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
    time.sleep(float(os.environ.get("DEMO_AGENT_SECONDS", "3")))
    if subtask in OPERATIONS:
        write_operation(subtask)
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
