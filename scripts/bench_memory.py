"""Benchmark (d) of scripts/bench.py: peak RSS of one `orchestrate build` process running
N claude sessions at once against the fake Messages API (tests/fake_anthropic.py), each
session a few turns of editor and bash calls slowed down so that all overlap."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-ant-bench-not-a-real-key"


def conversation(n: int) -> list[dict[str, object]]:
    path = f"notes/session-{n:03d}.md"
    return [
        {"content": [{"type": "tool_use", "name": "str_replace_based_edit_tool",
                      "input": {"command": "create", "path": path, "file_text": "draft\n"}}]},
        {"content": [{"type": "tool_use", "name": "str_replace_based_edit_tool",
                      "input": {"command": "str_replace", "path": path, "old_str": "draft",
                                "new_str": f"session {n} was here"}}]},
        {"content": [{"type": "tool_use", "name": "bash", "input": {"command": f"cat {path}"}}]},
        {"content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn"},
    ]


def start_fake(scratch: Path, sessions: int, latency: float) -> tuple[subprocess.Popen[bytes],
                                                                       str]:
    script = scratch / "fake-script.json"
    script.write_text(json.dumps({
        "conversations": {f"mem-s{n:03d}-task": conversation(n) for n in range(sessions)},
        "latency": latency, "api_key": KEY}))
    port_file = scratch / "fake-port"
    fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_anthropic.py"),
                             "--script", str(script), "--port-file", str(port_file)])
    for _ in range(200):
        if port_file.exists():
            return fake, f"http://127.0.0.1:{port_file.read_text().strip()}"
        time.sleep(0.05)
    fake.kill()
    raise SystemExit("the fake Messages API did not start")


def make_repo(scratch: Path, sessions: int) -> Path:
    repo = scratch / "memory-repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    folder = repo / ".orchestrate" / "specs" / "001-memory"
    folder.mkdir(parents=True)
    subtasks = [{"id": f"mem-s{n:03d}-task", "description": "Write a note", "status": "pending"}
                for n in range(sessions)]
    plan = {"phases": [{"phase": 1, "parallel_safe": True, "subtasks": subtasks}]}
    (folder / "implementation_plan.json").write_text(json.dumps(plan, indent=2))
    return repo


def peak_rss_of_claude_build(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    fake, url = start_fake(scratch, args.sessions, latency=0.5)
    try:
        repo = make_repo(scratch, args.sessions)
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": url,
               "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
        start = time.perf_counter()
        build = subprocess.Popen([sys.executable, "-m", "orchestrator", "build", "001",
                                  "--agent", "claude", "--max-parallel", str(args.sessions)],
                                 cwd=repo, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
        peak_kb = watch_peak_rss(build)
        wall = time.perf_counter() - start
        output = build.stdout.read().decode(errors="replace") if build.stdout else ""
        if build.returncode != 0:
            raise SystemExit(f"claude build failed ({build.returncode}):\n{output[-3000:]}")
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait()
    return {"peak RSS_mb": peak_kb / 1024, "wall": wall}


def watch_peak_rss(process: subprocess.Popen[bytes]) -> int:
    """The process's peak resident set (VmHWM, in kB), read until it exits."""
    peak = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    process.wait()
    return peak
