"""`orchestrate build` on real repositories with real agent processes (tests/agents/agent.py):
concurrency, ordering, failure isolation, retries, records and what reaches the commits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Recorder,
    agent_command,
    branch_files,
    build,
    merges_per_subtask,
    orchestrate_branches,
    peak_concurrency,
    statuses,
    subtasks,
    worktree_paths,
)
from tests.conftest import commit_all, git, phase, plan_of, read_json, run_cli, write_plan

pytestmark = pytest.mark.slow  # real builds with agent processes


def test_a_parallel_phase_runs_exactly_max_parallel_agents_at_once(
        repo: Path, recorder: Recorder) -> None:
    ids = [f"p{i}" for i in range(6)]
    write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True)))
    build(repo, recorder, "--sleep", "*=0.5", options=("--max-parallel", "3"))
    assert recorder.invocations() == Counter(dict.fromkeys(ids, 1))
    assert peak_concurrency(recorder.events()) == 3
    assert statuses(repo) == dict.fromkeys(ids, "completed")
    assert merges_per_subtask(repo) == Counter(dict.fromkeys(ids, 1))


def test_one_limit_covers_independent_parallel_phases_running_together(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a1", "a2", "a3"], parallel=True),
                                   phase(2, ["b1", "b2", "b3"], parallel=True, depends_on=[])))
    build(repo, recorder, "--sleep", "*=0.6", options=("--max-parallel", "4"))
    assert peak_concurrency(recorder.events()) == 4  # 3 if the phases ran one after another
    assert set(statuses(repo).values()) == {"completed"}


def test_a_sequential_subtask_sees_the_work_before_it(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True),
                                   phase(2, ["c", "d"])))
    build(repo, recorder, "--sleep", "*=0.1", "--require", "c=a.txt,b.txt",
          "--require", "d=a.txt,b.txt,c.txt")
    assert statuses(repo) == dict.fromkeys("abcd", "completed")
    assert {"a.txt", "b.txt", "c.txt", "d.txt"} <= branch_files(repo, INTEGRATION)
    starts = {e["id"]: e["t"] for e in recorder.starts()}
    ends = {e["id"]: e["t"] for e in recorder.events("end")}
    assert max(ends["a"], ends["b"]) < starts["c"]
    assert ends["c"] < starts["d"]


def test_the_plan_records_every_run_field(repo: Path, recorder: Recorder) -> None:
    base = git(repo, "rev-parse", "HEAD")
    path = write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True), feature="demo"))
    build(repo, recorder)
    plan = read_json(path)
    assert plan["feature"] == "demo"
    assert plan["orchestrate"]["integration_branch"] == INTEGRATION
    assert plan["orchestrate"]["base"] == base
    assert plan["orchestrate"]["updated_at"].endswith("Z")
    tip = git(repo, "rev-parse", INTEGRATION)
    for subtask_id, subtask in subtasks(repo).items():
        meta = subtask["orchestrate"]
        branch = f"orchestrate/{SPEC}/{subtask_id}"
        assert subtask["status"] == "completed"
        assert subtask["started_at"] <= subtask["completed_at"]
        assert meta["branch"] == branch
        assert meta["worktree"] == str(repo / ".orchestrate" / "worktrees" / SPEC / subtask_id)
        assert meta["base"] == base
        assert meta["head"] == git(repo, "rev-parse", branch)
        assert meta["attempts"] == 1
        assert meta["merge"] == "merged"
        assert git(repo, "rev-parse", f"{meta['merge_commit']}^2") == meta["head"]
        git(repo, "merge-base", "--is-ancestor", meta["merge_commit"], tip)
        assert meta["duration_s"] > 0
    # branches stay for review; the merged worktrees are gone from their folders
    assert set(orchestrate_branches(repo)) == {INTEGRATION, f"orchestrate/{SPEC}/a",
                                               f"orchestrate/{SPEC}/b"}
    assert not (repo / ".orchestrate" / "worktrees" / SPEC / "a").exists()
    assert str(repo / ".orchestrate" / "worktrees" / SPEC / "a") not in worktree_paths(repo)
    assert ".orchestrate" not in git(repo, "status", "--porcelain")


def test_keep_worktrees_leaves_them_on_their_branches(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    build(repo, recorder, options=("--keep-worktrees",))
    worktree = repo / ".orchestrate" / "worktrees" / SPEC / "a"
    assert git(worktree, "symbolic-ref", "HEAD") == f"refs/heads/orchestrate/{SPEC}/a"
    assert (worktree / "a.txt").read_text() == "work of a\n"


def test_a_failing_subtask_stops_only_its_dependents(repo: Path, recorder: Recorder,
                                                       tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    write_plan(repo, SPEC, plan_of(phase(1, ["ok1", "bad", "ok2"], parallel=True),
                                   phase(2, ["dep"]),
                                   phase(3, ["indep"], depends_on=[])))
    build(repo, recorder, "--sleep", "*=0.3", "--sleep", "bad=0", "--fail", "bad",
          "--dump-stdin", f"bad={prompts}", options=("--retries", "2"), check=1)
    assert statuses(repo) == {"ok1": "completed", "bad": "failed", "ok2": "completed",
                              "dep": "blocked", "indep": "completed"}
    assert recorder.invocations() == Counter(ok1=1, bad=3, ok2=1, indep=1)
    assert merges_per_subtask(repo) == Counter(ok1=1, ok2=1, indep=1)
    bad = subtasks(repo)["bad"]["orchestrate"]
    assert bad["attempts"] == 3
    assert "exited with code 1" in bad["error"]
    assert "bad" in subtasks(repo)["dep"]["orchestrate"]["error"]
    first, second, third = (p.read_text() for p in sorted(prompts.iterdir()))
    assert "BOOM" not in first
    assert "BOOM bad: told to fail" in second
    assert "BOOM-STDERR bad" in second
    assert "BOOM bad: told to fail" in third
    assert all("Do bad" in prompt for prompt in (first, second, third))


def test_a_failure_in_a_sequential_phase_does_not_stop_the_next_subtask(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["s1", "s2", "s3"])))
    build(repo, recorder, "--fail", "s2", options=("--retries", "0"), check=1)
    assert statuses(repo) == {"s1": "completed", "s2": "failed", "s3": "completed"}
    assert merges_per_subtask(repo) == Counter(s1=1, s3=1)


def test_retries_zero_means_one_attempt(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["bad"])))
    build(repo, recorder, "--fail", "bad", options=("--retries", "0"), check=1)
    assert recorder.invocations() == Counter(bad=1)
    assert subtasks(repo)["bad"]["orchestrate"]["attempts"] == 1


def test_the_agent_gets_every_orchestrate_variable(repo: Path, recorder: Recorder) -> None:
    plan = plan_of(phase(1, ["a"]))
    plan["phases"][0]["subtasks"][0]["description"] = "Add the widget\n\nWith all the details."
    write_plan(repo, SPEC, plan)
    build(repo, recorder, "--print", "a=hello from the agent")
    (start,) = recorder.starts("a")
    env = start["env"]
    worktree = repo / ".orchestrate" / "worktrees" / SPEC / "a"
    assert env["ORCHESTRATE_PROMPT"] == start["prompt"]
    assert "Add the widget" in start["prompt"]
    assert "With all the details." in start["prompt"]
    assert Path(env["ORCHESTRATE_PROMPT_FILE"]).read_text() == start["prompt"]
    assert env["ORCHESTRATE_SPEC"] == SPEC
    assert env["ORCHESTRATE_SUBTASK_ID"] == "a"
    assert env["ORCHESTRATE_WORKTREE"] == str(worktree)
    assert Path(start["cwd"]).resolve() == worktree.resolve()
    assert env["ORCHESTRATE_BRANCH"] == f"orchestrate/{SPEC}/a"
    assert start["branch"] == f"refs/heads/orchestrate/{SPEC}/a"
    assert 0 < int(env["ORCHESTRATE_PORT"]) < 65536
    log = repo / ".orchestrate" / "specs" / SPEC / "logs" / "a.log"
    assert "hello from the agent" in log.read_text()


def test_running_subtasks_never_share_a_port(repo: Path, recorder: Recorder) -> None:
    ids = [f"p{i}" for i in range(6)]
    write_plan(repo, SPEC, plan_of(phase(1, ids, parallel=True)))
    build(repo, recorder, "--sleep", "*=0.4", options=("--max-parallel", "4"))
    runs = {e["id"]: [e["t"], 0.0, int(e["env"]["ORCHESTRATE_PORT"])] for e in recorder.starts()}
    for end in recorder.events("end"):
        runs[end["id"]][1] = end["t"]
    assert peak_concurrency(recorder.events()) == 4
    for one, (start1, end1, port1) in runs.items():
        for other, (start2, end2, port2) in runs.items():
            if one < other and start1 < end2 and start2 < end1:
                assert port1 != port2, f"{one} and {other} ran together on port {port1}"


def test_commits_carry_the_message_and_trailers(repo: Path, recorder: Recorder) -> None:
    plan = plan_of(phase(1, ["a"]))
    plan["phases"][0]["subtasks"][0]["description"] = "Add the widget\nsecond line"
    write_plan(repo, SPEC, plan)
    build(repo, recorder)
    branch = f"orchestrate/{SPEC}/a"

    def last(fmt: str) -> str:
        return git(repo, "log", "-1", f"--format={fmt}", branch)

    assert last("%s") == "a: Add the widget"
    assert last("%(trailers:key=Orchestrate-Spec,valueonly)") == SPEC
    assert last("%(trailers:key=Orchestrate-Subtask,valueonly)") == "a"
    assert last("%(trailers:key=Orchestrate-Agent,valueonly)").startswith("command")
    assert git(repo, "diff", "--name-only", f"{branch}^", branch) == "a.txt"


def test_orchestrator_folders_are_never_committed_but_agent_commits_are_kept(
        repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    build(repo, recorder, "--special", "*", "--commit", "b")
    files = branch_files(repo, INTEGRATION)
    assert {"a.txt", "b.txt", "b-own.txt"} <= files
    assert not [f for f in files if f.startswith((".orchestrate/", ".auto-claude/"))]
    for subtask_id in "ab":
        assert not [f for f in branch_files(repo, f"orchestrate/{SPEC}/{subtask_id}")
                    if f.startswith((".orchestrate/", ".auto-claude/"))]
    subjects = git(repo, "log", "--format=%s", f"main..orchestrate/{SPEC}/b").splitlines()
    assert subjects == ["b: Do b", "agent's own commit for b"]
    own = git(repo, "log", "-1", "--format=%H", "--grep=agent's own commit", INTEGRATION)
    assert own
    assert statuses(repo) == {"a": "completed", "b": "completed"}


def test_env_files_are_copied_in_and_setup_runs_first(repo: Path, recorder: Recorder) -> None:
    (repo / ".gitignore").write_text("setup-stamp.txt\n")
    (repo / "orchestrate.toml").write_text('setup = ["echo ready > setup-stamp.txt"]\n')
    commit_all(repo, "config")
    (repo / ".env").write_text("SECRET=abc\n")
    (repo / ".env.local").write_text("LOCAL=1\n")
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    build(repo, recorder, "--show", "*=.env,.env.local", "--require", "*=setup-stamp.txt")
    for start in recorder.starts():
        assert start["files"] == {".env": "SECRET=abc\n", ".env.local": "LOCAL=1\n"}
    assert statuses(repo) == {"a": "completed", "b": "completed"}
    files = branch_files(repo, INTEGRATION)
    assert "setup-stamp.txt" not in files
    assert ".env" not in files
    assert ".env.local" not in files


def test_the_integration_branch_starts_from_base(repo: Path, recorder: Recorder) -> None:
    git(repo, "switch", "-q", "-c", "feature")
    (repo / "feature.txt").write_text("feature\n")
    feature = commit_all(repo, "feature work")
    git(repo, "switch", "-q", "main")
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    write_plan(repo, "002-other", plan_of(phase(1, ["x"])))
    build(repo, recorder, "--require", "a=feature.txt", options=("--base", "feature"))
    assert git(repo, "rev-parse", f"{INTEGRATION}^1") == feature
    assert read_json(repo / ".orchestrate/specs" / SPEC / "implementation_plan.json")[
        "orchestrate"]["base"] == feature
    # without --base: the branch checked out in the main worktree (here main, not feature)
    run_cli(repo, "build", "002", "--agent-command", agent_command("--require", "x=README.md"),
            env=recorder.env, check=0)
    assert git(repo, "rev-parse", "orchestrate/002-other/integration^1") == git(
        repo, "rev-parse", "main")
    assert "feature.txt" not in branch_files(repo, "orchestrate/002-other/integration")


def test_a_tracked_env_file_edited_by_the_agent_is_committed(repo: Path,
                                                            recorder: Recorder) -> None:
    (repo / ".env").write_text("PUBLIC=1\n")
    commit_all(repo, "tracked env")
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    build(repo, recorder, "--append", "a=.env")
    assert git(repo, "show", f"{INTEGRATION}:.env") == "PUBLIC=1\nedit by a"


def test_verification_runs_after_the_agent_and_its_output_feeds_the_retry(
        repo: Path, recorder: Recorder, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    plan = plan_of(phase(1, ["good", "bad"], parallel=True))
    plan["phases"][0]["subtasks"][0]["verification"] = {"type": "command",
                                                        "run": "test -f good.txt"}
    plan["phases"][0]["subtasks"][1]["verification"] = {
        "type": "command", "command": "echo VERIFY-$((40 + 2))-NO; exit 3"}
    write_plan(repo, SPEC, plan)
    build(repo, recorder, "--dump-stdin", f"bad={prompts}", check=1)
    assert statuses(repo) == {"good": "completed", "bad": "failed"}
    assert recorder.invocations() == Counter(good=1, bad=2)
    assert "verification" in subtasks(repo)["bad"]["orchestrate"]["error"]
    first, second = (p.read_text() for p in sorted(prompts.iterdir()))
    assert "VERIFY-42-NO" not in first
    assert "VERIFY-42-NO" in second


def test_an_agent_that_leaves_its_branch_fails_the_attempt(repo: Path,
                                                            recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    build(repo, recorder, "--switch", "a=elsewhere", options=("--retries", "0"), check=1)
    assert statuses(repo) == {"a": "failed", "b": "completed"}
    assert "elsewhere" in subtasks(repo)["a"]["orchestrate"]["error"]
    assert f"orchestrate/{SPEC}/a" in orchestrate_branches(repo)


def test_a_spec_under_auto_claude_builds_the_same(repo: Path, recorder: Recorder) -> None:
    path = write_plan(repo, SPEC, plan_of(phase(1, ["a"])), root=".auto-claude/specs")
    build(repo, recorder, "--special", "a")
    assert read_json(path)["phases"][0]["subtasks"][0]["status"] == "completed"
    assert (path.parent / "logs" / "a.log").exists()
    files = branch_files(repo, INTEGRATION)
    assert "a.txt" in files
    assert not [f for f in files if f.startswith((".orchestrate/", ".auto-claude/"))]
