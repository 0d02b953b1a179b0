"""The live display in a real terminal: `orchestrate build` runs in a pty of a fixed size and a
terminal emulator (pyte) renders everything it wrote, scrollback included."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.buildkit import SPEC, Recorder, agent_command, statuses
from tests.conftest import phase, plan_of, write_plan
from tests.terminal_support import Session, run_in_terminal

pytestmark = pytest.mark.slow  # builds in a pty under a terminal emulator

BAR = re.compile(r"agents \d+/\d+ · merged \d+/\d+")
RUNNING = "  ▸ "


def _ids(count: int) -> list[str]:
    return [f"subtask-{n:02d}-with-a-long-descriptive-name" for n in range(1, count + 1)]


def _build(repo: Path, recorder: Recorder, count: int, columns: int, rows: int,
           *agent_args: str, **kwargs: object) -> Session:
    write_plan(repo, SPEC, plan_of(phase(1, _ids(count), parallel=True), phase(2, ["final"])))
    return run_in_terminal(repo, "build", SPEC, "--max-parallel", str(count),
                           "--agent-command", agent_command(*agent_args),
                           columns=columns, rows=rows, env=recorder.env, **kwargs)  # type: ignore[arg-type]


def _no_leftovers(session: Session) -> list[str]:
    lines = session.lines()
    assert not [line for line in lines if BAR.search(line)], "a progress bar line was left"
    assert not [line for line in lines if line.startswith(RUNNING)], "a running line was left"
    assert not [line for line in lines if "… and" in line]
    assert session.widest_line() <= session.columns
    return lines


@pytest.mark.parametrize(("count", "columns", "rows", "seconds"),
                         [(10, 80, 24, 1), (24, 100, 16, 2)])
def test_a_parallel_build_leaves_only_its_event_lines(repo: Path, recorder: Recorder, count: int,
                                                      columns: int, rows: int,
                                                      seconds: int) -> None:
    session = _build(repo, recorder, count, columns, rows, "--sleep", f"*={seconds}")
    assert session.returncode == 0, session.text()[-2000:]
    assert set(statuses(repo).values()) == {"completed"}
    text = session.text()
    assert BAR.search(text), "the live footer was never drawn"
    assert RUNNING in text
    if count > rows // 2:
        assert re.search(r"… and \d+ more running", text), "the footer was not capped"
    lines = _no_leftovers(session)
    for subtask_id in [*_ids(count), "final"]:
        merged = [line for line in lines if line.startswith(f"[{subtask_id}] merged as ")]
        assert len(merged) == 1, (subtask_id, lines)
    assert any(line.startswith("done in ") for line in lines)
    assert any("next: all done: `orchestrate review" in line for line in lines)


def test_ctrl_c_leaves_a_clean_screen(repo: Path, recorder: Recorder) -> None:
    def all_running(output: str) -> bool:
        return output.count("] started on") >= 10

    session = _build(repo, recorder, 10, 80, 24, "--hang", "*", interrupt_when=all_running)
    assert session.returncode == 130, session.text()[-2000:]
    lines = [line for line in _no_leftovers(session) if line]
    error = [n for n, line in enumerate(lines) if "interrupted" in line and "error" in line]
    assert error, lines
    assert lines[error[0]].startswith("orchestrate: error: interrupted"), lines
    assert lines[-1].startswith("Run `orchestrate build"), lines
    assert RUNNING in session.text(), "the live footer was never drawn"
    assert all(line.startswith("orchestrate:") for line in lines if "orchestrate:" in line)
    assert not [line for line in lines if "Progress" in line or "Pr" + "orchestrate" in line]


def test_a_failure_shows_the_output_tail_log_and_worktree(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["good", "bad"], parallel=True)))
    session = run_in_terminal(repo, "build", SPEC, "--retries", "0", "--agent-command",
                              agent_command("--fail", "bad"), columns=80, rows=24,
                              env=recorder.env)
    assert session.returncode == 1
    lines = _no_leftovers(session)
    failed = next(n for n, line in enumerate(lines) if line.startswith("[bad] failed: "))
    below = "".join(lines[failed:])  # long paths are folded at the width: join them again
    assert "| BOOM bad: told to fail" in below
    assert "logs/bad.log" in below
    assert "worktrees/001-demo/bad" in below
    assert any("--retry-failed" in line for line in lines)


def test_unknown_events_and_display_hints_in_the_live_footer() -> None:
    """Kinds the display does not know print as plain lines; `data["display"]` puts a status
    on a running subtask's line or a footer line of its own, and "" clears it."""
    import fcntl
    import os
    import struct
    import termios

    import pyte

    from orchestrator.events import Event
    from orchestrator.face.live import LiveSink

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    screen = pyte.Screen(80, 24)
    stream = pyte.ByteStream(screen)
    with os.fdopen(slave, "w", encoding="utf-8") as out:
        sink = LiveSink(out, [("a", "pending"), ("b", "pending")])
        sink.emit(Event("subtask_started", "started", subtask="b"))
        sink.emit(Event("subtask_started", "started", subtask="a"))
        sink.emit(Event("check_started", "checking the combined result", subtask="a",
                        data={"display": "checking"}))
        sink.emit(Event("rate_limited", "", data={"display": "rate limited: 3 agents at once"}))
        out.flush()
        stream.feed(_drain(master))
        shown = [line.rstrip() for line in screen.display]
        assert "[a] checking the combined result" in shown
        running = [line for line in shown if line.startswith(RUNNING)]
        assert [line.split()[1] for line in running] == ["a", "b"]  # plan order
        assert running[0].endswith("checking")
        assert "  rate limited: 3 agents at once" in shown
        sink.emit(Event("rate_limited", "", data={"display": ""}))
        sink.close()
        out.flush()
    stream.feed(_drain(master))
    os.close(master)
    shown = [line.rstrip() for line in screen.display if line.strip()]
    assert shown == ["[b] started", "[a] started", "[a] checking the combined result"]


def test_an_error_mid_build_leaves_a_clean_screen(repo: Path, recorder: Recorder) -> None:
    plan = write_plan(repo, SPEC, plan_of(phase(1, _ids(4), parallel=True)))
    command = f"{agent_command('--sleep', '*=1')}; printf garbage > {plan}"
    session = run_in_terminal(repo, "build", SPEC, "--agent-command", command, columns=80,
                              rows=24, env=recorder.env)
    assert session.returncode == 1, session.text()[-2000:]
    lines = [line for line in _no_leftovers(session) if line]
    assert RUNNING in session.text()
    error = next(line for line in lines if "orchestrate: error:" in line)
    assert error.startswith("orchestrate: error: the plan changed under the run")


def _drain(master: int) -> bytes:
    """Everything written to the pty so far: one read returns what the kernel had buffered at
    that instant, which may be only part of what the display wrote."""
    import select

    data = b""
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the other end is closed and everything was read
            break
        if not chunk:
            break
        data += chunk
    return data
