"""Subtask logs carry a run header at each build's first write (start time, pid, agent), and
`review SPEC ID` pages long diffs like git does (only on a terminal; GIT_PAGER, PAGER, less
with LESS=FRX) and never colours with NO_COLOR. Real builds, a pty, the spawned CLI."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.conftest import ORCHESTRATE, phase, plan_of, run_cli, write_plan
from tests.report_scenario import build_scenario

pytestmark = pytest.mark.slow  # real builds, a pty and a pager

SPEC = "001-logs"
RUN_HEADER = re.compile(r"^######## build of (\S+) started (\S+), pid (\d+), agent (.+) ########$")


def test_each_build_starts_its_part_of_a_log_with_a_run_header(repo: Path,
                                                                tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.write_text("")
    agent = f"test ! -e {shlex.quote(str(flag))} && echo done > a.txt"
    path = write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    run_cli(repo, "build", SPEC, "--agent-command", agent, "--retries", "1", check=1)
    flag.unlink()
    run_cli(repo, "build", SPEC, "--agent-command", agent, "--retry-failed", check=0)
    lines = (path.parent / "logs" / "a.log").read_text().splitlines()
    headers = [(n, m) for n, line in enumerate(lines) if (m := RUN_HEADER.match(line))]
    assert len(headers) == 2  # one per build, not one per attempt
    assert next(line for line in lines if line.strip()) == lines[headers[0][0]]  # first write
    (first, one), (second, two) = headers
    assert one.group(1) == two.group(1) == "a"
    assert one.group(3) != two.group(3)  # each build's own pid
    assert one.group(2) <= two.group(2)
    assert one.group(4).startswith("command")
    attempts = [n for n, line in enumerate(lines) if line.startswith("===== ")]
    assert len(attempts) == 3  # two attempts in the first build, one in the second
    assert first < attempts[0] < attempts[1] < second < attempts[2]


def _read_all(reader: BinaryIO) -> bytes:
    chunks = []
    with contextlib.suppress(OSError):  # Linux reports the closed terminal as EIO
        while chunk := reader.read1(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def on_terminal(repo: Path, env: dict[str, str], *args: str) -> bytes:
    ambient = {k: v for k, v in os.environ.items()
               if k not in ("GIT_PAGER", "PAGER", "LESS", "NO_COLOR")}
    leader, follower = os.openpty()
    with os.fdopen(leader, "rb") as reader:
        done = subprocess.run([*ORCHESTRATE, *args], cwd=repo, stdout=follower,
                              stderr=subprocess.PIPE, env={**ambient, **env}, timeout=60,
                              check=False)
        os.close(follower)
        assert done.returncode == 0, done.stderr
        return _read_all(reader)


@pytest.fixture
def scenario(repo: Path) -> Path:
    build_scenario(repo)
    return repo


def fake_pager(tmp_path: Path) -> tuple[str, Path]:
    """A pager command that records its input and its LESS setting."""
    seen = tmp_path / "paged.txt"
    return f"{{ printf 'LESS=%s\\n' \"$LESS\"; cat; }} > {shlex.quote(str(seen))}", seen


def test_review_of_a_subtask_goes_through_the_pager_on_a_terminal(scenario: Path,
                                                                 tmp_path: Path) -> None:
    pager, seen = fake_pager(tmp_path)
    shown = on_terminal(scenario, {"PAGER": pager}, "review", "001", "ui")
    paged = seen.read_text()
    assert paged.startswith("LESS=FRX\n")  # git's default for less
    assert "five by ui" in paged
    assert b"five by ui" not in shown  # the pager had it, not the terminal directly
    seen.unlink()
    on_terminal(scenario, {"PAGER": "false", "GIT_PAGER": pager, "LESS": "R"},
                "review", "001", "ui")
    assert seen.read_text().startswith("LESS=R\n")  # GIT_PAGER first; the user's LESS kept
    on_terminal(scenario, {"GIT_PAGER": pager}, "review", "001")
    assert "orchestrate/001-demo/ui" in seen.read_text()  # the listing is paged too


def test_review_prints_directly_when_piped_or_the_pager_is_cat(scenario: Path,
                                                              tmp_path: Path) -> None:
    pager, seen = fake_pager(tmp_path)
    out = run_cli(scenario, "review", "001", "ui", env={"GIT_PAGER": pager}, check=0).stdout
    assert "five by ui" in out
    assert not seen.exists()
    shown = on_terminal(scenario, {"GIT_PAGER": "cat"}, "review", "001", "ui")
    assert b"five by ui" in shown


def test_review_never_colours_with_no_color(scenario: Path) -> None:
    shown = on_terminal(scenario, {"GIT_PAGER": "cat"}, "review", "001", "ui")
    assert b"\x1b[" in shown  # coloured on a terminal
    plain = on_terminal(scenario, {"GIT_PAGER": "cat", "NO_COLOR": "1"}, "review", "001", "ui")
    assert b"five by ui" in plain
    assert b"\x1b[" not in plain
