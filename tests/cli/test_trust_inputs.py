"""Hostile or broken input ends in a clear message and a defined exit status, never an
internal error: NUL in plan text, a reader that goes away (`| head`), and the like."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ORCHESTRATE, phase, plan_of, run_cli, write_plan
from tests.fault_support import AGENT, SPEC, merged_subtasks, statuses


def no_crash(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    assert "internal error" not in output, output
    assert "Traceback" not in output, output
    return output


def test_a_nul_in_plan_text_is_refused_naming_the_field(repo: Path) -> None:
    plan = plan_of(phase(1, ["a", "b"]))
    plan["phases"][0]["subtasks"][1]["description"] = "evil \u0000 text"
    plan_path = write_plan(repo, SPEC, plan)
    before = plan_path.read_bytes()
    for command in (["validate", "001"], ["build", "001", "--agent-command", "true"]):
        done = run_cli(repo, *command, check=2)
        assert "phases[0].subtasks[1].description" in no_crash(done)
        assert "NUL" in done.stderr
    assert plan_path.read_bytes() == before


def test_control_characters_in_plan_text_never_reach_the_terminal(repo: Path) -> None:
    """An agent without a sandbox may write escape sequences into the plan: `status` and
    `review` show the text without them (a title that clears the screen or renames the
    terminal window stays text)."""
    plan = plan_of(phase(1, ["a"]))
    plan["phases"][0]["name"] = "P\x1b[2J"
    plan["phases"][0]["subtasks"][0]["description"] = "x\x1b]0;pwned\x07\x1b[31my\rz"
    write_plan(repo, SPEC, plan)
    run_cli(repo, "build", "001", "--agent-command", AGENT, check=0)
    for command in (["status", "001"], ["review", "001"], ["validate", "001"]):
        done = run_cli(repo, *command, check=0)
        output = no_crash(done)
        assert not [c for c in output if c < " " and c not in "\n"], (command, output)
    assert "  xy" in run_cli(repo, "status", "001").stdout  # the title: its first line


def many_subtasks(repo: Path, count: int) -> Path:
    subtasks = [{"id": f"s{i:03}", "description": "x", "status": "pending",
                 "files_to_modify": ["src/**", f"src/own{i}.py"]} for i in range(count)]
    plan = {"phases": [{"phase": 1, "name": "P", "parallel_safe": True, "subtasks": subtasks}]}
    return write_plan(repo, SPEC, json.dumps(plan))


def test_validate_into_a_closed_pipe_exits_quietly(repo: Path) -> None:
    many_subtasks(repo, 40)
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before anything is written (`| head -0`)
    try:
        done = subprocess.run([*ORCHESTRATE, "validate", "001"], cwd=repo, stdout=writer,
                              stderr=subprocess.PIPE, text=True, check=False)
    finally:
        os.close(writer)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""


@pytest.mark.slow
def test_build_into_head_keeps_building_and_fails_nothing(repo: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b", "c"], parallel=True),
                                               phase(2, ["d"])))
    with subprocess.Popen([*ORCHESTRATE, "build", "001", "--agent-command", AGENT],
                          cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as build:
        assert build.stdout is not None
        assert build.stderr is not None
        build.stdout.readline()
        build.stdout.close()  # `| head -1`
        errors = build.stderr.read().decode()
        code = build.wait(timeout=120)
    assert "internal error" not in errors
    assert code == 0, errors
    assert set(statuses(plan_path).values()) == {"completed"}
    assert merged_subtasks(repo) == {"a": 1, "b": 1, "c": 1, "d": 1}


def test_a_ray_that_fails_to_import_is_exit_2_naming_the_extra(repo: Path,
                                                                tmp_path: Path) -> None:
    broken = tmp_path / "site" / "ray"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libray.so: cannot open')\n")
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    done = run_cli(repo, "build", "001", "--runner", "ray", "--agent-command", "true",
                   env={"PYTHONPATH": str(tmp_path / "site")}, check=2)
    assert "orchestrate[ray]" in no_crash(done)
    assert "fails to import" in done.stderr


@pytest.mark.slow
def test_a_stale_lock_on_the_integration_ref_is_named_with_its_age(repo: Path) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    integration = f"orchestrate/{SPEC}/integration"
    subprocess.run(["git", "branch", integration, "main"], cwd=repo, check=True)
    lock = repo / ".git" / "refs" / "heads" / f"{integration}.lock"
    lock.write_text("")
    two_hours_ago = lock.stat().st_mtime - 7200
    os.utime(lock, (two_hours_ago, two_hours_ago))
    done = run_cli(repo, "build", "001", "--agent-command", AGENT, check=1)
    assert f"the lock file {lock} exists (2.0 h old)" in no_crash(done)
    lock.unlink()
    run_cli(repo, "build", "001", "--agent-command", AGENT, check=0)
    assert statuses(plan_path) == {"a": "completed"}
