"""`orchestrate mcp` without the mcp extra: exit 2 naming it (the import is made to fail)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_without_the_extra_mcp_is_exit_2_naming_it(repo: Path) -> None:
    code = ("import sys; sys.modules['mcp'] = None; from orchestrator.cli.app import main; "
            "sys.argv = ['orchestrate', *sys.argv[1:]]; main()")
    done = subprocess.run([sys.executable, "-c", code, "mcp"], cwd=repo, capture_output=True,
                          text=True, check=False, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert "the mcp extra" in done.stderr
    assert "pip install 'orchestrate[mcp]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
