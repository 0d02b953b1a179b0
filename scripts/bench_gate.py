#!/usr/bin/env python3
"""The check gate (`orchestrate merge --check`) against a sequential gate, on the same
branches of the same repository, in the same run.

    .venv/bin/python scripts/bench_gate.py                       # n = 8, 32, 64; a few minutes
    .venv/bin/python scripts/bench_gate.py --sizes 8 --rates 0,0.5

For every n and culprit rate p it generates n finished branches of one parallel phase (each
adds its own file; round(p n) culprits at seeded random positions also add a `broken-*.flag`
file the check fails on), plus, per n, two more rows at p = 0.05: one with a pair of branches
that fail only together, and one with a flaky check (a tree fails its first run with
probability 0.2). Then:

* orchestrate: `orchestrate merge SPEC --check CMD` (the branches recorded as committed work
  waiting to be merged), process start included, twice: on a new spec, and on a spec whose
  earlier build of n branches at the same rate left its culprit count in the plan
  (`orchestrate.gate_culprits` / `gate_judged`);
* the sequential gate: in a worktree, for each branch in plan order, `git merge --no-ff`, the
  check, a failing check rerun `--check-retries` times, and a merge whose check still fails
  undone (`git reset --hard HEAD~1`); its base checked first.

Both count their check runs from a log the check writes: `runs` are distinct commits checked
(the `check_retries` reruns of a commit not counted), `reruns` the rest. The verdicts (the
branches left out) and the final trees must be equal, or the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.workspace.overlay import unmounted_on_exit

ORCHESTRATE = [sys.executable, "-m", "orchestrator"]
SPEC = "001-bench"
CHECK = """\
import hashlib, os, pathlib, sys
log, state, flaky = sys.argv[1], pathlib.Path(sys.argv[2]), float(sys.argv[3])
pair = sys.argv[4].split(",") if len(sys.argv) > 4 else []
with open(log, "a") as handle:
    handle.write(os.environ.get("ORCHESTRATE_CHECK_COMMIT") or os.environ["GATE_COMMIT"])
    handle.write("\\n")
files = sorted(p.name for p in pathlib.Path(".").iterdir() if p.name != ".git")
key = hashlib.sha256("\\n".join(files).encode()).hexdigest()
if int(key[:8], 16) / 2**32 < flaky and not (state / key).exists():
    state.mkdir(parents=True, exist_ok=True)
    (state / key).write_text("failed once")
    sys.exit(3)
if any(name.startswith("broken-") for name in files):
    sys.exit(1)
if pair and all(f"{name}.txt" in files for name in pair):
    sys.exit(2)
"""


@dataclass(frozen=True)
class Scenario:
    n: int
    rate: float
    culprits: frozenset[str]
    pair: tuple[str, str] | None = None
    flaky: float = 0.0

    @property
    def label(self) -> str:
        extra = " + pair" if self.pair else " + flaky check" if self.flaky else ""
        return f"{self.rate:g}{extra}"


@dataclass(frozen=True)
class Outcome:
    runs: int
    reruns: int
    seconds: float
    ejected: frozenset[str]
    tree: str


def git(repo: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> str:
    done = subprocess.run(["git", *args], cwd=repo, env=env, input=stdin, capture_output=True,
                          text=True, check=False)
    if done.returncode not in (0, 1) or (done.returncode == 1 and args[0] != "merge"):
        raise SystemExit(f"git {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip()


def _ids(n: int) -> list[str]:
    return [f"s{i:02d}" for i in range(1, n + 1)]


def _culprits(n: int, rate: float, seed: str) -> frozenset[str]:
    """round(rate * n) culprits at seeded random positions: the rate itself, not a draw."""
    return frozenset(random.Random(seed).sample(_ids(n), round(rate * n)))


def scenarios(sizes: list[int], rates: list[float], seed: int) -> list[Scenario]:
    """Per n: each rate, then a pair failing only together and a flaky check at p = 0.05."""
    found = []
    for n in sizes:
        found += [Scenario(n, rate, _culprits(n, rate, f"{seed}-{n}-{rate}")) for rate in rates]
        culprits = _culprits(n, 0.05, f"{seed}-{n}-pair")
        pair = random.Random(f"{seed}-{n}-pair").sample(sorted(set(_ids(n)) - culprits), 2)
        found.append(Scenario(n, 0.05, culprits, pair=(min(pair), max(pair))))
        found.append(Scenario(n, 0.05, _culprits(n, 0.05, f"{seed}-{n}-flaky"), flaky=0.2))
    return found


def make_repo(scratch: Path, scenario: Scenario, env: dict[str, str]) -> tuple[Path, str]:
    """A small repository, the integration branch at its base, and one branch per subtask,
    made with plumbing (no agent runs: the merge stage is what is measured)."""
    repo = scratch / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main", env=env)
    (repo / "README").write_text("bench\n")
    git(repo, "add", "README", env=env)
    git(repo, "commit", "-qm", "base", env=env)
    base = git(repo, "rev-parse", "HEAD", env=env)
    index = {**env, "GIT_INDEX_FILE": str(scratch / "index")}
    for subtask in _ids(scenario.n):
        git(repo, "read-tree", base, env=index)
        files = [f"{subtask}.txt"] + ([f"broken-{subtask}.flag"]
                                      if subtask in scenario.culprits else [])
        for name in files:
            blob = git(repo, "hash-object", "-w", "--stdin", env=env, stdin=f"{subtask}\n")
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=index)
        tree = git(repo, "write-tree", env=index)
        commit = git(repo, "commit-tree", tree, "-p", base, "-m", f"{subtask}: work", env=env)
        git(repo, "update-ref", f"refs/heads/orchestrate/{SPEC}/{subtask}", commit, env=env)
    git(repo, "update-ref", f"refs/heads/orchestrate/{SPEC}/integration", base, env=env)
    return repo, base


def write_plan(repo: Path, scenario: Scenario, base: str, env: dict[str, str],
               history: tuple[int, int] | None = None) -> None:
    folder = repo / ".orchestrate" / "specs" / SPEC
    folder.mkdir(parents=True)
    subtasks = []
    for subtask in _ids(scenario.n):
        head = git(repo, "rev-parse", f"orchestrate/{SPEC}/{subtask}", env=env)
        subtasks.append({"id": subtask, "description": f"add {subtask}",
                         "status": "in_progress",
                         "orchestrate": {"branch": f"orchestrate/{SPEC}/{subtask}",
                                         "base": base, "head": head, "merge": "pending"}})
    plan = {"phases": [{"phase": 1, "name": "bench", "parallel_safe": True,
                        "subtasks": subtasks}],
            "orchestrate": {"integration_branch": f"orchestrate/{SPEC}/integration",
                            "base": base}}
    if history is not None:  # what an earlier build of the spec recorded (SPEC 9)
        plan["orchestrate"].update(gate_culprits=history[0], gate_judged=history[1])
    (folder / "implementation_plan.json").write_text(json.dumps(plan, indent=2))


def check_command(scratch: Path, name: str, scenario: Scenario) -> list[str]:
    pair = [",".join(scenario.pair)] if scenario.pair else []
    return [sys.executable, str(scratch / "check.py"), str(scratch / f"{name}.log"),
            str(scratch / f"{name}-state"), str(scenario.flaky), *pair]


def counted(log: Path) -> tuple[int, int]:
    lines = log.read_text().splitlines() if log.exists() else []
    return len(set(lines)), len(lines) - len(set(lines))


def ours(repo: Path, scratch: Path, scenario: Scenario, args: argparse.Namespace,
         env: dict[str, str]) -> Outcome:
    return orchestrate_gate(repo, check_command(scratch, "ours", scenario), scratch / "ours.log",
                            args, env)


def orchestrate_gate(repo: Path, check: list[str], log: Path, args: argparse.Namespace,
                     env: dict[str, str]) -> Outcome:
    """`orchestrate merge --check` of the spec's branches; `log`: where the check writes one
    line per run."""
    start = time.perf_counter()
    done = subprocess.run([*ORCHESTRATE, "merge", SPEC, "--json", "--check", shlex.join(check),
                           "--check-retries", str(args.check_retries)], cwd=repo,
                          env={**env, "ORCHESTRATE_MAX_PARALLEL": str(args.parallel),
                               # like the sequential gate's: the check lives in a scratch folder
                               "ORCHESTRATE_SANDBOX": "none"},
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"orchestrate merge failed ({done.returncode}):\n{done.stderr}")
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    ejected = frozenset(e["subtask"] for e in events if e["kind"] == "subtask_conflict")
    runs, reruns = counted(log)
    tree = git(repo, "rev-parse", f"orchestrate/{SPEC}/integration^{{tree}}", env=env)
    return Outcome(runs, reruns, seconds, ejected, tree)


def sequential(repo: Path, scratch: Path, scenario: Scenario, base: str,
               args: argparse.Namespace, env: dict[str, str]) -> Outcome:
    return sequential_gate(repo, scratch, base, _ids(scenario.n),
                           check_command(scratch, "gate", scenario), args.check_retries, env)


def sequential_gate(repo: Path, scratch: Path, base: str, ids: list[str], check: list[str],
                    retries: int, env: dict[str, str]) -> Outcome:
    """The naive gate: merge one branch at a time in a worktree at `base`, check, keep it or
    reset it; a failing check is run again `retries` times. Its runs are logged to gate.log."""
    work = scratch / "gate-worktree"
    git(repo, "worktree", "add", "-q", "--detach", str(work), base, env=env)

    def passes() -> bool:
        head = git(work, "rev-parse", "HEAD", env=env)
        return any(subprocess.run(check, cwd=work, env={**env, "GATE_COMMIT": head},
                                  check=False).returncode == 0 for _ in range(1 + retries))

    start = time.perf_counter()
    ejected = set()
    if not passes():
        raise SystemExit("the base fails the check")
    for subtask in ids:
        git(work, "merge", "-q", "--no-ff", "--no-edit", f"orchestrate/{SPEC}/{subtask}",
            env=env)
        if not passes():
            git(work, "reset", "-q", "--hard", "HEAD~1", env=env)
            ejected.add(subtask)
    seconds = time.perf_counter() - start
    runs, reruns = counted(scratch / "gate.log")
    return Outcome(runs, reruns, seconds, frozenset(ejected),
                   git(work, "rev-parse", "HEAD^{tree}", env=env))


def measure(scenario: Scenario, args: argparse.Namespace, scratch: Path,
            env: dict[str, str]) -> tuple[Outcome, Outcome, Outcome]:
    """orchestrate on a new spec, orchestrate on a spec whose earlier build of n branches
    at the same rate recorded its culprits, and the sequential gate."""
    outcomes = []
    earlier = len(_culprits(scenario.n, scenario.rate, f"earlier-{scenario}"))
    for name, history in (("cold", None), ("warm", (earlier, scenario.n))):
        folder = scratch / name
        folder.mkdir()
        (folder / "check.py").write_text(CHECK)
        repo, base = make_repo(folder, scenario, env)
        write_plan(repo, scenario, base, env, history)
        outcomes.append(ours(repo, folder, scenario, args, env))
        if name == "cold":
            gate = sequential(repo, folder, scenario, base, args, env)
    return outcomes[0], outcomes[1], gate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8,32,64")
    parser.add_argument("--rates", default="0,0.05,0.15,0.3,0.5")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=4, help="--max-parallel (slots)")
    parser.add_argument("--check-retries", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args()
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
    sizes = [int(x) for x in args.sizes.split(",")]
    rates = [float(x) for x in args.rates.split(",")]
    if not args.json:
        print("| n | p | culprits | runs: new spec | runs: spec with history | sequential gate "
              "| ratio new / with history | reruns (new/gate) | s: new | s: with history "
              "| s: gate | verdicts equal |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp, \
            unmounted_on_exit(tmp):
        for number, scenario in enumerate(scenarios(sizes, rates, args.seed)):
            scratch = Path(tmp) / f"row{number}"
            scratch.mkdir()
            cold, warm, gate = measure(scenario, args, scratch, env)
            equal = all(o.ejected == gate.ejected and o.tree == gate.tree for o in (cold, warm))
            failed |= not equal
            row = {"n": scenario.n, "p": scenario.label, "culprits": len(gate.ejected),
                   "runs_new": cold.runs, "runs_history": warm.runs, "runs_gate": gate.runs,
                   "reruns_new": cold.reruns, "reruns_gate": gate.reruns,
                   "s_new": round(cold.seconds, 2), "s_history": round(warm.seconds, 2),
                   "s_gate": round(gate.seconds, 2), "verdicts_equal": equal}
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"| {row['n']} | {row['p']} | {row['culprits']} | {cold.runs} | "
                      f"{warm.runs} | {gate.runs} | {cold.runs / gate.runs:.2f} / "
                      f"{warm.runs / gate.runs:.2f} | {cold.reruns}/{gate.reruns} | "
                      f"{cold.seconds:.2f} | {warm.seconds:.2f} | {gate.seconds:.2f} | "
                      f"{'yes' if equal else 'NO'} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
