#!/usr/bin/env python3
"""Replay of real history for the conflict radar: how many of the conflicts git finds at the
merge stage did the radar announce first, and how long before the merge stage.

    .venv/bin/python scripts/replay_radar.py                       # python-dotenv 0.17.0..1.1.0
    .venv/bin/python scripts/replay_radar.py --package attrs --versions 21.1.0,21.2.0,21.3.0

The history is a small pure-Python library's successive releases, downloaded at run time from
PyPI as source distributions (`pip download --no-deps --no-binary :all:`; nothing of it is kept).
The first release is the base. Each later release is one subtask of one parallel phase: its
agent (a slow command agent) applies that release's patch (its change from the release before
it) to the base, one file at a time with a pause between files, as a developer porting the
change would: `git merge-file` of the release's change into the base's file, the release's
side kept where they clash. Releases that touched the same
code then meet at the merge stage as git conflicts; the radar (interval --interval) watched
them while the agents worked. Printed: every conflict git found (subtask, path), whether the
radar had announced that subtask on that path before, and how long before the merge stage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ORCHESTRATE = [sys.executable, "-m", "orchestrator"]
IDENTITY = {"GIT_AUTHOR_NAME": "replay", "GIT_AUTHOR_EMAIL": "replay@example.com",
            "GIT_COMMITTER_NAME": "replay", "GIT_COMMITTER_EMAIL": "replay@example.com"}
DEFAULT_VERSIONS = ("0.17.0,0.17.1,0.18.0,0.19.0,0.19.1,0.19.2,0.20.0,0.21.0,0.21.1,1.0.0,"
                    "1.0.1,1.1.0")
SKIPPED = ("PKG-INFO", "setup.cfg")  # written by the packaging tool, not by the authors
AGENT = """\
import os, pathlib, shutil, subprocess, time
mine = pathlib.Path(os.environ["REPLAY_PATCHES"]) / os.environ["ORCHESTRATE_SUBTASK_ID"]
step = float(os.environ["REPLAY_STEP"])
for line in (mine / "paths.txt").read_text().splitlines():
    status, path = line.split("\\t", 1)
    here, old, new = pathlib.Path(path), mine / "old" / path, mine / "new" / path
    if status == "D":
        here.unlink(missing_ok=True)
    elif status == "A" or not here.exists():
        here.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(new, here)
    else:  # the release's change, merged into the base's file; where they clash, the release
        merged = subprocess.run(["git", "merge-file", "-p", "--theirs", str(here), str(old),
                                 str(new)], capture_output=True)
        here.write_bytes(merged.stdout)
    time.sleep(step)
time.sleep(step * 2)
"""


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, **IDENTITY, **(env or {})})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def download(package: str, versions: list[str], into: Path) -> list[Path]:
    """Each release's source tree, unpacked."""
    trees = []
    for version in versions:
        folder = into / f"dl-{version}"
        folder.mkdir()
        run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
            f"{package}=={version}", "-d", str(folder), cwd=into)
        archive = next(folder.iterdir())
        with tarfile.open(archive) as tar:
            tar.extractall(folder / "src", filter="data")
        trees.append(next((folder / "src").iterdir()))
    return trees


def commit_tree(repo: Path, tree: Path, message: str) -> str:
    """Replace the repository's files by `tree`'s and commit; the new head."""
    for entry in repo.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(tree, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        *SKIPPED, "*.egg-info"))
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "--allow-empty", "-m", message, cwd=repo)
    return run("git", "rev-parse", "HEAD", cwd=repo).strip()


def make_history(repo: Path, trees: list[Path], versions: list[str], patches: Path) -> list[str]:
    """The base on main; each later release's patch in `patches`; the subtask ids."""
    run("git", "init", "-q", "-b", "main", cwd=repo)
    base = commit_tree(repo, trees[0], f"release {versions[0]}")
    run("git", "checkout", "-q", "-b", "history", cwd=repo)
    ids, previous = [], base
    for tree, version in zip(trees[1:], versions[1:], strict=True):
        head = commit_tree(repo, tree, f"release {version}")
        subtask = "r" + version.replace(".", "-")
        save_change(repo, previous, head, patches / subtask)
        ids.append(subtask)
        previous = head
    run("git", "checkout", "-q", "main", cwd=repo)
    run("git", "branch", "-q", "-D", "history", cwd=repo)
    return ids


def save_change(repo: Path, old: str, new: str, into: Path) -> None:
    """What one release changed: paths.txt (status TAB path) and both sides' files."""
    listing = run("git", "diff", "--no-renames", "--name-status", old, new, cwd=repo)
    for line in listing.splitlines():
        status, path = line.split("\t", 1)
        for side, commit in (("old", old), ("new", new)):
            if (side, status) not in (("old", "A"), ("new", "D")):
                target = into / side / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(subprocess.run(["git", "show", f"{commit}:{path}"], cwd=repo,
                                                  capture_output=True, check=True).stdout)
    into.mkdir(parents=True, exist_ok=True)
    (into / "paths.txt").write_text(listing)


def write_plan(repo: Path, ids: list[str], versions: list[str]) -> None:
    folder = repo / ".orchestrate" / "specs" / "001-replay"
    folder.mkdir(parents=True)
    plan = {"phases": [{"phase": 1, "name": "releases", "parallel_safe": True, "subtasks": [
        {"id": subtask, "description": f"Port the changes of release {version}",
         "status": "pending"} for subtask, version in zip(ids, versions[1:], strict=True)]}]}
    (folder / "implementation_plan.json").write_text(json.dumps(plan, indent=2))


@dataclass
class Replay:
    conflicts: list[tuple[str, str, float]]  # (subtask, path, when) of each git conflict
    announced: dict[tuple[str, str], float]  # (subtask, path) -> when the radar first said so
    leads: list[float]  # per announced conflict: seconds from announcement to merge stage
    pairs: int


def analyse(events: list[dict[str, object]]) -> Replay:
    announced: dict[tuple[str, str], float] = {}
    conflicts: list[tuple[str, str, float]] = []
    merge_start = None
    for event in events:
        data, at = event.get("data") or {}, float(str(event["elapsed_s"]))
        assert isinstance(data, dict)
        if event["kind"] == "overlap_predicted":
            for subtask in data["subtasks"]:
                announced.setdefault((subtask, data["path"]), at)
        elif event["kind"] in ("subtask_merged", "subtask_conflict") and merge_start is None:
            merge_start = at
        if event["kind"] == "subtask_conflict":
            conflicts += [(str(event["subtask"]), path, at) for path in data.get("paths", [])]
    leads = [merge_start - announced[(s, p)] for s, p, _ in conflicts
             if (s, p) in announced and merge_start is not None]
    return Replay(conflicts, announced, leads,
                  sum(1 for e in events if e["kind"] == "overlap_predicted"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="python-dotenv")
    parser.add_argument("--versions", default=DEFAULT_VERSIONS)
    parser.add_argument("--step", type=float, default=1.0, help="agent pause between files")
    parser.add_argument("--interval", type=float, default=1.0, help="radar_interval")
    args = parser.parse_args()
    versions = args.versions.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="replay-radar-"))
    try:
        trees = download(args.package, versions, scratch)
        repo, patches = scratch / "repo", scratch / "patches"
        repo.mkdir()
        patches.mkdir()
        ids = make_history(repo, trees, versions, patches)
        write_plan(repo, ids, versions)
        (scratch / "agent.py").write_text(AGENT)
        started = time.perf_counter()
        done = subprocess.run(
            [*ORCHESTRATE, "build", "001-replay", "--json", "--radar", "show",
             "--radar-interval", str(args.interval), "--resolve", "manual",
             "--max-parallel", str(len(ids)),
             "--agent-command", f"{sys.executable} {scratch / 'agent.py'}"],
            cwd=repo, capture_output=True, text=True, check=False,
            env={**os.environ, **IDENTITY,
                 "REPLAY_PATCHES": str(patches), "REPLAY_STEP": str(args.step)})
        wall = time.perf_counter() - started
        events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        found = analyse(events)
        report(args, ids, found, wall)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(args: argparse.Namespace, ids: list[str], found: Replay, wall: float) -> None:
    conflicts, announced, leads = found.conflicts, found.announced, found.leads
    print(f"replay of {args.package} {args.versions}: {len(ids)} subtasks, build {wall:.1f} s, "
          f"radar interval {args.interval:g} s, agents pause {args.step:g} s per file")
    print(f"  pairs announced by the radar     {found.pairs}")
    print(f"  conflicts git found (subtask, path) {len(conflicts)}")
    for subtask, path, _ in conflicts:
        mark = "announced first" if (subtask, path) in announced else "NOT announced"
        print(f"    {subtask:<12} {path:<40} {mark}")
    print(f"  announced before the merge stage {len(leads)} of {len(conflicts)}")
    if leads:
        print(f"  lead over the merge stage        {min(leads):.1f} s least, "
              f"{statistics.median(leads):.1f} s median, {max(leads):.1f} s most")


if __name__ == "__main__":
    main()
