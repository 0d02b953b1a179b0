"""Hostile text in the plan and in file names: it never reaches a shell, and the Markdown and
GitHub reports keep it inside the places meant for it."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import pytest

from tests.conftest import git, phase, plan_of, run_cli, write_plan
from tests.fault_support import (
    INTEGRATION,
    SPEC,
    build,
    checkout_state,
    merged_subtasks,
    statuses,
    subtasks,
)

pytestmark = pytest.mark.slow  # real builds with hostile names

HOSTILE_PATH = "notes|`x` ```,y: 100%\n## Injected heading\n::error::pwned\r|.txt"
FIRST, SECOND = "hostile-first|`a`", "hostile-second|``b``"
ANNOTATION = re.compile(r"^::(error|warning) file=([^,:\r\n]*),line=(\d+),(?:endLine=\d+,)?"
                        r"title=([^,:\r\n]*)::([^\r\n]*)$")


def hostile_id(token: str) -> str:
    """An id git accepts as a branch name that runs `touch` in $HOME if a shell evaluates it
    bare, in double quotes or in single quotes."""
    return (f"echo-prompt$(cd;touch${{IFS}}PWNED_{token})`cd;touch${{IFS}}PWNED_TICK_{token}`"
            f"'$(cd;touch${{IFS}}PWNED_SQ_{token})'")


def hostile_description(token: str) -> str:
    """The same for /tmp, over two lines and with a Markdown heading."""
    return (f"$(touch /tmp/PWNED_{token}) `touch /tmp/PWNED_{token}_tick` "
            f"'$(touch /tmp/PWNED_{token}_sq)' \"$(touch /tmp/PWNED_{token}_dq)\"\n"
            f"second line $(touch /tmp/PWNED_{token}_line2)\n## not a heading")


def pwned_files(token: str, *folders: Path) -> list[Path]:
    """Files a shell that evaluated the hostile text would have made: in /tmp, or anywhere
    under `folders`."""
    return [*Path("/tmp").glob(f"PWNED_{token}*"),
            *(p for folder in folders for p in folder.rglob(f"PWNED*{token}*"))]


def test_hostile_ids_and_descriptions_never_reach_a_shell(repo: Path) -> None:
    token = secrets.token_hex(6)
    subtask_id = hostile_id(token)
    plan = plan_of(phase(1, [subtask_id, "sibling"], parallel=True))
    plan["phases"][0]["subtasks"][0]["description"] = hostile_description(token)
    plan_path = write_plan(repo, SPEC, plan)
    before = checkout_state(repo)
    build(repo, check=0)
    home = Path(os.environ["HOME"])
    assert pwned_files(token, home, repo) == []
    assert statuses(plan_path) == {subtask_id: "completed", "sibling": "completed"}
    branch = f"orchestrate/{SPEC}/{subtask_id}"
    prompts = {name: git(repo, "show", f"{branch}:{name}")
               for name in ("prompt-stdin.txt", "prompt-env.txt", "prompt-file.txt")}
    assert len(set(prompts.values())) == 1
    assert hostile_description(token).strip() in prompts["prompt-stdin.txt"]
    assert git(repo, "show", f"{branch}:subtask-id.txt") == subtask_id
    first_line = hostile_description(token).splitlines()[0]
    assert git(repo, "log", "-1", "--format=%s", branch) == f"{subtask_id}: {first_line}"
    assert merged_subtasks(repo) == {subtask_id: 1, "sibling": 1}
    for command in (["status", "001"], ["report", "001"], ["review", "001"],
                    ["review", "001", subtask_id], ["list"]):
        run_cli(repo, *command, check=0)
    assert pwned_files(token, home, repo) == []
    assert checkout_state(repo) == before


def build_hostile_conflict(repo: Path) -> Path:
    """Two subtasks with hostile ids add the same hostile path (a conflict) and edit separate
    lines of src/app.py (an overlap)."""
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, [FIRST, SECOND], parallel=True)))
    before = checkout_state(repo)
    build(repo, "--resolve", "manual", check=1)  # the conflict stays for the report
    assert checkout_state(repo) == before
    assert statuses(plan_path) == {FIRST: "completed", SECOND: "conflict"}
    assert subtasks(plan_path)[SECOND]["orchestrate"]["error"].startswith("merge conflict in ")
    assert merged_subtasks(repo) == {FIRST: 1}
    assert git(repo, "show", f"{INTEGRATION}:{HOSTILE_PATH}") == "first"
    return plan_path


def fences_are_balanced(markdown: str) -> list[str]:
    """Lines outside code fences; fails if a fence is left open."""
    outside, fence = [], None
    for line in markdown.splitlines():
        if fence is None and (opened := re.match(r"^(`{3,})[\w-]*$", line)):
            fence = opened.group(1)
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            outside.append(line)
    assert fence is None, "a code fence was never closed"
    return outside


def test_the_markdown_report_keeps_hostile_names_in_their_cells_spans_and_fences(
        repo: Path) -> None:
    plan_path = build_hostile_conflict(repo)
    for markdown in (run_cli(repo, "report", "001", check=0).stdout,
                     (plan_path.parent / "conflict_report.md").read_text()):
        outside = fences_are_balanced(markdown)
        rows = [line for line in outside if line.startswith("| ")]
        assert len(rows) == 4  # header, rule, two subtasks
        for row in rows:
            assert len(re.findall(r"(?<!\\)\|", row)) == 7, row
        assert not [line for line in outside if line.startswith(("## Injected", "::"))]
        headings = [line for line in outside if line.startswith("#")]
        assert [h.split(":")[0] for h in headings] == [
            "## orchestrate", "### Conflict 1", "### Overlap 1"]  # the conflict's overlap folded
        assert "| `` hostile-first\\|`a` `` | `1` | completed |" in markdown


def unescape(value: str) -> str:
    for escaped, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","),
                          ("%25", "%")):
        value = value.replace(escaped, char)
    return value


def test_github_annotations_escape_hostile_names(repo: Path) -> None:
    build_hostile_conflict(repo)
    out = run_cli(repo, "report", "001", "--format", "github", check=0).stdout
    report = json.loads(run_cli(repo, "report", "001", "--format", "json", check=0).stdout)
    lines = out.split("\n")
    assert lines.pop() == ""
    assert lines.pop() == "::notice title=Sandbox::sandbox: none"  # the build's, not a file's
    matches = [ANNOTATION.match(line) for line in lines]
    assert all(matches), lines
    assert [(m.group(1), unescape(m.group(2))) for m in matches if m] == [
        ("error", HOSTILE_PATH), ("warning", "src/app.py")]  # the conflict's overlap folded
    assert [(c["kind"], c["path"]) for c in report["conflicts"]] == [
        ("conflict", HOSTILE_PATH), ("overlap", HOSTILE_PATH), ("overlap", "src/app.py")]
    message = unescape(next(m.group(5) for m in matches if m))
    assert FIRST in message
    assert SECOND in message


def test_a_resolution_round_on_hostile_names_never_reaches_a_shell(repo: Path) -> None:
    """The conflict of build_hostile_conflict goes back to the agent (SPEC 10): the resolution
    prompt carries the hostile path, ids and descriptions, and none of them reaches a shell."""
    token = secrets.token_hex(6)
    plan = plan_of(phase(1, [FIRST, SECOND], parallel=True))
    for subtask in plan["phases"][0]["subtasks"]:
        subtask["description"] = hostile_description(token)
    plan_path = write_plan(repo, SPEC, plan)
    before = checkout_state(repo)
    build(repo, check=0)
    assert pwned_files(token, Path(os.environ["HOME"]), repo) == []
    assert checkout_state(repo) == before
    assert statuses(plan_path) == {FIRST: "completed", SECOND: "completed"}
    assert subtasks(plan_path)[SECOND]["orchestrate"]["resolutions"] == 1
    report = json.loads((plan_path.parent / "conflict_report.json").read_text())
    assert report["resolved"][0]["paths"] == [HOSTILE_PATH]
