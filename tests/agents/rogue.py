#!/usr/bin/env python3
"""A misbehaving agent for the fault tests: the subtask id says what it does.

The id's leading words pick the behaviour (`commits-itself`, `floods`, ...); any other id, or
any id when ROGUE_TAME is set, is a well-behaved agent that writes `<id>.txt`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HOSTILE_NAME = "dir with space/naïve ü|`x` ```.txt"
# A file name that tries to break out of a Markdown table, a code span, a code fence, a
# heading, and a GitHub workflow command's properties and data.
HOSTILE_PATH = "notes|`x` ```,y: 100%\n## Injected heading\n::error::pwned\r|.txt"


def git(*args: str, check: bool = True) -> None:
    subprocess.run(["git", *args], check=check, capture_output=True)


def naive_commit() -> None:
    """What a naive agent does after breaking its worktree: try to commit anyway."""
    Path("after.txt").write_text("written after the damage\n")
    git("add", "-A", check=False)
    git("commit", "-q", "-m", "naive commit", check=False)


def git_path(name: str) -> Path:
    done = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-path", name],
                          check=True, capture_output=True, text=True)
    return Path(done.stdout.strip())


def plan_path() -> Path:
    """The plan, found from the prompt file (`<spec>/logs/<id>.prompt.md`)."""
    return Path(os.environ["ORCHESTRATE_PROMPT_FILE"]).parent.parent / "implementation_plan.json"


def good() -> int:
    subtask = os.environ["ORCHESTRATE_SUBTASK_ID"]
    Path(f"{subtask}.txt").write_text(f"{subtask}\n")
    return 0


def flaky() -> int:
    if os.environ["ORCHESTRATE_ATTEMPT"] == "1":
        print("flaky: failing the first attempt")
        return 3
    return good()


def commits_itself() -> int:
    Path("own.txt").write_text("committed by the agent\n")
    git("add", "own.txt")
    git("commit", "-q", "-m", "agent: its own commit")
    Path("left.txt").write_text("left for the orchestrator\n")
    return 0


def switches_branch() -> int:
    git("checkout", "-q", "-b", "elsewhere")
    return good()


def detaches_head() -> int:
    git("checkout", "-q", "--detach")
    return good()


def deletes_dotgit() -> int:
    good()
    Path(".git").unlink()
    naive_commit()
    return 0


def corrupts_dotgit() -> int:
    good()
    Path(".git").write_text("this is not a gitdir line\n")
    naive_commit()
    return 0


def deletes_worktree() -> int:
    good()
    shutil.rmtree(Path.cwd())
    return 0


def leaves_index_lock() -> int:
    good()
    git_path("index.lock").write_text("")
    return 0


def writes_private() -> int:
    for folder in (".orchestrate", ".auto-claude"):
        Path(folder, "specs").mkdir(parents=True, exist_ok=True)
        Path(folder, "specs", "agent-notes.txt").write_text("private\n")
    return good()


def nested_repo() -> int:
    lib = Path("vendor/lib")
    lib.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(lib)], check=True)
    (lib / "lib.txt").write_text("lib\n")
    subprocess.run(["git", "-C", str(lib), "add", "."], check=True)
    subprocess.run(["git", "-C", str(lib), "commit", "-q", "-m", "lib"], check=True)
    return good()


def odd_files() -> int:
    os.symlink("README.md", "readme-link")
    Path("src/app.py").chmod(0o755)
    Path("blob.bin").write_bytes(bytes(range(256)) * 4)
    Path(HOSTILE_NAME).parent.mkdir(parents=True, exist_ok=True)
    Path(HOSTILE_NAME).write_text("hostile\n")
    return good()


def many_files() -> int:
    for i in range(10_000):
        folder = Path("many", f"d{i // 500:02}")
        if i % 500 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:05}.txt").write_text(f"{i}\n")
    return good()


def floods() -> int:
    chunk = b"x" * 1023 + b"\n"
    sys.stdout.buffer.write(b"FLOOD-START\n")
    for _ in range(100 * 1024):
        sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.write(b"FLOOD-END\n")
    sys.stdout.flush()
    return good()


def invalid_utf8() -> int:
    sys.stdout.buffer.write(b"bad bytes: \xff\xfe\x80\xc3(\n")
    sys.stderr.buffer.write(b"more: \xed\xa0\x80 \x00 end\n")
    return good()


def echo_prompt() -> int:
    """Keep the prompt exactly as it arrived on stdin, in the environment and in the file."""
    Path("prompt-stdin.txt").write_bytes(sys.stdin.buffer.read())
    Path("prompt-env.txt").write_text(os.environ["ORCHESTRATE_PROMPT"])
    shutil.copyfile(os.environ["ORCHESTRATE_PROMPT_FILE"], "prompt-file.txt")
    Path("subtask-id.txt").write_text(os.environ["ORCHESTRATE_SUBTASK_ID"])
    return 0


def hostile_first() -> int:
    Path(HOSTILE_PATH).write_text("first\n")
    edit_line(2, "two by the first")
    return 0


def hostile_second() -> int:
    Path(HOSTILE_PATH).write_text("second\n")
    edit_line(18, "eighteen by the second")
    return 0


def edit_line(number: int, text: str) -> None:
    lines = Path("src/app.py").read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    Path("src/app.py").write_text("".join(lines))


def sleeps() -> int:
    """Run for a minute (unless stopped), leaving its pid in $HOME/sleeper.pid."""
    Path(os.environ["HOME"], "sleeper.pid").write_text(str(os.getpid()))
    time.sleep(60)
    return good()


def after_sleeper() -> int:
    """Finish well once the sibling `sleeps` runs."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not Path(os.environ["HOME"], "sleeper.pid").exists():
        time.sleep(0.02)
    return good()


def sabotage(damage: Callable[[Path], object]) -> int:
    """Damage the plan once the sibling `sleeps` runs (so no status write of its own replaces
    the damage), then finish well."""
    after_sleeper()
    damage(plan_path())
    return 0


def freeze(path: Path) -> None:
    subprocess.run(["chattr", "+i", str(path)], check=True)


def to_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def escapes() -> int:
    """Leave a process behind in a session of its own, holding the output pipe."""
    daemon = subprocess.Popen(["setsid", "sleep", "60"], stdout=sys.stdout, stderr=sys.stderr)
    Path(os.environ["HOME"], "escaped.pid").write_text(str(daemon.pid))
    return good()


def no_op() -> int:
    print("looked around, changed nothing")
    return 0


BEHAVIOURS: dict[str, Callable[[], int]] = {
    "flaky": flaky,
    "commits-itself": commits_itself,
    "switches-branch": switches_branch,
    "detaches-head": detaches_head,
    "deletes-dotgit": deletes_dotgit,
    "corrupts-dotgit": corrupts_dotgit,
    "deletes-worktree": deletes_worktree,
    "leaves-index-lock": leaves_index_lock,
    "writes-private": writes_private,
    "nested-repo": nested_repo,
    "odd-files": odd_files,
    "many-files": many_files,
    "floods": floods,
    "invalid-utf8": invalid_utf8,
    "no-op": no_op,
    "escapes": escapes,
    "echo-prompt": echo_prompt,
    "hostile-first": hostile_first,
    "hostile-second": hostile_second,
    "sleeps": sleeps,
    "after-sleeper": after_sleeper,
    "deletes-plan": lambda: sabotage(Path.unlink),
    "garbles-plan": lambda: sabotage(lambda p: p.write_text('{"phases": [ not JSON')),
    "plan-becomes-folder": lambda: sabotage(to_folder),
    "freezes-plan": lambda: sabotage(freeze),
    "freezes-spec-folder": lambda: sabotage(lambda p: freeze(p.parent)),
}


def main() -> int:
    subtask = os.environ["ORCHESTRATE_SUBTASK_ID"]
    for name in sorted(BEHAVIOURS, key=len, reverse=True):
        if subtask.startswith(name) and not os.environ.get("ROGUE_TAME"):
            return BEHAVIOURS[name]()
    return good()


if __name__ == "__main__":
    sys.exit(main())
