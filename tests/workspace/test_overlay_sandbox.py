"""An agent in the bubblewrap sandbox works in its copy-on-write worktree like in any other:
the overlay is what the sandbox binds, `git status` inside sees the agent's file and nothing
else, and the commit holds it. Skipped, saying why, without bubblewrap or overlay mounts."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from tests.buildkit import INTEGRATION, SPEC
from tests.conftest import git, phase, plan_of, run_cli, write_plan
from tests.sandbox_support import needs_bwrap
from tests.workspace.test_overlay import WHY_NOT

pytestmark = [pytest.mark.slow, needs_bwrap,
              pytest.mark.skipif(WHY_NOT is not None,
                                 reason=f"overlay worktrees cannot be mounted here: {WHY_NOT}")]

OVERLAY = {"ORCHESTRATE_WORKSPACE": "overlay"}  # whatever the suite's default
AGENT = """\
import os, subprocess
here = os.path.realpath(".")
kinds = [line.split(" - ")[1].split()[0] for line in open("/proc/self/mountinfo")
         if line.split()[4] == here]
open("work.txt", "w").write("written in the sandbox\\n")
status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                        capture_output=True, text=True, check=True).stdout
open("seen.txt", "w").write(f"{kinds[-1] if kinds else 'none'}\\n{status}")
"""


def test_a_sandboxed_agent_writes_in_its_overlay_worktree(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-a", "sub-b"], parallel=True)))
    run_cli(repo, "build", SPEC, "--sandbox", "bwrap", "--agent-command",
            f"{sys.executable} -c {shlex.quote(AGENT)}",  # /tmp is masked inside
            env=OVERLAY, check=0)
    for subtask in ("sub-a", "sub-b"):
        seen = git(repo, "show", f"orchestrate/{SPEC}/{subtask}:seen.txt")
        assert seen.splitlines() == ["overlay", "?? work.txt"]
        assert git(repo, "show", f"{INTEGRATION}:work.txt") == "written in the sandbox"
