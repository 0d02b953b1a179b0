"""The plan and git agree (SPEC 6, last bullet): a `completed` subtask whose work is not in the
integration branch is stale. `status` shows it, `build` merges it again from its branch (no
agent run) or runs it again, with one warning line each, and exit 0 means all work is there."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orchestrator.failpoints import ENV
from tests.buildkit import (
    INTEGRATION,
    SPEC,
    Recorder,
    agent_command,
    branch_files,
    build,
    merges_per_subtask,
    statuses,
)
from tests.conftest import git, phase, plan_of, run_cli, write_plan

pytestmark = pytest.mark.slow  # several real builds per test

IDS = ("a", "b", "c")
PLAN = plan_of(phase(1, ["a", "b"], parallel=True), phase(2, ["c"]))
WORK = {f"{i}.txt" for i in IDS}


def _built(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, PLAN)
    build(repo, recorder)
    assert statuses(repo) == dict.fromkeys(IDS, "completed")
    assert "stale" not in run_cli(repo, "status", "001", check=0).stdout


def _shown(repo: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Each subtask's status as `status` shows it, and `status --json`."""
    text = run_cli(repo, "status", "001", check=0).stdout
    ids = {f"{s}" for s in IDS}
    shown = {line.split()[0]: line.split()[1] for line in text.splitlines()
             if line.startswith("  ") and line.split()[0] in ids}
    return shown, json.loads(run_cli(repo, "status", "001", "--json", check=0).stdout)


def _warnings(out: str) -> list[str]:
    return [line for line in out.splitlines() if "warning: marked completed" in line]


def test_after_clean_all_build_reruns_every_subtask(repo: Path, recorder: Recorder) -> None:
    _built(repo, recorder)
    cleaned = run_cli(repo, "clean", "001", "--all", check=0).stdout
    assert "3 subtask(s) are still `completed`" in cleaned
    assert "runs them again" in cleaned
    shown, as_json = _shown(repo)
    assert shown == dict.fromkeys(IDS, "stale")
    assert as_json["summary"] == {"stale": 3}
    out = build(repo, recorder)
    assert [w.split("]")[0].strip("[") for w in _warnings(out)] == list(IDS)
    assert all("runs again" in w for w in _warnings(out))
    assert recorder.invocations() == Counter(dict.fromkeys(IDS, 2))
    assert statuses(repo) == dict.fromkeys(IDS, "completed")
    assert branch_files(repo, INTEGRATION) >= WORK
    assert merges_per_subtask(repo) == Counter(IDS)
    assert _shown(repo)[0] == dict.fromkeys(IDS, "completed")


def test_a_deleted_integration_branch_is_merged_again_without_agents(
        repo: Path, recorder: Recorder) -> None:
    _built(repo, recorder)
    git(repo, "branch", "-D", INTEGRATION)
    shown, as_json = _shown(repo)
    assert shown == dict.fromkeys(IDS, "stale")
    rows = [s for p in as_json["phases"] for s in p["subtasks"]]
    assert all(r["stale"] and r["plan_status"] == "completed" for r in rows)
    out = build(repo, recorder)
    assert len(_warnings(out)) == 3
    assert all("no agent run" in w for w in _warnings(out))
    assert recorder.invocations() == Counter(dict.fromkeys(IDS, 1))  # the first build's only
    assert statuses(repo) == dict.fromkeys(IDS, "completed")
    assert branch_files(repo, INTEGRATION) >= WORK
    assert merges_per_subtask(repo) == Counter(IDS)
    assert _shown(repo)[0] == dict.fromkeys(IDS, "completed")


def test_only_the_work_reset_away_by_hand_is_merged_again(repo: Path,
                                                          recorder: Recorder) -> None:
    _built(repo, recorder)
    git(repo, "update-ref", f"refs/heads/{INTEGRATION}", f"{INTEGRATION}~1")  # drop c's merge
    assert _shown(repo)[0] == {"a": "completed", "b": "completed", "c": "stale"}
    out = build(repo, recorder)
    assert [w.split("]")[0] for w in _warnings(out)] == ["[c"]
    assert recorder.invocations() == Counter(dict.fromkeys(IDS, 1))
    assert branch_files(repo, INTEGRATION) >= WORK
    assert merges_per_subtask(repo) == Counter(IDS)


def test_a_build_killed_after_recording_stale_subtasks_is_finished_by_the_next(
        repo: Path, recorder: Recorder) -> None:
    _built(repo, recorder)
    git(repo, "branch", "-D", INTEGRATION, "orchestrate/001-demo/c")
    crashed = run_cli(repo, "build", "001", "--agent-command", agent_command(),
                      env={**recorder.env, ENV: "stale-recorded"})
    assert crashed.returncode == -signal.SIGKILL
    assert statuses(repo) == {"a": "in_progress", "b": "in_progress", "c": "pending"}
    build(repo, recorder)
    assert recorder.invocations() == Counter({"a": 1, "b": 1, "c": 2})
    assert statuses(repo) == dict.fromkeys(IDS, "completed")
    assert branch_files(repo, INTEGRATION) >= WORK
    assert merges_per_subtask(repo) == Counter(IDS)


def test_work_lost_during_the_build_is_not_exit_0(repo: Path, recorder: Recorder) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"]), phase(2, ["b"], depends_on=[])))
    main = git(repo, "rev-parse", "main")
    # b runs beside a; once a is merged, b's agent moves the branch back to the base.
    reset = (f'if [ "$ORCHESTRATE_SUBTASK_ID" = b ]; then for i in $(seq 300); do '
             f"git cat-file -e refs/heads/{INTEGRATION}:a.txt 2>/dev/null && break; "
             "sleep 0.1; done; "
             f"git update-ref refs/heads/{INTEGRATION} {main}; fi; ")
    done = run_cli(repo, "build", "001", "--agent-command", reset + agent_command(),
                   env=recorder.env, check=1)
    assert [line for line in done.stdout.splitlines() if "warning:" in line] == [
        f"[a] warning: completed but its work is not in {INTEGRATION} (the branch was moved "
        "during the build); the next build merges it again"]
    assert ": 1 completed, 1 stale;" in done.stdout  # the summary line: `done in <time>: ...`
    build(repo, recorder)
    assert recorder.invocations() == Counter({"a": 1, "b": 1})
    assert branch_files(repo, INTEGRATION) >= {"a.txt", "b.txt"}
