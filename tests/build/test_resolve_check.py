"""SPEC 9 + 10: a subtask the check ejects gets a resolution round whose prompt carries the
check's output, and the agent's fix from that output is merged (with the check passing)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from tests.buildkit import INTEGRATION, SPEC, Recorder, branch_files, statuses
from tests.conftest import commit_all, git, phase, plan_of, read_json, run_cli, write_plan

pytestmark = pytest.mark.slow  # a real build with a check and a resolution round

CHECK = '''\
import pathlib, sys
if pathlib.Path("a.txt").exists() and pathlib.Path("b.txt").exists():
    print("check: a.txt and b.txt cannot both exist; b must remove b.txt and write b2.txt")
    sys.exit(1)
print("check: fine")
'''

AGENT = '''\
import os, pathlib, re, sys
prompt = sys.stdin.read()
subtask = os.environ["ORCHESTRATE_SUBTASK_ID"]
if os.environ.get("ORCHESTRATE_RESOLVING"):
    pathlib.Path(sys.argv[1], f"{subtask}-round.prompt").write_text(prompt)
    match = re.search(r"must remove (\\S+) and write (\\S+)", prompt)
    if match:
        pathlib.Path(match[1]).unlink()
        pathlib.Path(match[2]).write_text("fixed\\n")
else:
    pathlib.Path(f"{subtask}.txt").write_text(f"work of {subtask}\\n")
'''


def test_a_check_failure_is_resolved_from_the_check_output(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    (repo / "check.py").write_text(CHECK)
    commit_all(repo, "the check")
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    command = shlex.join([sys.executable, str(agent), str(tmp_path)])
    run_cli(repo, "build", SPEC, "--agent-command", command, "--check",
            f"{shlex.quote(sys.executable)} check.py", "--check-retries", "0",
            env=recorder.env, check=0)
    assert statuses(repo) == {"a": "completed", "b": "completed"}
    files = branch_files(repo, INTEGRATION)
    assert {"a.txt", "b2.txt"} <= files
    assert "b.txt" not in files
    prompt = (tmp_path / "b-round.prompt").read_text()
    assert "b must remove b.txt and write b2.txt" in prompt  # the check's output reached it
    assert not (tmp_path / "a-round.prompt").exists()
    record = read_json(repo / ".orchestrate" / "specs" / SPEC / "implementation_plan.json")
    b = record["phases"][0]["subtasks"][1]["orchestrate"]
    assert b["resolutions"] == 1
    assert b["resolution"]["kind"] == "check"
    trailers = git(repo, "log", "-1", "--format=%B", f"orchestrate/{SPEC}/b")
    assert "Orchestrate-Resolution: 1" in trailers
    report = read_json(repo / ".orchestrate" / "specs" / SPEC / "conflict_report.json")
    assert [(r["subtask"], r["kind"]) for r in report["resolved"]] == [("b", "check")]
