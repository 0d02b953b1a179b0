#!/usr/bin/env python3
"""Replay of real history with a real test suite as the check: `orchestrate merge --check`
against a sequential gate, on the same branches, in the same run.

    .venv/bin/python scripts/replay_gate.py                 # more-itertools 9.0.0 .. 11.2.0
    .venv/bin/python scripts/replay_gate.py --versions 10.0.0,10.1.0,10.2.0

The successive releases of a small pure-Python library (more-itertools; its sdists come from
PyPI at run time with `pip download --no-deps --no-binary :all:`, nothing is committed) become
a history: the first release is the base, each later release a commit on top of the one
before, on its own branch; the branches are the finished work of one parallel phase. The
check is the library's own test suite (`python -m unittest discover -s tests`) run with this
interpreter. The sequential gate merges the branches one at a time in a worktree
(`git merge --no-ff`), runs the suite, and undoes a merge whose suite fails (after
`--check-retries` reruns); orchestrate runs `orchestrate merge SPEC --check` on the same
repository. Printed: check runs (the reruns of `check_retries` apart), wall time of each, the
releases each left out, and whether the integration trees are equal (exit 1 if the verdicts
or trees differ).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from orchestrator.workspace.overlay import unmounted_on_exit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gate import (  # type: ignore[import-not-found]
    SPEC,
    Outcome,
    git,
    orchestrate_gate,
    sequential_gate,
)

# 11.2.0's suite fails on Python 3.11 and 11.2.1 repairs it: with 11.2.1 in the range a batch
# gate keeps 11.2.0 (the chain's last commit passes) where a sequential gate drops it; see
# docs/benchmarks.md
VERSIONS = ("9.0.0,9.1.0,10.0.0,10.1.0,10.2.0,10.3.0,10.4.0,10.5.0,10.6.0,10.7.0,10.8.0,"
            "11.0.0,11.0.1,11.0.2,11.1.0,11.2.0")
SUITE = """\
import os, subprocess, sys
with open(sys.argv[1], "a") as log:
    log.write((os.environ.get("ORCHESTRATE_CHECK_COMMIT") or os.environ["GATE_COMMIT"]) + "\\n")
sys.exit(subprocess.run([sys.executable, "-m", "unittest", "discover", "-s", "tests", "-q"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode)
"""


def download(package: str, versions: list[str], into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    found = []
    for version in versions:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "--no-binary", ":all:", "--dest", str(into),
                               f"{package}=={version}"], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise SystemExit(f"pip download {package}=={version} failed:\n{done.stderr}")
        found.append(next(into.glob(f"{package.replace('-', '?')}-{version}.tar.gz")))
    return found


def unpack(sdist: Path, into: Path) -> None:
    """The sdist's files, its top folder stripped, into `into` (emptied first, .git kept)."""
    for path in sorted(into.rglob("*"), reverse=True):
        if ".git" in path.relative_to(into).parts[:1]:
            continue
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts[1:]
            if not parts or not (member.isfile() or member.isdir()):
                continue
            member.name = str(Path(*parts))
            archive.extract(member, into, filter="data")


def make_history(sdists: list[Path], repo: Path, env: dict[str, str]) -> tuple[str, list[str]]:
    """The base commit and one branch per later release (each on top of the one before)."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main", env=env)
    ids = []
    for number, sdist in enumerate(sdists):
        unpack(sdist, repo)
        git(repo, "add", "-A", env=env)
        git(repo, "commit", "-qm", sdist.name.removesuffix(".tar.gz"), env=env)
        if number == 0:
            base = git(repo, "rev-parse", "HEAD", env=env)
            continue
        subtask = "r" + sdist.name.removesuffix(".tar.gz").rsplit("-", 1)[1].replace(".", "-")
        git(repo, "branch", f"orchestrate/{SPEC}/{subtask}", env=env)
        ids.append(subtask)
    git(repo, "checkout", "-q", "--detach", base, env=env)
    git(repo, "update-ref", f"refs/heads/orchestrate/{SPEC}/integration", base, env=env)
    return base, ids


def write_plan(repo: Path, base: str, ids: list[str], env: dict[str, str]) -> None:
    import json

    folder = repo / ".orchestrate" / "specs" / SPEC
    folder.mkdir(parents=True)
    subtasks = [{"id": s, "description": f"release {s}", "status": "in_progress",
                 "orchestrate": {"branch": f"orchestrate/{SPEC}/{s}", "base": base,
                                 "merge": "pending",
                                 "head": git(repo, "rev-parse", f"orchestrate/{SPEC}/{s}",
                                             env=env)}} for s in ids]
    plan = {"phases": [{"phase": 1, "name": "releases", "parallel_safe": True,
                        "subtasks": subtasks}],
            "orchestrate": {"integration_branch": f"orchestrate/{SPEC}/integration",
                            "base": base}}
    (folder / "implementation_plan.json").write_text(json.dumps(plan, indent=2))


def sequential(repo: Path, scratch: Path, base: str, ids: list[str], retries: int,
               env: dict[str, str]) -> Outcome:
    check = [sys.executable, str(scratch / "suite.py"), str(scratch / "gate.log")]
    return sequential_gate(repo, scratch, base, ids, check, retries, env)


def ours(repo: Path, scratch: Path, args: argparse.Namespace, env: dict[str, str]) -> Outcome:
    check = [sys.executable, str(scratch / "suite.py"), str(scratch / "ours.log")]
    return orchestrate_gate(repo, check, scratch / "ours.log", args, env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="more-itertools")
    parser.add_argument("--versions", default=VERSIONS)
    parser.add_argument("--parallel", type=int, default=4, help="--max-parallel (slots)")
    parser.add_argument("--check-retries", type=int, default=1)
    args = parser.parse_args()
    env = {**os.environ, "GIT_AUTHOR_NAME": "replay", "GIT_AUTHOR_EMAIL": "replay@example.com",
           "GIT_COMMITTER_NAME": "replay", "GIT_COMMITTER_EMAIL": "replay@example.com",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
    with tempfile.TemporaryDirectory(prefix="replay-gate-") as tmp, \
            unmounted_on_exit(tmp):
        scratch = Path(tmp)
        sdists = download(args.package, args.versions.split(","), scratch / "sdists")
        (scratch / "suite.py").write_text(SUITE)
        repo = scratch / "repo"
        base, ids = make_history(sdists, repo, env)
        write_plan(repo, base, ids, env)
        gate = sequential(repo, scratch, base, ids, args.check_retries, env)
        mine = ours(repo, scratch, args, env)
    equal = mine.ejected == gate.ejected and mine.tree == gate.tree
    print(f"{args.package}: {len(sdists)} releases, {len(ids)} branches on "
          f"{sdists[0].name.removesuffix('.tar.gz')}; check: its unittest suite")
    print("|  | check runs | reruns | wall s | left out |")
    print("|---|---|---|---|---|")
    for name, outcome in (("orchestrate merge --check", mine), ("sequential gate", gate)):
        print(f"| {name} | {outcome.runs} | {outcome.reruns} | {outcome.seconds:.1f} | "
              f"{', '.join(sorted(outcome.ejected)) or 'none'} |")
    print(f"verdicts and integration tree equal: {'yes' if equal else 'NO'}")
    return 0 if equal and mine.runs <= gate.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
