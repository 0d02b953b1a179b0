"""Benchmark (e) of scripts/bench.py: the check gate of SPEC 9 against the naive gate.

One parallel phase of N subtasks (each adds a file; the culprits also add `broken.flag`), a
check that takes `--check-seconds` and fails when `broken.flag` exists, built by `orchestrate
build --check`. The naive gate, on the same branches in the same run, merges them one at a time
in a worktree and runs the check after every merge, undoing a merge whose check fails. Both
count their check runs (the base's included) from a log the check itself writes; the merge
stage's wall time is, for orchestrate, from the last agent's commit to the end of the build
(its base check ran beside the agents), and for the naive gate the loop after its base check.
Failing checks are not rerun (`--check-retries 0`), as the naive gate does not rerun them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ORCHESTRATE = [sys.executable, "-m", "orchestrator"]
CHECK = """\
import os, pathlib, sys, time
time.sleep(float(sys.argv[2]))
with open(sys.argv[1], "a") as log:
    log.write(os.environ.get("ORCHESTRATE_CHECK_COMMIT", "naive") + "\\n")
sys.exit(1 if pathlib.Path("broken.flag").exists() else 0)
"""
AGENT = """\
import os, pathlib, sys, time
time.sleep(float(sys.argv[1]))
me = os.environ["ORCHESTRATE_SUBTASK_ID"]
pathlib.Path(f"{me}.txt").write_text(f"work of {me}\\n")
if me in sys.argv[2].split(","):
    pathlib.Path("broken.flag").write_text(f"{me} breaks the combination\\n")
"""


def _git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip()


def _small_repo(into: Path, env: dict[str, str]) -> Path:
    repo = into / "repo"
    (repo / "src").mkdir(parents=True)
    for n in range(20):
        (repo / "src" / f"m{n}.py").write_text(f"VALUE = {n}\n")
    _git("init", "-q", "-b", "main", cwd=repo, env=env)
    _git("add", "-A", cwd=repo, env=env)
    _git("commit", "-qm", "small repository", cwd=repo, env=env)
    return repo


def _runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _ours(repo: Path, ids: list[str], culprits: list[str], scratch: Path,
          env: dict[str, str], check_seconds: float) -> tuple[float, int]:
    """(merge stage wall time, check runs) of `orchestrate build --check`."""
    folder = repo / ".orchestrate" / "specs" / "001-bench"
    folder.mkdir(parents=True)
    plan = {"phases": [{"phase": 1, "name": "bench", "parallel_safe": True, "subtasks": [
        {"id": i, "description": f"add {i}", "status": "pending"} for i in ids]}]}
    (folder / "implementation_plan.json").write_text(json.dumps(plan, indent=2))
    log = scratch / "ours.log"
    check = shlex.join([sys.executable, str(scratch / "check.py"), str(log), str(check_seconds)])
    agent = shlex.join([sys.executable, str(scratch / "agent.py"), str(check_seconds * 1.5),
                        ",".join(culprits) or "-"])
    done = subprocess.run([*ORCHESTRATE, "build", "001", "--json", "--max-parallel",
                           str(len(ids)), "--check", check, "--check-retries", "0",
                           # the gate alone: a culprit's resolution rounds (SPEC 10) are not
                           # part of what the naive gate is compared with
                           "--resolve", "manual",
                           "--agent-command", agent], cwd=repo, env=env, capture_output=True,
                          text=True, check=False)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode not in (0, 1) or not events:
        raise SystemExit(f"orchestrate build failed ({done.returncode}):\n{done.stderr}")
    committed = max(e["elapsed_s"] for e in events if e["kind"] == "subtask_committed")
    finished = next(e["elapsed_s"] for e in events if e["kind"] == "build_finished")
    ejected = sorted(e["subtask"] for e in events if e["kind"] == "subtask_conflict")
    if ejected != sorted(culprits):
        raise SystemExit(f"expected {culprits} to be ejected, not {ejected}")
    return finished - committed, _runs(log)


def _naive(repo: Path, ids: list[str], scratch: Path, env: dict[str, str],
           check_seconds: float) -> tuple[float, int]:
    """The same branches merged one by one, the check after each, a failing merge undone."""
    work = scratch / "naive-worktree"
    base = _git("rev-parse", "main", cwd=repo, env=env)
    _git("worktree", "add", "-q", "--detach", str(work), base, cwd=repo, env=env)
    log = scratch / "naive.log"
    check = [sys.executable, str(scratch / "check.py"), str(log), str(check_seconds)]
    subprocess.run(check, cwd=work, env=env, check=False)  # the base: beside the agents
    start = time.perf_counter()
    for subtask in ids:
        _git("merge", "-q", "--no-ff", "--no-edit", f"orchestrate/001-bench/{subtask}",
             cwd=work, env=env)
        if subprocess.run(check, cwd=work, env=env, check=False).returncode != 0:
            _git("reset", "-q", "--hard", "HEAD~1", cwd=work, env=env)
    return time.perf_counter() - start, _runs(log)


def _scenario(args: argparse.Namespace, scratch: Path, env: dict[str, str],
              culprits: list[str]) -> dict[str, float]:
    ids = [f"s{n}" for n in range(1, args.check_subtasks + 1)]
    (scratch / "check.py").write_text(CHECK)
    (scratch / "agent.py").write_text(AGENT)
    repo = _small_repo(scratch, env)
    ours_s, ours_runs = _ours(repo, ids, culprits, scratch, env, args.check_seconds)
    naive_s, naive_runs = _naive(repo, ids, scratch, env, args.check_seconds)
    return {"orchestrate check runs": ours_runs, "naive check runs": naive_runs,
            "orchestrate merge stage": ours_s, "naive merge stage": naive_s}


def bench_check(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    """One culprit, then two, among `--check-subtasks` subtasks of one parallel phase."""
    import os
    import tempfile

    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
           "ORCHESTRATE_SANDBOX": "none"}  # its agents live in a temporary folder
    n = args.check_subtasks
    figures: dict[str, float] = {}
    for label, culprits in (("1 culprit", [f"s{(n + 1) // 2 + 1}"]),
                            ("2 culprits", [f"s{n // 4 + 1}", f"s{3 * n // 4}"])):
        found = _scenario(args, Path(tempfile.mkdtemp(dir=scratch)), env, culprits)
        figures |= {f"{label}: {key}": value for key, value in found.items()}
    return figures
