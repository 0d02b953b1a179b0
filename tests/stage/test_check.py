"""SPEC 9: with a check, the integration branch only ever moves to a commit that passed it.

Real repositories, the real program, scripted agents, and a real check script that appends one
line per run to a log, so every test counts the check runs from outside the program."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest

from orchestrator.failpoints import CHECK_FAILPOINTS, ENV, PROBE_ROUND_FAILPOINTS
from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Recorder,
    agent_command,
    branch_files,
    build,
    plan_path,
    start_build,
    statuses,
    subtasks,
)
from tests.conftest import commit_files, git, phase, plan_of, read_json, run_cli, write_plan

# These scenarios are about what the merge stage decides: no resolution rounds (SPEC 10)
# unless a test asks for them with --resolve agent.
# slow: real builds running a check script per candidate
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("manual_resolution")]

CHECK_SCRIPT = '''\
"""Fails when every file of one of its `a+b` rules exists; logs each run to argv[1]."""
import os, sys
from pathlib import Path

commit = os.environ["ORCHESTRATE_CHECK_COMMIT"]
with open(sys.argv[1], "a") as log:
    log.write(f"{commit} {os.environ['ORCHESTRATE_SPEC']} {os.environ['ORCHESTRATE_PORT']}\\n")
for rule in sys.argv[2:]:
    if rule.startswith("flaky:"):
        seen = Path(rule[6:]) / commit
        if not seen.exists():
            seen.parent.mkdir(parents=True, exist_ok=True)
            seen.write_text("failed once")
            print(f"flaky failure on {commit}")
            sys.exit(3)
    elif rule.startswith("sleep:"):
        import time
        time.sleep(float(rule[6:]))
    elif rule.startswith("outside:"):
        if Path(rule[8:]).exists():
            print(f"{rule[8:]} exists: failing")
            sys.exit(4)
    elif all(Path(name).exists() for name in rule.split("+")):
        print(f"check: {rule} all present, the combination is broken")
        sys.exit(1)
print("check: ok")
'''


class Check:
    """The check command and the log of its runs."""

    def __init__(self, tmp_path: Path, *rules: str) -> None:
        self.script = tmp_path / "check.py"
        self.script.write_text(CHECK_SCRIPT)
        self.log = tmp_path / "check-runs.log"
        self.rules = rules
        self.command = shlex.join([sys.executable, str(self.script), str(self.log), *rules])

    def runs(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def fails_on(self, repo: Path, commit: str) -> bool:
        files = branch_files(repo, commit)
        return any(all(name in files for name in rule.split("+")) for rule in self.rules
                   if ":" not in rule)


def ref_history(repo: Path) -> list[str]:
    """Every commit the integration branch ever pointed at (its reflog, oldest last)."""
    return git(repo, "reflog", "show", "--format=%H", f"refs/heads/{INTEGRATION}").split()


def assert_always_green(repo: Path, check: Check) -> None:
    history = ref_history(repo)
    assert history
    assert [c for c in history if check.fails_on(repo, c)] == []


def parallel_plan(ids: list[str]) -> dict[str, object]:
    return plan_of(phase(1, ids, parallel=True))


def test_one_culprit_among_eight_is_ejected_and_the_branch_is_green_throughout(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    ids = [f"s{i}" for i in range(1, 9)]
    write_plan(repo, SPEC, parallel_plan(ids))
    check = Check(tmp_path, "broken.flag")
    build_out = tmp_path / "build.out"
    running = start_build(repo, SPEC, "--check", check.command, "--check-retries", "0",
                          "--max-parallel", "4",
                          "--agent-command", agent_command("--append", "s5=broken.flag",
                                                           "--sleep", "*=0.3"),
                          env=recorder.env, output=build_out)
    seen: set[str] = set()
    while running.process.poll() is None:  # the ref as another process sees it, live
        found = git(repo, "for-each-ref", "--format=%(objectname)", f"refs/heads/{INTEGRATION}")
        seen |= set(found.split())
        time.sleep(0.02)
    assert running.process.returncode == 1, running.text()

    assert statuses(repo) == {**dict.fromkeys(ids, "completed"), "s5": "conflict"}
    files = branch_files(repo, INTEGRATION)
    assert {f"{i}.txt" for i in ids if i != "s5"} <= files
    assert "s5.txt" not in files
    assert "broken.flag" not in files
    culprit = subtasks(repo)["s5"]["orchestrate"]
    assert culprit["merge"] == "check_failed"
    record = culprit["check"]
    assert set(record) == {"command", "exit_code", "commit", "log", "output"}
    assert record["command"] == check.command
    assert record["exit_code"] == 1
    first_failing = record["commit"]
    assert git(repo, "rev-parse", f"{first_failing}^2") == culprit["head"]
    assert "broken.flag" not in branch_files(repo, f"{first_failing}^1")
    assert check.fails_on(repo, first_failing)
    assert Path(record["log"]) == repo / ".orchestrate/specs" / SPEC / "logs" / \
        f"check-{first_failing[:12]}.log"
    assert "the combination is broken" in record["output"]
    assert "the combination is broken" in Path(record["log"]).read_text()
    # the base, the whole batch, ceil(log2 8) = 3 probes, the rest re-merged without s5
    assert len(check.runs()) == 1 + 1 + 3 + 1
    assert [c for c in seen if check.fails_on(repo, c)] == []
    assert_always_green(repo, check)
    assert "check failed: not merged" in running.text()

    status = run_cli(repo, "status", SPEC, check=0).stdout
    assert "ejected by the check" in status
    assert "s5" in status
    report = read_json(repo / ".orchestrate/specs" / SPEC / "conflict_report.json")
    assert report["summary"]["check_failed"] == 1
    assert report["summary"]["check_runs"] == len(check.runs())
    assert report["check"]["command"] == check.command
    entries = [c for c in report["conflicts"] if c["kind"] == "check"]
    assert [e["subtask"] for e in entries] == ["s5"]
    assert entries[0]["check"]["commit"] == first_failing
    markdown = run_cli(repo, "report", SPEC, check=0).stdout
    assert "git worktree add" in markdown
    assert first_failing[:12] in markdown
    assert check.command in markdown
    github = run_cli(repo, "report", SPEC, "--format", "github", check=0).stdout
    assert "::error" in github
    assert "s5" in github


def test_a_semantic_conflict_of_two_branches_that_each_pass_ejects_the_later_one(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    write_plan(repo, SPEC, parallel_plan(["early", "late"]))
    check = Check(tmp_path, "early.txt+late.txt")
    out = build(repo, recorder, options=("--check", check.command, "--json"), check=1)
    assert statuses(repo) == {"early": "completed", "late": "conflict"}
    files = branch_files(repo, INTEGRATION)
    assert "early.txt" in files
    assert "late.txt" not in files
    # the base; both (failing, so rerun once: check_retries); early alone, so late is the culprit
    assert len(check.runs()) == 1 + 2 + 1
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    for kind in ("check_started", "check_passed", "check_failed", "bisect_started",
                 "bisect_round", "bisect_culprit"):
        assert kind in kinds
    assert_always_green(repo, check)


def test_a_check_failing_on_the_base_merges_nothing_until_it_passes(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    base = commit_files(repo, "main", {"broken.flag": "x\n"}, "broken", branch="broken")
    write_plan(repo, SPEC, parallel_plan(["one", "two"]))
    check = Check(tmp_path, "broken.flag")
    done = run_cli(repo, "build", SPEC, "--base", "broken", "--check", check.command,
                   "--agent-command",
                   agent_command(), env=recorder.env, check=1)
    assert f"check fails on {INTEGRATION} at {base[:12]}" in done.stderr
    log = repo / ".orchestrate/specs" / SPEC / "logs" / f"check-{base[:12]}.log"
    assert str(log) in done.stderr
    assert log.exists()
    assert git(repo, "rev-parse", INTEGRATION) == base
    assert statuses(repo) == {"one": "pending", "two": "pending"}
    assert recorder.starts() == []  # no agent starts on a base the check fails on
    assert len(check.runs()) == 2  # failed, so rerun once (check_retries)

    again = run_cli(repo, "build", SPEC, "--check", check.command, "--agent-command",
                    agent_command(), env=recorder.env, check=1)
    assert "check fails on" in again.stderr
    assert len(check.runs()) == 2  # the tree was judged: never checked again
    assert recorder.starts() == []

    fixed = commit_files(repo, base, {"broken.flag": None}, "fix the build")
    git(repo, "update-ref", f"refs/heads/{INTEGRATION}", fixed, base)
    run_cli(repo, "build", SPEC, "--check", check.command, "--agent-command", agent_command(),
            env=recorder.env, check=0)
    assert statuses(repo) == {"one": "completed", "two": "completed"}
    assert len(check.runs()) == 2 + 2  # the fixed head, then the batch
    assert {"one.txt", "two.txt"} <= branch_files(repo, INTEGRATION)


def test_a_failure_followed_by_a_pass_is_a_pass_reported_as_flaky(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    write_plan(repo, SPEC, parallel_plan(["one", "two"]))
    check = Check(tmp_path, f"flaky:{tmp_path / 'seen'}")
    build(repo, recorder, options=("--check", check.command), check=0)
    assert statuses(repo) == {"one": "completed", "two": "completed"}
    assert len(check.runs()) == 4  # base and batch, each failing once then passing
    plan = read_json(plan_path(repo))
    assert plan["orchestrate"]["check_runs"] == 4
    flaky = plan["orchestrate"]["check_flaky"]
    assert len(flaky) == 2
    tip = git(repo, "rev-parse", INTEGRATION)
    assert tip in [f["commit"] for f in flaky]
    report = read_json(repo / ".orchestrate/specs" / SPEC / "conflict_report.json")
    assert tip in [f["commit"] for f in report["check"]["flaky"]]
    assert "flaky" in run_cli(repo, "report", SPEC, check=0).stdout


def test_a_second_merge_reuses_the_cached_verdicts_and_runs_no_check(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    ids = ["a", "b", "c"]
    write_plan(repo, SPEC, parallel_plan(ids))
    check = Check(tmp_path, "broken.flag")
    build(repo, recorder, "--append", "b=broken.flag", options=("--no-merge",), check=0)
    run_cli(repo, "merge", SPEC, "--check", check.command, check=1)
    first = len(check.runs())
    assert statuses(repo) == {"a": "completed", "b": "conflict", "c": "completed"}
    plan = read_json(plan_path(repo))
    assert plan["orchestrate"]["check_command"] == check.command
    assert set(plan["orchestrate"]["checks"].values()) == {"pass", "fail"}
    tip = git(repo, "rev-parse", INTEGRATION)
    assert plan["orchestrate"]["checks"][git(repo, "rev-parse", f"{tip}^{{tree}}")] == "pass"

    run_cli(repo, "merge", SPEC, "--check", check.command, check=1)  # b again: known to fail
    assert len(check.runs()) == first
    assert statuses(repo)["b"] == "conflict"

    changed = check.command + " other-rule"
    run_cli(repo, "merge", SPEC, "--check", changed, check=1)  # a new command: cache emptied
    assert len(check.runs()) > first
    assert read_json(plan_path(repo))["orchestrate"]["check_command"] == changed


def test_in_a_sequential_phase_the_next_subtask_starts_from_the_last_green_head(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["first", "breaks", "third"])))
    check = Check(tmp_path, "broken.flag")
    build(repo, recorder, "--append", "breaks=broken.flag",
          options=("--check", check.command), check=1)
    assert statuses(repo) == {"first": "completed", "breaks": "conflict", "third": "completed"}
    records = subtasks(repo)
    assert records["third"]["orchestrate"]["base"] == records["first"]["orchestrate"][
        "merge_commit"]
    assert records["breaks"]["orchestrate"]["merge"] == "check_failed"
    assert "breaks.txt" not in branch_files(repo, INTEGRATION)
    assert_always_green(repo, check)


def test_a_dependent_phase_of_an_ejected_subtask_is_blocked(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["ok", "bad"], parallel=True), phase(2, ["next"])))
    check = Check(tmp_path, "broken.flag")
    build(repo, recorder, "--append", "bad=broken.flag", options=("--check", check.command),
          check=1)
    assert statuses(repo) == {"ok": "completed", "bad": "conflict", "next": "blocked"}


@pytest.mark.parametrize("name", [*CHECK_FAILPOINTS, "merge-ref-moved", "merge-recorded"])
def test_a_kill_during_the_gate_never_leaves_the_branch_at_a_failing_commit(
        repo: Path, recorder: Recorder, tmp_path: Path, name: str) -> None:
    ids = ["a", "b", "c", "d"]
    write_plan(repo, SPEC, parallel_plan(ids))
    check = Check(tmp_path, "broken.flag")
    options = ("--check", check.command)
    crashed = run_cli(repo, "build", SPEC, *options, "--agent-command",
                      agent_command("--append", "c=broken.flag"),
                      env={**recorder.env, ENV: name})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert_always_green(repo, check)
    build(repo, recorder, "--append", "c=broken.flag", options=options, check=1)
    assert statuses(repo) == {**dict.fromkeys(ids, "completed"), "c": "conflict"}
    assert subtasks(repo)["c"]["orchestrate"]["merge"] == "check_failed"
    assert "broken.flag" not in branch_files(repo, INTEGRATION)
    assert_always_green(repo, check)


def runs_by_commit(check: Check) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in check.runs():
        commit = line.split()[0]
        counts[commit] = counts.get(commit, 0) + 1
    return counts


def test_only_the_verdicts_that_decide_are_rerun_and_the_report_names_the_gate_cost(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    ids = [f"s{i}" for i in range(1, 9)]
    write_plan(repo, SPEC, parallel_plan(ids))
    check = Check(tmp_path, "broken.flag")
    build(repo, recorder, "--append", "s5=broken.flag", options=("--check", check.command),
          check=1)
    assert statuses(repo) == {**dict.fromkeys(ids, "completed"), "s5": "conflict"}
    culprit = subtasks(repo)["s5"]["orchestrate"]["check"]["commit"]
    runs = runs_by_commit(check)
    chain_tip = git(repo, "rev-parse", f"refs/heads/{INTEGRATION}")
    # reruns (check_retries = 1) only for the wave's failing check and the culprit's
    # commit; the bisection's other failing probes were taken at their word
    rerun = {commit for commit, n in runs.items() if n > 1}
    assert culprit in rerun
    assert len(rerun) == 2
    assert all(check.fails_on(repo, commit) for commit in rerun)
    assert chain_tip not in rerun
    # the base, the wave, 3 probes, the rest (s6..s8 again, on the green prefix) + 2 reruns
    assert len(check.runs()) == 1 + 1 + 3 + 1 + 2
    plan = read_json(plan_path(repo))["orchestrate"]
    assert plan["check_runs"] == len(check.runs())
    assert plan["check_runs_sequential"] == 1 + 8  # the base, then one run per branch
    assert (plan["gate_culprits"], plan["gate_judged"]) == (1, 8)
    report = read_json(repo / ".orchestrate/specs" / SPEC / "conflict_report.json")
    assert report["summary"]["check_runs_sequential"] == 9
    assert "(a sequential gate: 9)" in run_cli(repo, "report", SPEC, check=0).stdout
    assert_always_green(repo, check)


def test_a_probe_that_failed_by_chance_is_revised_by_its_rerun_and_reported_flaky(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    """Every commit fails its first run: each failing probe is taken at its word until it
    would name a culprit, where its rerun passes; the culprit is still the one a sequential
    gate names."""
    ids = [f"s{i}" for i in range(1, 7)]
    write_plan(repo, SPEC, parallel_plan(ids))
    check = Check(tmp_path, f"flaky:{tmp_path / 'seen'}", "broken.flag")
    build(repo, recorder, "--append", "s4=broken.flag", options=("--check", check.command),
          check=1)
    assert statuses(repo) == {**dict.fromkeys(ids, "completed"), "s4": "conflict"}
    assert "s4.txt" not in branch_files(repo, INTEGRATION)
    plan = read_json(plan_path(repo))["orchestrate"]
    flaky = {f["commit"] for f in plan["check_flaky"]}
    assert git(repo, "rev-parse", INTEGRATION) in flaky
    assert subtasks(repo)["s3"]["orchestrate"]["merge_commit"] in flaky
    assert plan["checks"][git(repo, "rev-parse", f"{INTEGRATION}^{{tree}}")] == "pass"
    assert_always_green(repo, check)


def test_a_spec_whose_earlier_builds_had_many_culprits_checks_one_branch_at_a_time(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    ids = ["a", "b", "c", "d"]
    plan = parallel_plan(ids)
    plan["orchestrate"] = {"gate_culprits": 6, "gate_judged": 10}
    write_plan(repo, SPEC, plan)
    check = Check(tmp_path, "broken.flag")
    build(repo, recorder, options=("--check", check.command), check=0)
    assert len(check.runs()) == 1 + 4  # the base, then each branch: a batch of one
    recorded = read_json(plan_path(repo))["orchestrate"]
    assert (recorded["gate_culprits"], recorded["gate_judged"]) == (6, 14)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(repo, "branch", "-D", INTEGRATION)
    write_plan(repo, SPEC, parallel_plan(ids))
    other = Check(fresh, "broken.flag")
    build(repo, recorder, options=("--check", other.command, "--retry-failed"), check=0)
    assert len(other.runs()) == 1 + 1  # no culprit seen yet: the whole wave at once


@pytest.mark.parametrize("name", ["check-round-started"])
def test_a_kill_during_a_round_of_several_probes_resumes_to_the_same_verdicts(
        repo: Path, recorder: Recorder, tmp_path: Path, name: str) -> None:
    ids = [f"s{i}" for i in range(1, 7)]  # 6 suspects: two probes at once
    write_plan(repo, SPEC, parallel_plan(ids))
    check = Check(tmp_path, "broken.flag")
    options = ("--check", check.command, "--max-parallel", "4")
    crashed = run_cli(repo, "build", SPEC, *options, "--json", "--agent-command",
                      agent_command("--append", "s5=broken.flag"),
                      env={**recorder.env, ENV: name})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    rounds = [json.loads(line) for line in crashed.stdout.splitlines()
              if '"bisect_round"' in line]
    assert len(rounds[-1]["data"]["probes"]) == 2
    assert_always_green(repo, check)
    build(repo, recorder, "--append", "s5=broken.flag", options=options, check=1)
    assert statuses(repo) == {**dict.fromkeys(ids, "completed"), "s5": "conflict"}
    assert subtasks(repo)["s5"]["orchestrate"]["merge"] == "check_failed"
    assert "broken.flag" not in branch_files(repo, INTEGRATION)
    assert {f"{i}.txt" for i in ids if i != "s5"} <= branch_files(repo, INTEGRATION)
    assert_always_green(repo, check)


def test_a_kill_while_a_culprit_is_confirmed_beside_the_next_batch_resumes_to_its_verdicts(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    """The culprit's confirming rerun and the first check of the branches after it (merged
    again without it) run at once on free slots; a kill -9 there, then a rerun: the plan and
    git agree and the verdicts are a sequential gate's."""
    assert "check-rest-started" in PROBE_ROUND_FAILPOINTS
    ids = [f"s{i}" for i in range(1, 7)]
    write_plan(repo, SPEC, parallel_plan(ids))
    check = Check(tmp_path, "sleep:0.4", "broken.flag")  # long enough to overlap
    options = ("--check", check.command, "--max-parallel", "4")
    crashed = run_cli(repo, "build", SPEC, *options, "--json", "--agent-command",
                      agent_command("--append", "s2=broken.flag"),
                      env={**recorder.env, ENV: "check-rest-started"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    events = [json.loads(line) for line in crashed.stdout.splitlines() if line.startswith("{")]
    started = [e["data"]["commit"] for e in events if e["kind"] == "check_started"]
    ended = [e["data"]["commit"] for e in events
             if e["kind"] in ("check_passed", "check_failed", "check_flaky")]
    under_way = list(dict.fromkeys(c for c in started if started.count(c) > ended.count(c)))
    assert len(under_way) == 2, events  # the confirming rerun and the next batch's check
    culprit_commit, rest_commit = under_way
    assert check.fails_on(repo, culprit_commit)
    assert not check.fails_on(repo, rest_commit)
    assert git(repo, "rev-parse", f"{rest_commit}^1") == git(repo, "rev-parse",
                                                             f"{culprit_commit}^1")
    assert_always_green(repo, check)
    assert statuses(repo)["s2"] == "in_progress"  # nothing of the culprit recorded yet

    build(repo, recorder, "--append", "s2=broken.flag", options=options, check=1)
    assert statuses(repo) == {**dict.fromkeys(ids, "completed"), "s2": "conflict"}
    assert subtasks(repo)["s2"]["orchestrate"]["merge"] == "check_failed"
    files = branch_files(repo, INTEGRATION)
    assert "broken.flag" not in files
    assert {f"{i}.txt" for i in ids if i != "s2"} <= files
    for subtask_id in set(ids) - {"s2"}:
        merge_commit = subtasks(repo)[subtask_id]["orchestrate"]["merge_commit"]
        assert git(repo, "merge-base", "--is-ancestor", merge_commit, INTEGRATION) == ""
    assert_always_green(repo, check)


def test_small_batches_merge_their_chain_as_far_as_needed_past_conflicts_and_culprits(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    """With culprits common in the spec's history the batches are small and each chain is
    merged only as far as its search needs: a merge conflict on the way and a culprit after
    it end as a sequential gate ends, and the branch holds every other subtask's work."""
    ids = [f"s{i:02d}" for i in range(1, 13)]
    plan = parallel_plan(ids)
    plan["orchestrate"] = {"gate_culprits": 3, "gate_judged": 10}  # batches of 2
    write_plan(repo, SPEC, plan)
    check = Check(tmp_path, "broken.flag")
    build(repo, recorder, "--append", "s04=shared.txt", "--append", "s06=shared.txt",
          "--append", "s10=broken.flag",
          options=("--check", check.command), check=1)
    assert statuses(repo) == {**dict.fromkeys(ids, "completed"), "s06": "conflict",
                              "s10": "conflict"}
    records = subtasks(repo)
    assert records["s06"]["orchestrate"]["merge"] == "conflict"
    assert records["s10"]["orchestrate"]["merge"] == "check_failed"
    files = branch_files(repo, INTEGRATION)
    assert {f"{i}.txt" for i in ids if i not in ("s06", "s10")} <= files
    assert "broken.flag" not in files
    assert len(check.runs()) <= 1 + 12  # never more than a sequential gate
    assert_always_green(repo, check)


def test_check_settings_come_from_options_environment_and_config(repo: Path) -> None:
    from orchestrator.settings import load_settings

    (repo / "orchestrate.toml").write_text('check = "make test"\ncheck_retries = 2\n')
    settings = load_settings(repo, {}, environ={"ORCHESTRATE_CHECK_TIMEOUT": "30"})
    assert (settings.check, settings.check_timeout, settings.check_retries) == (
        "make test", 30.0, 2)
    assert settings.check_limit_s == 30.0
    given = load_settings(repo, {"check": "pytest -x", "timeout": 99.0}, environ={})
    assert given.check == "pytest -x"
    assert given.check_limit_s == 99.0  # check_timeout defaults to --timeout


def test_a_bad_check_setting_is_refused_before_anything_happens(repo: Path) -> None:
    path = write_plan(repo, SPEC, parallel_plan(["one"]))
    before = path.read_bytes()
    done = run_cli(repo, "merge", SPEC, "--check", "true", "--check-retries", "-1", check=2)
    assert "option --check-retries must not be negative" in done.stderr
    (repo / "orchestrate.toml").write_text("check_timeout = 0\n")
    done = run_cli(repo, "build", SPEC, "--agent-command", "true", check=2)
    assert "orchestrate.toml key `check_timeout` must be more than 0 seconds" in done.stderr
    assert path.read_bytes() == before
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("free", [1, 2, 3, 5, 8])
def test_bisection_with_any_free_slots_needs_at_most_ceil_log2_n_probes(free: int) -> None:
    """The narrowing of the gate's bisection, driven by probe_points, for every
    batch size and every culprit position: it finds the culprit within ceil(log2 n) probes."""
    import math

    from orchestrator.stage.batching import probe_points

    for size in range(1, 40):
        for culprit in range(size):
            passing, failing, probes = -1, size - 1, 0
            while failing - passing > 1:
                points = probe_points(passing, failing, free=free)
                assert all(passing < p < failing for p in points)
                assert len(set(points)) == len(points)
                probes += len(points)
                first_fail = min((p for p in points if p >= culprit), default=failing)
                passing = max([passing, *(p for p in points if p < culprit)])
                failing = first_fail
            assert failing == culprit
            assert probes <= math.ceil(math.log2(size)) if size > 1 else probes == 0
