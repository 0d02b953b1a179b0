"""`orchestrate attach`: a command agent under a pseudo-terminal (`pty = true`), attached to
from another terminal. Real processes in real ptys, rendered by a terminal emulator (pyte)."""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import time
from pathlib import Path

import pyte
import pytest

from tests.conftest import ORCHESTRATE, git, phase, plan_of, run_cli, write_plan
from tests.watchdog import kill_tree

SPEC = "001-attach"
DEADLINE_S = 60.0


class Terminal:
    """A process whose stdin, stdout and stderr are a pty we type into and read."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                                        start_new_session=True)
        os.close(slave)
        self.screen = pyte.Screen(100, 30)
        self.stream = pyte.ByteStream(self.screen)

    def shows(self, text: str) -> bool:
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.stream.feed(chunk)
        return any(text in line for line in self.screen.display)

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not self.shows(text):
            assert time.monotonic() < deadline, f"never shown: {text!r}\n" + "\n".join(
                line.rstrip() for line in self.screen.display)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        if self.process.poll() is None:
            kill_tree(self.process.pid)
            self.process.wait()
        os.close(self.master)


def wait_until(what: str, found: object) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not found():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_keystrokes_reach_the_agent_and_ctrl_bracket_detaches(repo: Path,
                                                              tmp_path: Path) -> None:
    finish = tmp_path / "finish"
    agent = ('printf "name please: "; read answer; echo "got: $answer"; '
             'echo "$answer" > answer.txt; '
             f"while [ ! -e {shlex.quote(str(finish))} ]; do sleep 0.05; done")
    (repo / "orchestrate.toml").write_text("pty = true\n")
    git(repo, "add", "orchestrate.toml")
    git(repo, "commit", "-qm", "pty agents")
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    logs = plan.parent / "logs"
    output = (tmp_path / "build.out").open("wb")
    build = subprocess.Popen([*ORCHESTRATE, "build", SPEC, "--agent-command", agent],
                             cwd=repo, stdout=output, stderr=subprocess.STDOUT,
                             process_group=0)
    attached = None
    try:
        wait_until("the agent's prompt", lambda: (logs / "a.keys").exists() and
                   b"name please" in (logs / "a.log").read_bytes())
        attached = Terminal([*ORCHESTRATE, "attach", SPEC, "a"], repo)
        attached.wait_for("name please:")
        attached.type(b"orchestrate\r")
        attached.wait_for("got: orchestrate")
        attached.type(b"\x1d")  # Ctrl-]
        assert attached.process.wait(timeout=DEADLINE_S) == 0
        attached.wait_for("detached from a")
        assert build.poll() is None  # the agent keeps running after the detach
        finish.write_text("")
        assert build.wait(timeout=DEADLINE_S) == 0
    finally:
        output.close()
        if build.poll() is None:
            kill_tree(build.pid)
            build.wait()
        if attached is not None:
            attached.close()
    integration = f"orchestrate/{SPEC}/integration"
    assert git(repo, "show", f"{integration}:answer.txt") == "orchestrate"
    assert not (logs / "a.keys").exists()
    refused = run_cli(repo, "attach", SPEC, "a", check=1)  # finished: says so, points to logs
    assert f"orchestrate logs {SPEC} a" in refused.stderr
