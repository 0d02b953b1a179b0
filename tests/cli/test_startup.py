"""`status`, `validate`, `list`, `--help` and `--version` start fast: they never import anthropic
(seconds to import), trio, GitPython or rich."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ORCHESTRATE, phase, plan_of, write_plan

HEAVY = ("anthropic", "trio", "git", "rich")

# Runs the real CLI entry point in-process, then records every module it imported.
HARNESS = """
import json, os, sys
for name in sys.argv[2:]:
    __import__(name)
sys.argv = ["orchestrate", *json.loads(sys.argv[1])]
from orchestrator.cli.app import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
with open(os.environ["MODULES_OUT"], "w") as out:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, out)
"""

COMMANDS = [
    ["status", "001"], ["status", "001", "--json"], ["validate", "001"], ["list"], ["--help"],
    ["--version"], ["status", "--help"], ["validate", "002"], ["status", "003"],
]


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY]


@pytest.fixture
def specs(repo: Path) -> Path:
    write_plan(repo, "001-good", plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["c"])))
    write_plan(repo, "002-broken", plan_of(phase(1, ["a"], depends_on=[1])))
    write_plan(repo, "003-not-json", "{")
    return repo


def _imported(repo: Path, args: list[str], *preload: str) -> tuple[object, list[str]]:
    out = repo.parent / "modules.json"
    done = subprocess.run([sys.executable, "-c", HARNESS, json.dumps(args), *preload],
                          cwd=repo, env={**os.environ, "MODULES_OUT": str(out)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    return result["exit"], result["modules"]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_light_commands_do_not_import_heavy_modules(specs: Path, args: list[str]) -> None:
    code, modules = _imported(specs, args)
    assert code == (2 if args[-1] in ("002", "003") else 0)
    assert "orchestrator.cli.app" in modules
    assert _heavy(modules) == []


def test_the_check_sees_a_heavy_import(specs: Path) -> None:
    """Control: the harness does report trio when something on the path imports it."""
    _, modules = _imported(specs, ["status", "001"], "orchestrator.door.processes")
    assert "trio" in _heavy(modules)


def test_importtime_of_the_real_program(specs: Path) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", *ORCHESTRATE[1:], "status", "001"],
                          cwd=specs, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "001-good: 0/3 completed" in done.stdout
    imported = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:") and "|" in line]
    assert "orchestrator.cli.app" in imported
    assert "click" in imported
    assert _heavy(imported) == []
