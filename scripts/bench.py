#!/usr/bin/env python3
"""Benchmarks of orchestrate against naive git scripts doing the same work, in the same run.

    .venv/bin/python scripts/bench.py                  # everything, medians of 3 runs
    .venv/bin/python scripts/bench.py --only build --repeat 1

(a) build: one parallel phase of N subtasks, agents that sleep S seconds and edit 3 files,
    versus a naive script (`git worktree add` per subtask, agent, `git add -A && git commit`,
    then `git merge --no-ff` one by one in a worktree) at the same parallelism, versus the
    ideal ceil(N/P)*S.
(b) merge: `orchestrate merge` of 50 finished branches (process start included) versus
    `git merge --no-ff` of the same branches in a worktree.
(c) latency: `orchestrate status`, `orchestrate --version` and `validate` of a 200-subtask
    plan versus `git status`.
(d) memory: peak RSS of a build with 50 concurrent claude sessions on the fake Messages API.
(e) check (only with `--only check`): the check gate of SPEC 9, 16 subtasks, one culprit and
    then two, a check taking 1 s, against the naive gate (the check after every merge);
    see scripts/bench_check.py.
(f) waves: 12 subtasks, 4 declaring and editing one shared file, under --schedule spread and
    together: conflicts and wall time against the ideal of the waves (scripts/bench_waves.py).
(g) resolve: 10 subtasks of which 3 pairs conflict, `--resolve agent` with a scripted resolver
    against `--resolve manual`: subtasks completed without a person, and wall time against
    the same build without conflicts (scripts/bench_resolve.py).
(h) ray (only with --only ray; root and Ray needed): build (a) with runner local and runner ray
    on one machine, and the Ray cluster's start time (scripts/bench_ray.py).

The 20,000-file repository is generated once into ~/.cache/orchestrate-bench and cloned
(objects shared) for every run, so each run starts from a fresh checkout and an empty pool.
Runs are deleted only when the bench ends (see kept_dir); the default set needs ~10 GB free.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.workspace.overlay import unmounted_on_exit

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("ORCHESTRATE_BENCH_CACHE", Path.home() / ".cache/orchestrate-bench"))
ORCHESTRATE = [sys.executable, "-m", "orchestrator"]
# their agents read BENCH_* variables and live in a temporary folder: no sandbox (bench_sandbox.py
# measures the sandbox)
ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
       "ORCHESTRATE_SANDBOX": "none"}
AGENT = """\
import os, pathlib, time
time.sleep(float(os.environ["BENCH_SLEEP"]))
n = int(os.environ["ORCHESTRATE_SUBTASK_ID"].removeprefix("s"))
for k in range(3):
    path = pathlib.Path(f"src/d{n}/f{k}.py")
    path.write_text(path.read_text() + f"# edited by subtask {n}\\n")
"""


def sh(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env or ENV, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def cached_repo(files: int) -> Path:
    repo = CACHE / f"repo-{files}"
    if (repo / ".git").is_dir():
        return repo
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    per_dir = 100
    for n in range(files):
        folder = repo / "src" / f"d{n // per_dir}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{n % per_dir}.py").write_text(
            "".join(f"value_{i} = {n * 31 + i}\n" for i in range(25)))
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", f"{files} files", cwd=repo)
    return repo


def fresh_clone(files: int, into: Path) -> Path:
    target = into / "repo"
    sh("git", "clone", "-q", "--shared", str(cached_repo(files)), str(target), cwd=into)
    return target


def kept_dir(scratch: Path) -> Path:
    """A fresh folder for one run, deleted only with everything else when the bench ends.

    Deleting a run's 100,000+ files before the next run would slow the next run's file creation
    on a journal-less ext4 (this machine's): for about five minutes after a deletion the kernel
    skips, one inode-table lookup each, every recently freed inode while allocating a new one
    (`recently_deleted` in fs/ext4/ialloc.c), which made a 20,000-file checkout take 0.4 s or
    11 s depending on what the previous run had just removed."""
    return Path(tempfile.mkdtemp(dir=scratch))


def compiled() -> None:
    """Bytecode for every module, as an installed orchestrate has it (pip compiles at install):
    where PYTHONDONTWRITEBYTECODE is set, an editable checkout would compile its 170 modules
    again in every run, about 0.1 s of each build measured here."""
    for package in ("orchestrator", "merge"):
        compileall.compile_dir(ROOT / package, quiet=1)


def timed(action: Callable[[], object]) -> float:
    """Wall time of `action`, after flushing dirty pages (a fresh clone's 20,000 files) so that
    their write-back does not land in the middle of the measurement."""
    os.sync()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def write_plan(repo: Path, subtasks: list[dict[str, object]], parallel: bool = True,
               spec: str = "001-bench") -> None:
    folder = repo / ".orchestrate" / "specs" / spec
    folder.mkdir(parents=True, exist_ok=True)
    plan = {"phases": [{"phase": 1, "name": "bench", "parallel_safe": parallel,
                        "subtasks": subtasks}]}
    (folder / "implementation_plan.json").write_text(json.dumps(plan, indent=2))


def bench_build(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    compiled()
    agent = scratch / "agent.py"
    agent.write_text(AGENT)
    env = {**ENV, "BENCH_SLEEP": str(args.sleep)}
    ids = [f"s{n}" for n in range(args.subtasks)]

    def build(repo: Path, spec: str) -> float:
        write_plan(repo, [{"id": i, "description": f"edit {i}", "status": "pending"}
                          for i in ids], spec=spec)
        command = [*ORCHESTRATE, "build", spec, "--max-parallel", str(args.parallel),
                   "--agent-command", f"{sys.executable} {agent}"]
        return timed(lambda: sh(*command, cwd=repo, env=env))

    def ours() -> list[float]:
        """Three builds of the same plan as three specs in one fresh clone: the first has no
        worktree to reuse, the second reuses those the first parked (and checks out what the
        pool lacks), the third finds the pool full."""
        repo = fresh_clone(args.files, kept_dir(scratch))
        return [build(repo, f"00{n}-bench") for n in (1, 2, 3)]

    def naive() -> list[float]:
        """The naive script's time, and that of one `git worktree add` just before it: the
        file system's speed at that moment, for the reader to compare runs by."""
        repo = fresh_clone(args.files, kept_dir(scratch))
        probe = timed(lambda: sh("git", "worktree", "add", "-q", "--detach",
                                 str(repo.parent / "probe"), cwd=repo))
        script = scratch / "naive.sh"
        script.write_text(NAIVE_SCRIPT)
        return [timed(lambda: sh("bash", str(script), str(args.parallel), sys.executable,
                                 str(agent), *ids, cwd=repo, env=env)), probe]

    ideal = math.ceil(args.subtasks / args.parallel) * args.sleep
    runs = [[*ours(), *naive()] for _ in range(args.repeat)]  # interleaved: the machine drifts
    names = (*BUILDS, "naive", "one git worktree add")
    return {name: statistics.median(run[n] for run in runs)
            for n, name in enumerate(names)} | {"ideal": ideal}


BUILDS = ("orchestrate, 1st build", "orchestrate, 2nd build", "orchestrate, pool full")


NAIVE_SCRIPT = r"""
set -e
parallel=$1 python=$2 agent=$3; shift 3
run_one() {
  # concurrent `git worktree add`s now and then trip over each other's half-written metadata
  tries=1
  until git worktree add -q "wt/$1" -b "naive/$1" 2>/dev/null; do
    [ "$tries" -lt 10 ] || return 1
    rm -rf "wt/$1"; git branch -q -D "naive/$1" 2>/dev/null || true; sleep 0.1
    tries=$((tries + 1))
  done
  (cd "wt/$1" && ORCHESTRATE_SUBTASK_ID=$1 "$python" "$agent" && git add -A && git commit -qm "$1")
}
export -f run_one; export python agent
printf '%s\n' "$@" | xargs -P "$parallel" -I{} bash -c 'run_one {}'
git worktree add -q wt/integration -b naive-integration
cd wt/integration
for id in "$@"; do git merge -q --no-ff --no-edit "naive/$id"; done
"""


def make_branches(repo: Path, count: int) -> list[tuple[str, str, str]]:
    """`count` branches off main, each changing one file, made with plumbing."""
    base = sh("git", "rev-parse", "HEAD", cwd=repo)
    made = []
    for n in range(count):
        index = repo / ".git" / f"bench-index-{n}"
        env = {**ENV, "GIT_INDEX_FILE": str(index)}
        sh("git", "read-tree", base, cwd=repo, env=env)
        path = f"src/d{n}/f0.py"
        blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, env=env,
                              input=f"changed by {n}\n", capture_output=True, text=True,
                              check=True).stdout.strip()
        sh("git", "update-index", "--cacheinfo", f"100644,{blob},{path}", cwd=repo, env=env)
        tree = sh("git", "write-tree", cwd=repo, env=env)
        head = sh("git", "commit-tree", tree, "-p", base, "-m", f"s{n}", cwd=repo)
        branch = f"orchestrate/001-bench/s{n}"
        sh("git", "update-ref", f"refs/heads/{branch}", head, cwd=repo)
        index.unlink()
        made.append((f"s{n}", branch, head))
    return made


def bench_merge(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    def setup(tmp: Path) -> tuple[Path, list[tuple[str, str, str]]]:
        repo = fresh_clone(args.files, tmp)
        return repo, make_branches(repo, args.branches)

    def ours() -> float:
        repo, branches = setup(kept_dir(scratch))
        base = sh("git", "rev-parse", "HEAD", cwd=repo)
        sh("git", "branch", "orchestrate/001-bench/integration", base, cwd=repo)
        write_plan(repo, [{"id": i, "status": "in_progress",
                           "orchestrate": {"branch": b, "base": base, "head": h,
                                           "merge": "pending"}}
                          for i, b, h in branches], parallel=False)
        return timed(lambda: sh(*ORCHESTRATE, "merge", "001", cwd=repo))

    def naive() -> float:
        repo, branches = setup(kept_dir(scratch))
        work = repo / "wt"
        sh("git", "worktree", "add", "-q", str(work), "-b", "naive-integration", cwd=repo)

        def merge_all() -> None:
            for _, branch, _ in branches:
                sh("git", "merge", "-q", "--no-ff", "--no-edit", branch, cwd=work)
        return timed(merge_all)

    return {"orchestrate": median(ours, args.repeat), "naive": median(naive, args.repeat)}


def bench_latency(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    repo = fresh_clone(args.files, kept_dir(scratch))
    write_plan(repo, [{"id": f"s{n}", "status": "pending"} for n in range(50)])
    write_plan(repo, [{"subtask_id": f"s{n}", "description": f"edit {n}", "status": "backlog",
                       "files_to_modify": [f"src/m{n}.py"],
                       "verification": {"type": "command", "run": "true"}}
                      for n in range(200)], spec="002-validate")

    def run(*command: str) -> Callable[[], float]:
        return lambda: timed(lambda: sh(*command, cwd=repo))
    runs = max(args.repeat, 15)
    return {"status": median(run(*ORCHESTRATE, "status", "001"), runs),
            "validate, 200 subtasks": median(run(*ORCHESTRATE, "validate", "002"), runs),
            "version": median(run(*ORCHESTRATE, "--version"), runs),
            "git status": median(run("git", "status"), runs)}


def bench_memory(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    fake = ROOT / "tests" / "fake_anthropic.py"
    if not fake.exists():
        return {}
    from bench_memory import peak_rss_of_claude_build  # type: ignore[import-not-found]

    return peak_rss_of_claude_build(args, scratch)


def bench_waves(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    from bench_waves import bench_waves as run  # type: ignore[import-not-found]

    figures: dict[str, float] = run(args, kept_dir(scratch))
    return figures


def bench_ray(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    from bench_ray import bench_ray as measure  # type: ignore[import-not-found]

    figures: dict[str, float] = measure(args, scratch)
    return figures


def median(measure: Callable[[], float], repeat: int) -> float:
    return statistics.median(measure() for _ in range(repeat))


def report(name: str, figures: dict[str, float], ratios: list[tuple[str, str]]) -> None:
    print(f"\n{name}")
    for key, value in figures.items():
        unit = ("MB" if key.endswith("_mb") else
                "" if key.endswith(("runs", "completed")) or key.startswith("conflicts")
                else "s")
        print(f"  {key:<24} {value:10.3f} {unit}".rstrip())
    for top, bottom in ratios:
        if top in figures and bottom in figures and figures[bottom]:
            print(f"  {top + ' / ' + bottom:<34} {figures[top] / figures[bottom]:6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--subtasks", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="build,merge,latency,memory,waves,resolve",
                        help="comma-separated: build, merge, latency, memory, waves, resolve, "
                        "check")
    parser.add_argument("--check-subtasks", type=int, default=16)
    parser.add_argument("--check-seconds", type=float, default=1.0)
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    print(f"orchestrate benchmarks: {args.files} files, medians of {args.repeat} runs, "
          f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="orchestrate-bench-") as tmp, \
            unmounted_on_exit(tmp):
        scratch = Path(tmp)
        if "build" in wanted:
            report(f"(a) build: {args.subtasks} subtasks, {args.parallel} at once, agents "
                   f"sleep {args.sleep:g}s", bench_build(args, scratch),
                   [(build, base) for build in BUILDS for base in ("ideal", "naive")])
        if "merge" in wanted:
            report(f"(b) merge of {args.branches} branches", bench_merge(args, scratch),
                   [("orchestrate", "naive")])
        if "latency" in wanted:
            report("(c) latency", bench_latency(args, scratch),
                   [("status", "git status"), ("version", "git status"),
                    ("validate, 200 subtasks", "status")])
        if "memory" in wanted:
            report(f"(d) {args.sessions} concurrent claude sessions", bench_memory(args, scratch),
                   [])
        if "check" in wanted:
            from bench_check import bench_check  # type: ignore[import-not-found]

            report(f"(e) check gate: {args.check_subtasks} subtasks, a check of "
                   f"{args.check_seconds:g}s", bench_check(args, scratch),
                   [(f"{c}: orchestrate {what}", f"{c}: naive {what}")
                    for c in ("1 culprit", "2 culprits")
                    for what in ("check runs", "merge stage")])
        if "waves" in wanted:
            report(f"(f) waves: 12 subtasks, 4 editing one declared file, {args.parallel} at "
                   f"once, agents sleep {args.sleep:g}s", bench_waves(args, scratch),
                   [("spread, wall", "ideal of the waves"), ("together, wall", "ideal together")])
        if "resolve" in wanted:
            from bench_resolve import bench_resolve  # type: ignore[import-not-found]

            report(f"(g) resolve: 10 subtasks, 3 conflicting pairs, {args.parallel} at once, "
                   f"agents sleep {args.sleep:g}s", bench_resolve(args, scratch),
                   [("resolve agent", "no conflicts"), ("resolve manual", "no conflicts")])
        if "ray" in wanted:
            report(f"(h) runner ray vs local: {args.subtasks} subtasks, {args.parallel} at once, "
                   f"agents sleep {args.sleep:g}s", bench_ray(args, scratch),
                   [("runner ray", "runner local")])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
