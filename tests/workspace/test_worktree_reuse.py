"""A worktree parked by one subtask and reused by the next must look exactly like a fresh one
for tracked and untracked files, while ignored files (build output, `node_modules/`) stay warm;
`reuse_worktrees = false` gives every subtask a fresh checkout.

The first agent leaves behind everything that could leak into the next subtask: an ignored
build cache, notes in `.orchestrate/` (never committed), an edited copy of `.env`, a
`.env.local` turned into a link to a file outside the worktree (which copying the user's
`.env.local` must not write through), and index flags that hide files from `git add`
(`--assume-unchanged`, and `--skip-worktree` over an uncommitted edit). The second agent, in a
phase that runs after the first, writes down what it finds and edits the file the first one
had flagged.

Parking is what full-checkout worktrees do (`workspace = worktree`, forced here): copy-on-write
worktrees are never parked, so they keep nothing warm (tests/workspace/test_overlay.py).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from tests.buildkit import INTEGRATION, SPEC, statuses
from tests.conftest import commit_all, git, phase, plan_of, run_cli, write_plan

pytestmark = pytest.mark.slow  # real builds reusing worktrees
POOLED = {"ORCHESTRATE_WORKSPACE": "worktree"}

AGENT = """\
import json, os, pathlib, shutil, subprocess
def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout
if os.environ["ORCHESTRATE_SUBTASK_ID"] == "first":
    pathlib.Path("first.txt").write_text("first\\n")
    pathlib.Path("build").mkdir()
    pathlib.Path("build/cache.bin").write_text("expensive\\n")
    pathlib.Path(".orchestrate").mkdir()
    pathlib.Path(".orchestrate/notes.md").write_text("never committed\\n")
    pathlib.Path(".env").write_text("SECRET=changed by the first agent\\n")
    pathlib.Path(".env.local").unlink(missing_ok=True)
    os.symlink(os.environ["VICTIM"], ".env.local")
    sh("git", "update-index", "--assume-unchanged", "notes.txt")
    sh("git", "update-index", "--skip-worktree", "README.md")
    pathlib.Path("README.md").write_text("hidden edit of the first agent\\n")
    if os.environ.get("LINK_OUT"):
        shutil.rmtree("conf")
        os.symlink(os.environ["LINK_OUT"], "conf")
else:
    seen = {
        "README.md": pathlib.Path("README.md").read_text(),
        ".env": pathlib.Path(".env").read_text(),
        ".env.local": pathlib.Path(".env.local").read_text(),
        "link": pathlib.Path(".env.local").is_symlink(),
        "cache": pathlib.Path("build/cache.bin").exists(),
        "notes": pathlib.Path(".orchestrate").exists(),
        "flags": sorted(line for line in sh("git", "ls-files", "-v").splitlines()
                        if line[0] != "H"),
        "status": sh("git", "status", "--porcelain", "--untracked-files=all"),
    }
    pathlib.Path("seen.json").write_text(json.dumps(seen))
    with open("notes.txt", "a") as notes:
        notes.write("second was here\\n")
"""


@pytest.fixture
def project(repo: Path, tmp_path: Path) -> Path:
    (repo / ".gitignore").write_text("build/\n.env\n.env.local\n")
    (repo / "notes.txt").write_text("notes\n")
    commit_all(repo, "ignore build output and .env; notes")
    (repo / ".env").write_text("SECRET=from the user's checkout\n")
    (repo / ".env.local").write_text("LOCAL=the user's\n")
    (tmp_path / "victim.txt").write_text("outside every worktree\n")
    plan = plan_of(phase(1, ["first"]), phase(2, ["second"]))
    write_plan(repo, SPEC, plan)
    return repo


def agent_script(folder: Path, source: str) -> str:
    """Write `source` as the agent's script; return the --agent-command that runs it."""
    (folder / "agent.py").write_text(source)
    return shlex.join([sys.executable, str(folder / "agent.py")])


@pytest.mark.parametrize("reuse", [True, False])
def test_a_reused_worktree_is_a_fresh_one_with_warm_ignored_files(
        project: Path, tmp_path: Path, reuse: bool) -> None:
    if not reuse:
        (project / "orchestrate.toml").write_text("reuse_worktrees = false\n")
    agent = agent_script(tmp_path, AGENT)
    victim = tmp_path / "victim.txt"
    run_cli(project, "build", SPEC, "--agent-command", agent, env={"VICTIM": str(victim), **POOLED},
            check=0)
    assert statuses(project) == {"first": "completed", "second": "completed"}

    seen = json.loads(git(project, "show", f"{INTEGRATION}:seen.json"))
    assert seen == {"README.md": "# demo\n", ".env": "SECRET=from the user's checkout\n",
                    ".env.local": "LOCAL=the user's\n", "link": False, "cache": reuse,
                    "notes": False, "flags": [], "status": ""}
    assert victim.read_text() == "outside every worktree\n"
    assert git(project, "show", f"{INTEGRATION}:notes.txt") == "notes\nsecond was here"
    assert git(project, "show", f"{INTEGRATION}:README.md") == "# demo"


def test_copying_never_writes_or_deletes_through_a_link_out_of_the_worktree(
        project: Path, tmp_path: Path) -> None:
    (project / ".gitignore").write_text("build/\n.env\n.env.local\nconf\n")
    git(project, "commit", "-qm", "ignore conf", ".gitignore")  # not the spec folder
    (project / "conf").mkdir()
    (project / "conf" / ".env").write_text("CONF=the user's\n")
    (project / "orchestrate.toml").write_text('copy = [".env", "conf/.env"]\n')
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".env").write_text("not the worktree's\n")
    agent = agent_script(tmp_path, AGENT)
    run_cli(project, "build", SPEC, "--agent-command", agent,
            env={"VICTIM": str(tmp_path / "victim.txt"), "LINK_OUT": str(outside), **POOLED},
            check=0)
    assert (outside / ".env").read_text() == "not the worktree's\n"


SUBMODULE_AGENT = """\
import os, subprocess
def git(*args):
    subprocess.run(["git", "-c", "protocol.file.allow=always", *args], check=True)
if os.environ["ORCHESTRATE_SUBTASK_ID"] == "build-it":  # checks the library out to build
    git("submodule", "update", "--init", "--quiet")
    open("built.txt", "w").write("built\\n")
else:  # bumps the library without checking it out
    git("update-index", "--cacheinfo", "160000," + os.environ["NEWER"] + ",lib")
"""


def test_a_submodule_checked_out_by_one_agent_does_not_undo_the_next_ones_bump(
        repo: Path, tmp_path: Path) -> None:
    """In a reused worktree the library would still be checked out at the older commit, and
    `git add --all` would record that over the bump. Git refuses to move a worktree with
    checked-out submodules, so such a worktree is removed instead of parked."""
    library = tmp_path / "library"
    library.mkdir()
    git(library, "init", "-q", "-b", "main")
    (library / "lib.txt").write_text("1\n")
    older = commit_all(library, "older")
    (library / "lib.txt").write_text("2\n")
    newer = commit_all(library, "newer")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "lib")
    git(repo, "-C", "lib", "checkout", "-q", older)
    git(repo, "commit", "-qam", "add the library at its older commit")
    write_plan(repo, SPEC, plan_of(phase(1, ["build-it"]), phase(2, ["bump"])))
    agent = agent_script(tmp_path, SUBMODULE_AGENT)
    run_cli(repo, "build", SPEC, "--agent-command", agent, env={"NEWER": newer, **POOLED},
            check=0)
    assert git(repo, "rev-parse", f"{INTEGRATION}:lib") == newer


SPARSE_AGENT = """\
import os, pathlib, subprocess
if os.environ["ORCHESTRATE_SUBTASK_ID"] == "narrow":  # works on src/ only
    subprocess.run(["git", "sparse-checkout", "set", "src"], check=True)
    pathlib.Path("src/narrow.py").write_text("narrow = True\\n")
else:
    pathlib.Path("seen.txt").write_text(str(pathlib.Path("docs/guide.md").exists()))
"""


def test_a_sparse_checkout_one_agent_set_up_is_undone_and_not_handed_on(
        repo: Path, tmp_path: Path) -> None:
    """`git sparse-checkout` in a worktree turns on per-worktree settings in the shared
    .git/config, which agents have no business changing: the change is undone, the attempt
    fails saying so, and the next subtask's worktree sees every file."""
    (repo / "docs").mkdir()
    (repo / "docs" / "guide.md").write_text("guide\n")
    commit_all(repo, "docs")
    config_before = (repo / ".git" / "config").read_bytes()
    write_plan(repo, SPEC, plan_of(phase(1, ["narrow"]), phase(2, ["wide"])))
    agent = agent_script(tmp_path, SPARSE_AGENT)
    done = run_cli(repo, "build", SPEC, "--agent-command", agent, "--retries", "0", env=POOLED,
                   check=1)
    assert "changed the shared repository: config changed" in done.stdout
    assert (repo / ".git" / "config").read_bytes() == config_before
    plan = json.loads((repo / ".orchestrate" / "specs" / SPEC
                       / "implementation_plan.json").read_text())
    statuses = {s["id"]: s["status"] for p in plan["phases"] for s in p["subtasks"]}
    assert statuses == {"narrow": "failed", "wide": "blocked"}
    # the next subtask, run on its own, gets a worktree with every file
    write_plan(repo, SPEC, plan_of(phase(1, ["wide"])))
    run_cli(repo, "build", SPEC, "--agent-command", agent, env=POOLED, check=0)
    assert git(repo, "show", f"{INTEGRATION}:seen.txt") == "True"
