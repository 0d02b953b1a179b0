"""The soak test's parts: random scenarios (hypothesis strategies), the prepared result of each
subtask that the shell agent copies into its worktree, and the plain-git oracle.

A scenario is one parallel phase over its own folder `s<k>/` of a tiny repository: a few text
files and a binary one, and 1-5 subtasks whose edits collide on purpose (the same lines,
separate hunks, the same new file, modify/delete, renames, binary changes). Several scenarios
share one build as independent phases (`depends_on: []`): their folders are disjoint, and every
line names its scenario, so git never pairs one scenario's files with another's as a rename,
and each scenario's outcome does not depend on how the phases interleave.

The oracle replays each scenario with plain git in a scratch clone: `git merge --no-ff` of the
same branches in plan order onto the phase's recorded base, `git merge --abort` on a conflict;
overlaps from `git diff -M -U0` of each branch against that base.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

Files = dict[str, bytes]  # path inside the scenario folder -> content
NEW_NAMES = ("new0.txt", "new1.txt", "sub/new2.txt")
RENAME_NAMES = ("moved0.txt", "moved1.txt", "sub/moved2.txt")
BINARY = "blob.bin"
AGENT = ('d="${ORCHESTRATE_SUBTASK_ID%t*}"; rm -rf "$d" && '
         'cp -R "$SOAK_PREP/$ORCHESTRATE_SUBTASK_ID" "$d"')
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", re.MULTILINE)


@dataclass
class Scenario:
    folder: str  # s<k>
    base: Files
    subtasks: list[tuple[str, Files]]  # (id, the folder's content on that branch), plan order
    ops: list[list[str]] = field(default_factory=list)  # what each subtask did, for messages


@dataclass
class Build:
    scenarios: list[Scenario]
    max_parallel: int
    overlap: str

    def describe(self) -> str:
        lines = [f"--max-parallel {self.max_parallel} --overlap {self.overlap}"]
        for s in self.scenarios:
            lines += [f"  {s.folder}: " + "; ".join(
                f"{sid}: {', '.join(ops)}" for (sid, _), ops in zip(s.subtasks, s.ops,
                                                                   strict=True))]
        return "\n".join(lines)


def _text(folder: str, name: str, count: int) -> bytes:
    return "".join(f"{folder} {name} line {i}\n" for i in range(1, count + 1)).encode()


@st.composite
def scenarios(draw: st.DrawFn, folder: str) -> Scenario:
    # hypothesis favours small numbers; sampled_from keeps most scenarios busy
    names = [f"f{n}.txt" for n in range(draw(st.sampled_from([2, 1, 3])))]
    base: Files = {name: _text(folder, name, draw(st.sampled_from(range(4, 13))))
                   for name in names}
    if draw(st.booleans()):
        base[BINARY] = b"\0" + draw(st.binary(min_size=1, max_size=24)) + folder.encode()
    count = draw(st.sampled_from([3, 2, 4, 5, 1]))
    scenario = Scenario(folder, base, [])
    for n in range(count):
        sid = f"{folder}t{n}"
        files, ops = dict(base), []
        for _ in range(draw(st.sampled_from([2, 1, 3]))):
            ops.append(_edit(draw, folder, sid, files))
        if files == base:  # make sure the subtask changes something
            ops.append(_append(folder, sid, files, next(iter(sorted(files)))))
        scenario.subtasks.append((sid, files))
        scenario.ops.append(ops)
    return scenario


def _edit(draw: st.DrawFn, folder: str, sid: str, files: Files) -> str:
    texts = sorted(p for p in files if p.endswith(".txt"))
    kind = draw(st.sampled_from(["lines", "lines", "insert", "append", "add", "add-same",
                                 "delete", "rename", "binary"]))
    if kind in ("lines", "insert", "append", "delete", "rename") and not texts:
        kind = "add"
    if kind == "binary":
        files[BINARY] = b"\0" + draw(st.binary(min_size=1, max_size=24)) + sid.encode()
        return "binary"
    if kind in ("add", "add-same"):
        name = draw(st.sampled_from(NEW_NAMES))
        who = "shared" if kind == "add-same" else sid
        files[name] = f"{folder} added {name} by {who}\n".encode() * draw(st.integers(1, 3))
        return f"{kind} {name}"
    path = draw(st.sampled_from(texts))
    if kind == "delete":
        del files[path]
        return f"delete {path}"
    if kind == "rename":
        target = draw(st.sampled_from(RENAME_NAMES))
        if target in files:
            return "no-op"
        files[target] = files.pop(path)
        return f"rename {path} {target}"
    if kind == "append":
        return _append(folder, sid, files, path)
    lines = files[path].decode().splitlines(keepends=True)
    start = draw(st.sampled_from(range(len(lines) + 1)))
    if kind == "insert":
        new = [f"{folder} {sid} inserted {i}\n" for i in range(draw(st.integers(1, 2)))]
        files[path] = "".join(lines[:start] + new + lines[start:]).encode()
        return f"insert {path}@{start}"
    end = min(len(lines), start + draw(st.integers(1, 3)))
    new = [f"{folder} {sid} edit {i}\n" for i in range(draw(st.integers(0, 2)))]
    files[path] = "".join(lines[:start] + new + lines[end:]).encode()
    return f"lines {path}[{start}:{end}]->{len(new)}"


def _append(folder: str, sid: str, files: Files, path: str) -> str:
    files[path] = files.get(path, b"") + f"{folder} {sid} appended\n".encode()
    return f"append {path}"


@st.composite
def builds(draw: st.DrawFn, phases: int) -> Build:
    found = [draw(scenarios(f"s{k}")) for k in range(phases)]
    return Build(found, draw(st.integers(1, 4)), draw(st.sampled_from(["merge", "block"])))


def plan_for(build: Build) -> dict[str, Any]:
    return {"phases": [
        {"phase": k + 1, "name": s.folder, "parallel_safe": True, "depends_on": [],
         "subtasks": [{"id": sid, "description": f"soak {sid}", "status": "pending"}
                      for sid, _ in s.subtasks]}
        for k, s in enumerate(build.scenarios)]}


def write_files(root: Path, files: Files) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def prepare(build: Build, prep: Path) -> None:
    """Each subtask's folder as its agent leaves it, for the agent command to copy in."""
    for scenario in build.scenarios:
        for sid, files in scenario.subtasks:
            (prep / sid).mkdir(parents=True)
            write_files(prep / sid, files)


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)
    assert not check or done.returncode == 0, f"git {' '.join(args)}:\n{done.stderr}"
    return done


def tree(cwd: Path, rev: str, folder: str) -> list[str]:
    """`mode type oid path` of every file under `folder` in `rev`."""
    return git(cwd, "ls-tree", "-r", rev, "--", f"{folder}/").stdout.splitlines()


@dataclass
class Expected:
    statuses: dict[str, str]
    conflicts: dict[str, list[str]]  # subtask -> conflicting paths
    tree: list[str]
    overlaps: dict[str, dict[str, Any]]  # path -> {"subtasks": [...], "hunks": {id: [...]}}


def _changes(clone: Path, base: str, head: str) -> dict[str, list[tuple[int, ...]]]:
    """Every path the branch changed (both of a rename) -> that file's hunks."""
    raw = git(clone, "diff", "--raw", "-z", "-M", base, head).stdout.split("\0")
    found: dict[str, list[tuple[int, ...]]] = {}
    i = 0
    while i < len(raw) and raw[i].startswith(":"):
        renamed = raw[i].split(" ")[-1][:1] in "RC"
        paths = raw[i + 1:i + 3] if renamed else raw[i + 1:i + 2]
        i += 3 if renamed else 2
        patch = git(clone, "diff", "-U0", "-M", "--inter-hunk-context=0", base, head,
                    "--", *paths).stdout
        hunks = [(int(a), int(b) if b else 1, int(c), int(d) if d else 1)
                 for a, b, c, d in HUNK.findall(patch)]
        for path in paths:
            found[path] = hunks
    return found


def oracle(clone: Path, scenario: Scenario, base: str, branches: dict[str, str],
           overlap: str) -> Expected:
    """What plain git says about `scenario` (branch tips fetched into `clone`)."""
    changes = {sid: _changes(clone, base, branches[sid]) for sid, _ in scenario.subtasks}
    touched: dict[str, list[str]] = {}
    for sid, _ in scenario.subtasks:
        for path in changes[sid]:
            touched.setdefault(path, []).append(sid)
    overlaps = {path: {"subtasks": ids, "hunks": {s: changes[s][path] for s in ids}}
                for path, ids in touched.items() if len(ids) > 1}
    git(clone, "checkout", "-q", "--detach", base)
    statuses, conflicts, integrated = {}, {}, []
    for sid, _ in scenario.subtasks:
        head = branches[sid]
        blocked = sorted(p for p, info in overlaps.items() if sid in info["subtasks"]
                         and any(o in integrated for o in info["subtasks"][
                             :info["subtasks"].index(sid)]))
        if head == base:
            statuses[sid] = "completed"
            integrated.append(sid)
        elif overlap == "block" and blocked:
            statuses[sid], conflicts[sid] = "conflict", blocked
        elif git(clone, "merge", "--no-ff", "-q", "-m", f"merge {sid}", head,
                 check=False).returncode == 0:
            statuses[sid] = "completed"
            integrated.append(sid)
        else:
            unmerged = git(clone, "ls-files", "-u", "-z").stdout.split("\0")
            conflicts[sid] = sorted({e.split("\t", 1)[1] for e in unmerged if e})
            statuses[sid] = "conflict"
            git(clone, "merge", "--abort")
    return Expected(statuses, conflicts, tree(clone, "HEAD", scenario.folder), overlaps)


def observed(repo: Path, spec_folder: Path, events: list[dict[str, Any]],
             scenario: Scenario, integration: str) -> Expected:
    """What orchestrate says about `scenario`: the plan, the build's events, the report."""
    plan = json.loads((spec_folder / "implementation_plan.json").read_text())
    records = {s["id"]: s for p in plan["phases"] for s in p["subtasks"]}
    ids = [sid for sid, _ in scenario.subtasks]
    conflicts = {e["subtask"]: sorted(e["data"]["paths"]) for e in events
                 if e["kind"] == "subtask_conflict" and e["subtask"] in ids}
    report = json.loads((spec_folder / "conflict_report.json").read_text())
    overlaps = {}
    for finding in report["conflicts"]:
        if finding["kind"] == "overlap" and finding["subtasks"][0] in ids:
            hunks: dict[str, list[tuple[int, ...]]] = {s: [] for s in finding["subtasks"]}
            for h in finding["hunks"]:
                hunks[h["subtask"]].append((h["old_start"], h["old_lines"], h["new_start"],
                                            h["new_lines"]))
            overlaps[finding["path"]] = {"subtasks": finding["subtasks"], "hunks": hunks}
    return Expected({sid: records[sid]["status"] for sid in ids}, conflicts,
                    tree(repo, integration, scenario.folder), overlaps)

