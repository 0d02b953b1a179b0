#!/usr/bin/env python3
"""An attacker agent for the trust tests: it does its subtask's work, and, on the first attempt
of a subtask whose id names an attack, plants that attack where orchestrate's own git (or the
build) would meet it. Every planted program only touches the spy file `$ATTACK_SPY`, so a test
proves it never ran by that file staying absent.

The attacks (words in the subtask id): `hooks` (shared hooks/, core.hooksPath and
core.fsmonitor in the user's global config), `filters` (a clean/smudge filter and a textconv
named for every path), `mergers` (`merge=union` in info/attributes, a merge driver named for
every path in the user's global attributes), `exclude` (`*.py` in the shared info/exclude),
`ignore` (`*.py` in the user's own global excludes file), `config` (a line in the shared
.git/config), `symlink` / `gitdir` (the worktree's .git made
a link to, or a `gitdir:` line naming, the user's own .git), `inject` (a commit on top of
the integration branch), `unbranch` (the integration branch deleted), `orphan` (its branch
rewritten to unrelated history), `fakedone` (every other subtask marked completed in the
plan), `edit-<line>` (writes `<line>`
as line 3 of src/app.py, for conflicts).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

SPY = os.environ.get("ATTACK_SPY", "/nonexistent/spy")
PROGRAM = f"echo \"$(cat /proc/$PPID/cmdline | tr '\\0' ' ')\" >> '{SPY}'; cat"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def common_dir() -> Path:
    return Path(git("rev-parse", "--path-format=absolute", "--git-common-dir"))


def global_config(*args: str) -> None:
    git("config", "--global", *args)


def spy_script(where: Path) -> Path:
    where.write_text(f"#!/bin/sh\ntouch '{SPY}'\n")
    where.chmod(0o755)
    return where


def plant_hooks() -> None:
    hooks = common_dir() / "hooks"
    hooks.mkdir(exist_ok=True)
    for name in ("pre-commit", "post-commit", "post-checkout", "reference-transaction",
                 "post-index-change", "prepare-commit-msg", "commit-msg", "post-merge",
                 "pre-auto-gc", "post-rewrite"):
        spy_script(hooks / name)
    elsewhere = Path(os.environ["ATTACK_DIR"]) / "hooks"
    elsewhere.mkdir(exist_ok=True)
    for name in ("post-checkout", "reference-transaction", "post-index-change", "pre-commit",
                 "pre-push"):
        spy_script(elsewhere / name)
    global_config("core.hooksPath", str(elsewhere))
    global_config("core.fsmonitor", str(spy_script(Path(os.environ["ATTACK_DIR"]) / "fsmon")))


def attributes_file() -> Path:
    path = Path(os.environ["HOME"]) / ".config" / "git" / "attributes"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plant_filters() -> None:
    global_config("filter.evil.clean", PROGRAM)
    global_config("filter.evil.smudge", PROGRAM)
    global_config("filter.evil.required", "true")
    global_config("diff.evil.textconv", PROGRAM)
    with attributes_file().open("a") as out:
        out.write("* filter=evil diff=evil\n")
    Path(".gitattributes").write_text("*.txt filter=upper\n*.py filter=evil diff=evil\n")


def plant_mergers() -> None:
    global_config("merge.evil.driver", f"touch '{SPY}'; cp %B %A")
    with attributes_file().open("a") as out:
        out.write("src/* merge=evil\n")
    info = common_dir() / "info"
    info.mkdir(exist_ok=True)
    with (info / "attributes").open("a") as out:
        out.write("* merge=union\n")


def plant_exclude() -> None:
    info = common_dir() / "info"
    info.mkdir(exist_ok=True)
    with (info / "exclude").open("a") as out:
        out.write("*.py\n")


def plant_ignore() -> None:
    ignore = Path(os.environ["HOME"]) / ".config" / "git" / "ignore"
    ignore.parent.mkdir(parents=True, exist_ok=True)
    with ignore.open("a") as out:
        out.write("*.py\n")


def plant_config() -> None:
    git("config", "--file", str(common_dir() / "config"), "attacker.planted", "yes")


def dotgit_symlink() -> None:
    """The worktree's .git becomes a link to the user's own .git folder."""
    common = common_dir()
    Path(".git").unlink()
    Path(".git").symlink_to(common)


def dotgit_gitdir() -> None:
    """The worktree's .git file points at the user's own .git folder."""
    common = common_dir()
    Path(".git").write_text(f"gitdir: {common}\n")


def integration_ref() -> str:
    return f"refs/heads/orchestrate/{os.environ['ORCHESTRATE_SPEC']}/integration"


def inject_commit() -> None:
    """A commit of the agent's own on top of the integration branch."""
    tip = git("rev-parse", integration_ref())
    tree = git("rev-parse", f"{tip}^{{tree}}")
    commit = git("commit-tree", tree, "-p", tip, "-m", "injected by an agent")
    git("update-ref", integration_ref(), commit)


def orphan_branch() -> None:
    """The subtask branch rewritten to a history of its own (no common commit)."""
    git("add", "-A")
    tree = git("write-tree")
    git("reset", "--hard", "-q", git("commit-tree", tree, "-m", "a history of its own"))


def fake_done() -> None:
    """Every other subtask of the plan marked completed, as a naive agent might."""
    plan_path = Path(os.environ["ORCHESTRATE_PROMPT_FILE"]).parent.parent / \
        "implementation_plan.json"
    plan = json.loads(plan_path.read_text())
    for phase in plan["phases"]:
        for subtask in phase["subtasks"]:
            if subtask["id"] != os.environ["ORCHESTRATE_SUBTASK_ID"]:
                subtask["status"] = "completed"
    plan_path.write_text(json.dumps(plan, indent=2))


def delete_integration() -> None:
    git("update-ref", "-d", integration_ref())


ATTACKS = {"fakedone": fake_done, "orphan": orphan_branch, "inject": inject_commit,
           "unbranch": delete_integration, "symlink": dotgit_symlink, "gitdir": dotgit_gitdir,
           "hooks": plant_hooks, "filters": plant_filters, "mergers": plant_mergers,
           "exclude": plant_exclude, "ignore": plant_ignore, "config": plant_config}


def first_attempt(subtask: str) -> bool:
    marker = Path(os.environ["ATTACK_DIR"]) / f"attempted-{subtask}"
    seen = marker.exists()
    marker.write_text("yes\n")
    return not seen


def edit_line(subtask: str) -> None:
    word = subtask.partition("edit-")[2].split("-")[0]
    app = Path("src/app.py")
    lines = app.read_text().splitlines(keepends=True)
    lines[2] = f"{word}\n"
    app.write_text("".join(lines))


def main() -> int:
    subtask = os.environ["ORCHESTRATE_SUBTASK_ID"]
    Path(f"{subtask}.txt").write_text(f"good work of {subtask}\n")
    Path(f"{subtask}.py").write_text(f"print('{subtask}')\n")
    if "edit-" in subtask:
        edit_line(subtask)
    if first_attempt(subtask):
        for word, attack in ATTACKS.items():
            if word in subtask.split("-"):
                attack()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
