"""The tests' watchdog (tests/watchdog.py) itself: a process that prints a build's summary and
then hangs, with a child in a process group of its own, fails the test with its process tree
and is killed, child included, long before pytest's own timeout."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.buildkit import alive, wait_until
from tests.watchdog import finished_line, watch

HANGS = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True)
print(child.pid, flush=True)
print("done: 3 completed; orchestrate/x/integration at 0123456789ab", flush=True)
time.sleep(600)
"""


def test_a_process_hanging_after_its_summary_fails_with_its_process_tree() -> None:
    process = subprocess.Popen([sys.executable, "-c", HANGS], stdout=subprocess.PIPE,
                               process_group=0)
    assert process.stdout is not None
    child = int(process.stdout.readline())
    summary = process.stdout.readline().decode()
    started = time.monotonic()
    try:
        with pytest.raises(pytest.fail.Exception) as failed:
            watch(process, lambda: summary, timeout=120, what="hanging build", bound=1)
    finally:
        process.stdout.close()
    assert time.monotonic() - started < 60
    message = str(failed.value)
    assert "hang: `hanging build` printed its summary but was still running 1 s later" in message
    assert f"{process.pid} " in message
    assert f"{child} " in message  # its child, in a group of its own, is listed
    assert process.returncode is not None
    wait_until(lambda: not alive(child), timeout=10, what="the child to be killed")


def test_the_summary_line_is_recognised_in_plain_and_json_output() -> None:
    assert finished_line("done: 1 completed; orchestrate/a/integration at 0123")
    assert finished_line('{"kind": "build_finished", "message": "done: ..."}')
    assert not finished_line("[a] done: not a summary")
    assert not finished_line('{"kind": "subtask_merged", "message": "build_finished"}')
