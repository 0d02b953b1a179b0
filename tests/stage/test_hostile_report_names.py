"""A file name that smuggles GitHub workflow commands (a line break then `::error::`, `%0A`,
backticks) added by both sides of an add/add conflict: no line of the Markdown report starts
with `::`, not even in git's quoted message or a fence, and the annotations stay escaped."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from merge.markdown import wrap_shell
from tests.buildkit import MANUAL_RESOLVE
from tests.conftest import git, phase, plan_of, run_cli, write_plan
from tests.fault_support import INTEGRATION, SPEC, statuses
from tests.stage.test_injection import ANNOTATION, fences_are_balanced, unescape

NAME = ("x `y` ``` 100%0A\n::error file=a,line=1::pwned\r\n  ::warning::two\r::notice::three"
        "\u2028::error::four\x0b::error::five.txt")
AGENT = f"""\
import os, pathlib
who = os.environ["ORCHESTRATE_SUBTASK_ID"]
pathlib.Path({NAME!r}).write_text(f"from {{who}}\\n::error::content of {{who}}\\n")
"""
LINE_SPLITS = (str.splitlines, lambda text: re.split(r"\r\n|\r|\n", text))


def _commands_in(markdown: str) -> list[str]:
    return [line for split in LINE_SPLITS for line in split(markdown)
            if line.lstrip().startswith("::")]


@pytest.mark.slow
def test_a_hostile_name_in_an_add_add_conflict_never_starts_a_line_with_colons(
        repo: Path, tmp_path: Path) -> None:
    script = tmp_path / "hostile_agent.py"
    script.write_text(AGENT)
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    run_cli(repo, "build", "001", "--agent-command", shlex.join([sys.executable, str(script)]),
            env=MANUAL_RESOLVE, check=1)
    assert statuses(plan_path) == {"a": "completed", "b": "conflict"}
    assert git(repo, "show", f"{INTEGRATION}:{NAME}").startswith("from a")

    written = (plan_path.parent / "conflict_report.md").read_text()
    printed = run_cli(repo, "report", "001", check=0).stdout
    for markdown in (written, printed):
        fences_are_balanced(markdown)
        assert _commands_in(markdown) == []
        assert "CONFLICT (add/add): Merge conflict in x `y` ``` 100%0A\\n:" in markdown
        assert "+from b" in markdown  # both sides' excerpts are there
        assert "+from a" in markdown

    github = run_cli(repo, "report", "001", "--format", "github", check=0).stdout
    lines = github.split("\n")
    assert lines.pop() == ""
    assert lines.pop() == "::notice title=Sandbox::sandbox: none"  # the build's, not a file's
    matches = [ANNOTATION.match(line) for line in lines]
    assert all(matches), lines
    # one annotation per file: the conflict's error names its overlap (no second warning)
    assert [(m.group(1), unescape(m.group(2))) for m in matches if m] == [("error", NAME)]
    assert "100%250A%0A%3A%3Aerror file=a%2Cline=1%3A%3Apwned%0D%0A" in github


def test_a_hostile_name_in_a_shell_command_stays_on_one_line_and_means_itself() -> None:
    command = wrap_shell(["printf", "%s", NAME])
    lines = command.splitlines()  # a long command is folded with ` \` continuations only
    assert len(re.split(r"\r\n|\r|\n", command)) == len(lines)
    assert all(line.endswith(" \\") for line in lines[:-1])
    assert any(line.strip().startswith("$'x `y`") for line in lines)  # the name: one line
    done = subprocess.run(["bash", "-c", command], capture_output=True, check=True,
                          env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    assert done.stdout.decode() == NAME
