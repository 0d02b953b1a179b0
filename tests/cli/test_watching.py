"""Watching a build: each subtask's log is written as the agent produces it, `logs -f` shows it
live and ends by itself, every event lands in `<spec>/logs/events.jsonl` as `--json` prints it.
Real builds (the spawned CLI, a shell agent), real git."""

from __future__ import annotations

import json
import os
import selectors
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ORCHESTRATE, phase, plan_of, run_cli, write_plan
from tests.watchdog import kill_tree

SPEC = "001-watch"
DEADLINE_S = 60.0


def wait_for(what: str, found: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not found():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


class Reader:
    """A child's stdout read without blocking the test past the deadline."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.process, self.stream, self.seen = process, process.stdout, b""
        os.set_blocking(self.stream.fileno(), False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stream, selectors.EVENT_READ)

    def until(self, wanted: bytes) -> bytes:
        deadline = time.monotonic() + DEADLINE_S
        while wanted not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"gave up waiting for {wanted!r}; saw {self.seen!r}"
            if self.selector.select(min(left, 0.5)):
                chunk = self.stream.read(65536)
                assert chunk, f"output ended before {wanted!r}; saw {self.seen!r}"
                self.seen += chunk
        return self.seen


@pytest.mark.slow
def test_the_log_and_logs_f_show_a_line_before_the_agent_writes_the_next(
        repo: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    agent = (f"echo first line; while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.02; done; "
             "echo second line; echo done > a.txt")
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    log = plan.parent / "logs" / "a.log"
    build = subprocess.Popen([*ORCHESTRATE, "build", SPEC, "--agent-command", agent],
                             cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             process_group=0)
    follower = None
    try:
        wait_for("the first line in the log", lambda: log.exists()
                 and b"first line" in log.read_bytes())
        assert b"second line" not in log.read_bytes()
        follower = subprocess.Popen([*ORCHESTRATE, "logs", SPEC, "a", "-f"], cwd=repo,
                                    stdout=subprocess.PIPE, process_group=0)
        shown = Reader(follower).until(b"first line\n")
        assert b"second line" not in shown
        go.write_text("")
        Reader(follower).until(b"second line\n")
        assert follower.wait(timeout=DEADLINE_S) == 0  # ended by itself with the attempt
        assert build.wait(timeout=DEADLINE_S) == 0
    finally:
        for process in (build, follower):
            if process is not None and process.poll() is None:
                kill_tree(process.pid)
                process.wait()
        if follower is not None and follower.stdout is not None:
            follower.stdout.close()


@pytest.mark.slow
def test_every_event_is_appended_to_events_jsonl_as_json_prints_it(repo: Path) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    done = run_cli(repo, "build", SPEC, "--json", "--agent-command",
                   "echo $ORCHESTRATE_SUBTASK_ID > $ORCHESTRATE_SUBTASK_ID.txt", check=0)
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    logged = [json.loads(line) for line in
              (plan.parent / "logs" / "events.jsonl").read_text().splitlines()]
    assert printed == logged
    assert logged[0]["kind"] == "build_started"
    assert logged[-1]["kind"] == "build_finished"
    run_cli(repo, "merge", SPEC, check=0)
    appended = (plan.parent / "logs" / "events.jsonl").read_text().splitlines()
    assert len(appended) > len(logged)
    assert json.loads(appended[-1])["kind"] == "merge_finished"


@pytest.mark.slow
def test_logs_prints_one_attempt_or_every_log_prefixed(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    agent = ('echo "try $ORCHESTRATE_ATTEMPT of $ORCHESTRATE_SUBTASK_ID"; '
             'test "$ORCHESTRATE_ATTEMPT" = 2 && echo x > $ORCHESTRATE_SUBTASK_ID.txt')
    run_cli(repo, "build", SPEC, "--agent-command", agent, check=0)
    second = run_cli(repo, "logs", SPEC, "a", "--attempt", "2", check=0).stdout
    assert "try 2 of a" in second
    assert "try 1 of a" not in second
    every = run_cli(repo, "logs", SPEC, check=0).stdout.splitlines()
    assert "[a] try 1 of a" in every
    assert "[b] try 2 of b" in every
    unknown = run_cli(repo, "logs", SPEC, "nope", check=2)
    assert "nope" in unknown.stderr
    assert "a, b" in unknown.stderr
    missing = run_cli(repo, "logs", SPEC, "a", "--attempt", "3", check=2)
    assert "no attempt 3" in missing.stderr


def _drain(master: int) -> bytes:
    import select

    data = b""
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_the_live_footer_shows_each_agents_last_line_and_what_a_check_holds(
        tmp_path: Path) -> None:
    """A running subtask's line ends with the last line its agent wrote (escape sequences
    dropped); a running check has a row naming the subtasks its commit holds; a resolution
    round has a running line too."""
    import fcntl
    import struct
    import termios

    import pyte

    from orchestrator.events import Event
    from orchestrator.face.live import LiveSink

    log = tmp_path / "a.log"
    log.write_text("===== attempt 1 of a =====\nreading files\n\x1b[1mediting src/app.py\x1b[0m\n")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    screen = pyte.Screen(80, 24)
    stream = pyte.ByteStream(screen)
    with os.fdopen(slave, "w", encoding="utf-8") as out:
        sink = LiveSink(out, [("a", "pending"), ("b", "pending"), ("c", "conflict")])
        sink.emit(Event("subtask_started", "started", subtask="a", data={"log": str(log)}))
        sink.emit(Event("check_started", "check: a, b on the integration branch",
                        data={"display": "check 1: a, b on the integration branch",
                              "display_key": "check 1234"}))
        sink.emit(Event("resolution_started", "resolution round 1 of 2", subtask="c",
                        data={"display": "resolution round 1"}))
        out.flush()
        stream.feed(_drain(master))
        shown = [line.rstrip() for line in screen.display]
        running = {line.split()[1]: line for line in shown if line.startswith("  ▸ ")}
        assert running["a"].endswith("editing src/app.py")
        assert running["c"].endswith("resolution round 1")
        assert "  check 1: a, b on the integration branch" in shown
        sink.emit(Event("check_passed", "check passed: a, b on the integration branch",
                        data={"display": "", "display_key": "check 1234"}))
        out.flush()
        stream.feed(_drain(master))
        assert not [line for line in screen.display if "check 1:" in line]
        sink.close()
    os.close(master)
