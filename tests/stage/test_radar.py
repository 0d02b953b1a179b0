"""The conflict radar on real worktrees, in process: what it reads, what it leaves alone, what it
announces and records, and what the report makes of it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from orchestrator.agents.base import AgentResult, AgentTask
from orchestrator.plan.model import Phase
from orchestrator.plan.parse import load_plan
from orchestrator.plan.store import PlanStore
from orchestrator.plan.transitions import Transitions
from orchestrator.settings import Settings
from orchestrator.stage.radar import Radar
from orchestrator.stage.radar_reads import (
    BranchReader,
    Lines,
    WorktreeReader,
    parse_hunks,
    touching,
)
from orchestrator.stage.radar_report import radar_outcomes
from tests.conftest import commit_all, git, phase, plan_of, write_plan
from tests.inprocess import build_in_process


def worktree(repo: Path, name: str) -> Path:
    path = repo.parent / name
    git(repo, "worktree", "add", "-q", "-b", name, str(path))
    return path


def index_state(tree: Path) -> tuple[int, int, bytes]:
    index = Path(git(tree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    found = index.stat()
    return found.st_mtime_ns, found.st_ino, index.read_bytes()


def edit_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    path.write_text("".join(lines))


async def test_reads_what_changed_against_the_base_and_never_the_worktrees_index(
        repo: Path, tmp_path: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    tree = worktree(repo, "one")
    before = index_state(tree)
    reader = WorktreeReader(tree, base, tmp_path / "private.index", copied=(".env",))
    assert await reader.changes() == {}
    edit_line(tree / "src/app.py", 3, "three")
    (tree / "new.txt").write_text("a\nb\n")
    (tree / ".env").write_text("SECRET=1\n")
    (tree / "README.md").unlink()
    assert await reader.changes() == {"src/app.py": "M", "new.txt": "A", "README.md": "D"}
    edit_line(tree / "src/app.py", 3, "line 3")  # back to the base's content
    os.utime(tree / "src/app.py", ns=(1, 1))
    assert await reader.changes() == {"new.txt": "A", "README.md": "D"}
    assert index_state(tree) == before  # the radar reads, never writes, the index
    (tree / "README.md").write_text("# demo\n")
    git(tree, "add", "-A")  # the agent stages and commits: still read against the base
    git(tree, "commit", "-qm", "work")
    assert await reader.changes() == {"new.txt": "A"}
    assert not (Path(git(tree, "rev-parse", "--path-format=absolute", "--git-dir"))
                / "index.lock").exists()
    (tree / "src/deep").mkdir()  # new files in a new folder, then in an old one
    (tree / "src/deep/one.py").write_text("1\n")
    assert "src/deep/one.py" in await reader.changes()
    (tree / "src/two.py").write_text("2\n")
    assert {"src/deep/one.py", "src/two.py"} <= (await reader.changes()).keys()
    edit_line(tree / "src/app.py", 7, "seven")
    await reader.changes()
    git(tree, "reset", "-q", "--hard", base)
    git(tree, "clean", "-qfd", "-e", ".env")
    after_reset = index_state(tree)
    await reader.changes()
    assert index_state(tree) == after_reset
    await reader.close()
    assert not (tmp_path / "private.index").exists()


async def test_lines_of_each_side(repo: Path, tmp_path: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    tree = worktree(repo, "one")
    edit_line(tree / "src/app.py", 3, "three")
    edit_line(tree / "src/app.py", 10, "ten")
    (tree / "new.txt").write_text("a\nb\nc\n")
    reader = WorktreeReader(tree, base, tmp_path / "private.index")
    changes = await reader.changes()
    mine = await reader.lines("src/app.py", changes["src/app.py"])
    assert mine.ranges == ((3, 3), (10, 10))
    assert (await reader.lines("new.txt", "A")).ranges == ((1, 3),)
    head = commit_all(tree, "committed")
    branch = BranchReader(repo, base, head)
    assert await branch.changes() == {"src/app.py": "M", "new.txt": "A"}
    theirs = await branch.lines("src/app.py", "M")
    assert theirs.ranges == mine.ranges
    assert theirs.base_spans == mine.base_spans


@pytest.mark.parametrize(("one", "two", "touch"), [
    ("@@ -3 +3 @@\n", "@@ -4 +4 @@\n", True),  # neighbours: git stops there
    ("@@ -3 +3 @@\n", "@@ -5 +5 @@\n", False),  # a line apart
    ("@@ -3,2 +3,2 @@\n", "@@ -4 +4,3 @@\n", True),  # intersecting
    ("@@ -0,0 +1,10 @@\n", "@@ -5 +15 @@\n", False),  # inserted above: apart in the base
    ("@@ -6,2 +5,0 @@\n", "@@ -8 +8 @@\n", True),  # a deletion next to an edit
])
def test_touching_is_decided_on_the_base_lines(one: str, two: str, touch: bool) -> None:
    assert touching(parse_hunks(one, "M"), parse_hunks(two, "M")) is touch


def test_deletions_binaries_and_two_new_files_always_touch() -> None:
    edit = parse_hunks("@@ -3 +3 @@\n", "M")
    assert touching(edit, Lines("D"))
    assert touching(edit, parse_hunks("Binary files a/x and b/x differ\n", "M"))
    assert touching(Lines("A", ((1, 2),)), Lines("A", ((1, 9),)))


def two_subtask_plan(repo: Path, ids: tuple[str, ...] = ("s1", "s2", "s3")) -> Path:
    return write_plan(repo, "001-demo", plan_of(phase(1, list(ids), parallel=True)))


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.any = trio.Event()

    def __call__(self, kind: str, message: str, *, subtask: str | None = None,
                 phase: str | None = None, **data: Any) -> None:
        self.events.append((kind, message, data))
        self.any.set()


async def test_a_sweep_announces_each_pair_and_path_once_and_records_it(
        repo: Path, tmp_path: Path) -> None:
    plan_path = two_subtask_plan(repo)
    base = git(repo, "rev-parse", "HEAD")
    heard = Heard()
    settings = Settings(radar="tell", radar_interval=0.05)
    radar = Radar(repo, plan_path.parent / "logs", settings,
                  Transitions(PlanStore(plan_path.parent)), heard)
    plan = load_plan(plan_path)
    sides = {s.id: worktree(repo, s.id) for s in plan.subtasks()}
    for subtask in plan.subtasks():
        await radar.running(subtask, sides[subtask.id], base)
    edit_line(sides["s1"] / "src/app.py", 3, "s1 was here")
    (sides["s3"] / "other.txt").write_text("disjoint\n")
    assert await radar.sweep("1") == []
    edit_line(sides["s2"] / "src/app.py", 4, "s2 was here")
    made = await radar.sweep("1")
    assert [p.data() for p in made] == [{
        "subtasks": ["s1", "s2"], "path": "src/app.py",
        "ranges": {"s1": [[3, 3]], "s2": [[4, 4]]}, "overlapping": True}]
    edit_line(sides["s2"] / "src/app.py", 9, "again")
    assert await radar.sweep("1") == []  # the same pair and path: said once
    assert [kind for kind, _, _ in heard.events] == ["overlap_predicted"]
    assert "s1 and s2 both change src/app.py" in heard.events[0][1]
    records = {s.id: s.record.radar for s in load_plan(plan_path).subtasks()}
    assert [n.to_json() for n in records["s1"]] == [
        {"with": "s2", "path": "src/app.py", "overlapping": True}]
    assert [n.with_ for n in records["s2"]] == ["s1"]
    assert records["s3"] == []
    told = radar.file_for("s2")
    assert told is not None
    assert "subtask s1 is also changing src/app.py" in told.read_text()
    assert radar.file_for("s3") is not None
    assert radar.file_for("s3").read_text() == ""
    await radar.close()


async def test_a_committed_sibling_counts_and_a_finished_worktree_is_not_read_again(
        repo: Path) -> None:
    plan_path = two_subtask_plan(repo, ("s1", "s2"))
    base = git(repo, "rev-parse", "HEAD")
    heard = Heard()
    radar = Radar(repo, plan_path.parent / "logs", Settings(radar_interval=0.05), None, heard)
    plan = load_plan(plan_path)
    s1, s2 = plan.subtasks()
    one, two = worktree(repo, "s1"), worktree(repo, "s2")
    await radar.running(s1, one, base)
    await radar.running(s2, two, base)
    (one / "shared.txt").write_text("from s1\n")
    await radar.sweep("1")
    head = commit_all(one, "s1 work")
    await radar.finished("s1", base=base, head=head)
    git(one, "reset", "-q", "--hard", base)  # parked and reused: not s1's any more
    (one / "unrelated.txt").write_text("someone else\n")
    (two / "shared.txt").write_text("from s2\n")
    (two / "unrelated.txt").write_text("s2 too\n")
    made = await radar.sweep("1")
    assert [(p.subtasks, p.path, p.overlapping) for p in made] == [
        (("s1", "s2"), "shared.txt", True)]
    assert radar.file_for("s1") is None  # show: nobody is told
    await radar.close()


async def test_agents_starting_together_share_one_fresh_private_folder(
        repo: Path, tmp_path: Path) -> None:
    plan_path = two_subtask_plan(repo, ("s1", "s2"))
    base = git(repo, "rev-parse", "HEAD")
    cache = tmp_path / "cache"
    (cache / "stale").mkdir(parents=True)  # a killed build's: removing it takes a while
    for n in range(2000):
        (cache / "stale" / f"{n}.index").write_bytes(b"")
    radar = Radar(repo, plan_path.parent / "logs", Settings(radar_interval=0.05), None, Heard(),
                  cache=cache)
    s1, s2 = load_plan(plan_path).subtasks()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(radar.running, s1, worktree(repo, "s1"), base)
        nursery.start_soon(radar.running, s2, worktree(repo, "s2"), base)
    assert sorted(radar.sides) == ["s1", "s2"]
    assert not (cache / "stale").exists()
    await radar.close()


async def test_watching_sweeps_while_the_wave_runs(repo: Path) -> None:
    plan_path = two_subtask_plan(repo, ("s1", "s2"))
    base = git(repo, "rev-parse", "HEAD")
    heard = Heard()
    radar = Radar(repo, plan_path.parent / "logs", Settings(radar_interval=0.05), None, heard)
    plan = load_plan(plan_path)
    phase_: Phase = plan.phases[0]
    async with radar.watching(phase_, committed=[]):
        for subtask in phase_.subtasks:
            tree = worktree(repo, subtask.id)
            await radar.running(subtask, tree, base)
            edit_line(tree / "src/app.py", 1, subtask.id)
        with trio.fail_after(20):
            await heard.any.wait()
    assert heard.events[0][2]["subtasks"] == ["s1", "s2"]
    await radar.close()


def test_an_off_radar_does_nothing() -> None:
    radar = Radar.off()
    assert not radar.enabled
    assert radar.file_for("s1") is None


def test_the_report_says_what_became_of_each_prediction(repo: Path) -> None:
    plan_path = write_plan(repo, "001-demo", plan_of(phase(1, ["a", "b", "c", "d"],
                                                           parallel=True)))

    def mark(plan: Any) -> None:
        records = {
            "a": {"merge": "merged", "overlaps": ["x.py"], "radar": [
                {"with": "b", "path": "x.py", "overlapping": False},
                {"with": "c", "path": "y.py", "overlapping": True},
                {"with": "d", "path": "z.py", "overlapping": True}]},
            "b": {"merge": "merged", "overlaps": ["x.py"],
                  "radar": [{"with": "a", "path": "x.py", "overlapping": False}]},
            "c": {"merge": "conflict", "conflict_paths": ["y.py"],
                  "radar": [{"with": "a", "path": "y.py", "overlapping": True}]},
            "d": {"merge": "merged", "radar": [{"with": "a", "path": "z.py"}]},
        }
        for subtask in plan.subtasks():
            subtask.write_meta(**records[subtask.id])
    PlanStore(plan_path.parent).update(mark)
    assert radar_outcomes(load_plan(plan_path)) == [
        {"subtasks": ["a", "b"], "path": "x.py", "overlapping": False, "outcome": "overlap"},
        {"subtasks": ["a", "c"], "path": "y.py", "overlapping": True, "outcome": "conflict"},
        {"subtasks": ["a", "d"], "path": "z.py", "overlapping": True,
         "outcome": "merged clean"}]


@dataclass
class NeighbourAgent:
    """Edits line `lines[id]` of src/app.py (sub "b" only once "a" has edited), then waits
    (at most 20 s) until the plan records what the radar saw of it."""

    plan_path: Path
    lines: dict[str, int]
    name: str = "neighbours"
    edited: trio.Event = field(default_factory=trio.Event)

    async def run(self, task: AgentTask) -> AgentResult:
        if task.subtask_id == "b":
            await self.edited.wait()
            await trio.sleep(0.3)  # the radar has looked at "a" alone by now
        if task.subtask_id in self.lines:
            edit_line(task.worktree / "src/app.py", self.lines[task.subtask_id], task.subtask_id)
        else:
            (task.worktree / f"{task.subtask_id}.txt").write_text("apart\n")
        if task.subtask_id == "a":
            self.edited.set()
        for _ in range(400):
            if task.subtask_id not in self.lines or self._heard(task.subtask_id):
                break
            await trio.sleep(0.05)
        return AgentResult(ok=True)

    def _heard(self, subtask_id: str) -> bool:
        return bool(load_plan(self.plan_path).subtask(subtask_id).record.radar)


def test_a_build_announces_neighbouring_edits_before_the_agents_finish(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_path = write_plan(repo, "001-demo", plan_of(phase(1, ["a", "b", "c"], parallel=True)))
    agent = NeighbourAgent(plan_path, {"a": 5, "b": 6})
    assert build_in_process(repo, "001-demo", agent, radar_interval=0.1, json=True) == 1
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [(e["kind"], e["subtask"]) for e in events]
    predicted = [e["data"] for e in events if e["kind"] == "overlap_predicted"]
    assert predicted == [{"subtasks": ["a", "b"], "path": "src/app.py",
                          "ranges": {"a": [[5, 5]], "b": [[6, 6]]}, "overlapping": True}]
    announced = kinds.index(("overlap_predicted", None))
    assert announced < kinds.index(("subtask_committed", "a"))
    assert announced < kinds.index(("subtask_committed", "b"))
    assert [e["outcome"] for e in radar_outcomes(load_plan(plan_path))] == ["conflict"]


def test_a_placement_it_cannot_read_turns_it_off_saying_so_once(tmp_path: Path) -> None:
    heard = Heard()
    settings = Settings(radar="tell", runner="ray")
    radar = Radar.for_build(repo=tmp_path, logs=tmp_path, cache=tmp_path / "cache",
                            settings=settings, records=None, emit=heard, reads_workspaces=False)
    assert not radar.enabled
    assert radar.file_for("s1") is None
    assert [(kind, message) for kind, message, _ in heard.events] == [
        ("radar_off", "radar: off with --runner ray (it reads running worktrees on this "
                      "machine, and these run elsewhere)")]
    quiet = Heard()
    assert not Radar.for_build(repo=tmp_path, logs=tmp_path, cache=tmp_path,
                               settings=Settings(radar="off", runner="ray"), records=None,
                               emit=quiet, reads_workspaces=False).enabled
    assert quiet.events == []
