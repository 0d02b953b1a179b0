"""The attacker agent of the trust tests (tests/agents/attacker.py) and how a test runs it."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from tests.conftest import run_cli

ATTACKER = Path(__file__).parent / "agents" / "attacker.py"
AGENT = f"{shlex.quote(sys.executable)} {shlex.quote(str(ATTACKER))}"


def attack_env(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "attack"
    folder.mkdir(exist_ok=True)
    return {"ATTACK_DIR": str(folder), "ATTACK_SPY": str(tmp_path / "SPY")}


def attacked_build(repo: Path, tmp_path: Path, *args: str, check: int | None = None,
                   command: str = "build") -> str:
    done = run_cli(repo, command, "001", "--agent-command", AGENT, *args,
                   env=attack_env(tmp_path), check=check)
    output = done.stdout + done.stderr
    assert "internal error" not in output, output
    assert "Traceback" not in output, output
    return output


def disarm(tmp_path: Path) -> None:
    """Remove what the attacker planted outside the repository, so that the test's own git
    commands afterwards cannot trip the spy."""
    home = Path(os.environ["HOME"])
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    for planted in ("attributes", "ignore"):
        (home / ".config" / "git" / planted).unlink(missing_ok=True)
    assert not (tmp_path / "SPY").exists(), "the spy was touched by the test's own git"
