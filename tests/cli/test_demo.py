"""The README's first command: `bash scripts/demo.sh DIR` builds the demo repository offline and
shows what it promises (a culprit ejected by the check, a conflict the agent resolves)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_builds_ejects_the_culprit_and_resolves_the_conflict(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = {**os.environ, "ORCHESTRATE_VENV": sys.prefix, "DEMO_AGENT_SECONDS": "1"}
    done = subprocess.run(["bash", str(PROJECT / "scripts" / "demo.sh"), str(demo)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "7 completed" in out
    assert "subtract completed after a resolution round: ejected by the check" in out
    assert "power completed after a resolution round: a merge conflict in docs/operations.md" \
        in out
    assert "1024" in out  # `python3 -m calc power 2 10` on the integration branch
    assert git(demo, "status", "--porcelain") == ""  # the user's checkout untouched
    assert git(demo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert "internal error" not in out
    assert "this is a bug" not in out
