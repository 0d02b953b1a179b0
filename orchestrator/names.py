"""Every name orchestrate gives to things: branches and refs, private folders, the worktree
root and its pool, a spec's plan, logs, lock and report files.

This is the one module that spells them; the others ask it. It imports nothing of the
project, so the light commands (`status`, `validate`, `--help`) can use it. merge/ never
imports it: it is given what it needs as arguments.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.types import BranchName

BRANCH_ROOT = "orchestrate"  # every branch orchestrate makes is under orchestrate/<spec>/
HEADS = "refs/heads/"
PRIVATE_DIR = ".orchestrate"  # ours: specs, worktrees; ignored through info/exclude
AUTO_CLAUDE_DIR = ".auto-claude"  # Auto-Claude's: its specs (SPEC 2a)
PRIVATE_DIRS = (PRIVATE_DIR, AUTO_CLAUDE_DIR)  # never committed, never kept warm
SPEC_ROOTS = (f"{PRIVATE_DIR}/specs", f"{AUTO_CLAUDE_DIR}/specs")
AUTO_CLAUDE_SPECS = SPEC_ROOTS[1]
WORKTREE_ROOT = f"{PRIVATE_DIR}/worktrees"  # relative to the repository
POOL = ".pool"  # the folder of parked worktrees inside WORKTREE_ROOT
CHECK_WORKTREE_PREFIX = ".check-"  # a check run's detached worktree in the pool
REMOTE_CACHE_DIR = "orchestrate-remotes"  # on a Ray node, in its temp dir: copies of remotes

# The agents a build can run: the built-in claude loop, any command, a preset (settings and the
# command line read these; orchestrator/agents/__init__.py opens each).
PRESET_NAMES = ("claude-code", "codex", "aider", "gemini", "opencode")
AGENT_KINDS = ("claude", "command", *PRESET_NAMES)

PLAN_FILE = "implementation_plan.json"
LOGS_DIR = "logs"
RUN_LOCK = ".orchestrate-run.lock"
REPORT_MD = "conflict_report.md"
REPORT_JSON = "conflict_report.json"


# Commit trailers: every commit orchestrate makes names its spec and subtask, so a commit left
# by a crash can be recognised (adoption.py) and a person can see where a change came from.
SPEC_TRAILER = "Orchestrate-Spec"
SUBTASK_TRAILER = "Orchestrate-Subtask"
AGENT_TRAILER = "Orchestrate-Agent"
RESOLUTION_TRAILER = "Orchestrate-Resolution"


def trailers(spec_name: str, subtask_id: str, *, agent: str | None = None,
             resolution: int | str | None = None) -> str:
    """The trailer lines (each ending in a newline) of a commit for `subtask_id`."""
    lines = [f"{SPEC_TRAILER}: {spec_name}", f"{SUBTASK_TRAILER}: {subtask_id}"]
    if agent is not None:
        lines.append(f"{AGENT_TRAILER}: {agent}")
    if resolution is not None:
        lines.append(f"{RESOLUTION_TRAILER}: {resolution}")
    return "".join(line + "\n" for line in lines)


def spec_branch_prefix(spec_name: str) -> str:
    """`orchestrate/<spec>/`: what every branch of the spec starts with."""
    return f"{BRANCH_ROOT}/{spec_name}/"


def spec_ref_prefix(spec_name: str) -> str:
    """`refs/heads/orchestrate/<spec>/`, for `git for-each-ref`."""
    return HEADS + spec_branch_prefix(spec_name)


def integration_branch(spec_name: str) -> BranchName:
    return BranchName(spec_branch_prefix(spec_name) + "integration")


def integration_ref(spec_name: str) -> str:
    return HEADS + integration_branch(spec_name)


def subtask_branch(spec_name: str, subtask_id: str) -> BranchName:
    return BranchName(spec_branch_prefix(spec_name) + subtask_id)


def branch_blockers(spec_name: str) -> tuple[str, str]:
    """Branches whose existence stops git from creating the spec's branches under them."""
    return BRANCH_ROOT, spec_branch_prefix(spec_name).rstrip("/")


def auto_claude_branch(spec_name: str) -> BranchName:
    """Where Auto-Claude commits a spec's subtasks (SPEC 2a)."""
    return BranchName(f"auto-claude/{spec_name}")


def worktree_root(repo: Path) -> Path:
    return repo / WORKTREE_ROOT


def pool_dir(repo: Path) -> Path:
    return worktree_root(repo) / POOL


def remote_pool(cache: Path) -> Path:
    """Beside a Ray node's bare copy of the remote: the clones its attempts parked."""
    return cache.with_suffix(POOL)


def check_worktree_name(commit: str) -> str:
    """The pool entry a check run of `commit` uses."""
    return f"{CHECK_WORKTREE_PREFIX}{commit[:12]}"


def check_reproduce_dir(commit: str) -> str:
    """Where the report tells the user to check out `commit` to reproduce a check failure."""
    return f"{PRIVATE_DIR}/check-{commit[:12]}"


def subtask_log(logs: Path, subtask_id: str) -> Path:
    return logs / f"{subtask_id}.log"


def check_log(logs: Path, commit: str) -> Path:
    return logs / f"check-{commit[:12]}.log"


def events_log(logs: Path) -> Path:
    """Every event of every build and merge of the spec, one JSON object a line."""
    return logs / "events.jsonl"


# Which strings can be one component of a git branch name and a folder name: the rules of
# `git check-ref-format` applied to a single component, plus what `git branch` and file systems
# refuse; tests compare them with git itself.
_FORBIDDEN_CHARS = set(" ~^:?*[\\/")
_MAX_BYTES = 200  # folder names stop at 255 bytes; leave room for ".lock" and suffixes


def refname_problem(component: str) -> str | None:
    """Why `component` cannot be a ref component and folder name, or None if it can."""
    if not component:
        return "it is empty"
    if component.startswith("."):
        return "it starts with '.'"
    if component.startswith("-"):
        return "it starts with '-'"
    if component.endswith("."):
        return "it ends with '.'"
    if component.endswith(".lock"):
        return "it ends with '.lock'"
    if ".." in component:
        return "it contains '..'"
    if "@{" in component:
        return "it contains '@{'"
    if component == "@":
        return "it is '@'"
    bad = sorted({c for c in component if c in _FORBIDDEN_CHARS or ord(c) < 32 or ord(c) == 127})
    if bad:
        return "it contains " + ", ".join(repr(c) for c in bad)
    if len(component.encode("utf-8")) > _MAX_BYTES:
        return f"it is longer than {_MAX_BYTES} bytes"
    return None


# --- orchestrate's own record, outside the repository and every path a sandbox shows ---------

STATE_DIR = "orchestrate"  # under $XDG_STATE_HOME (default ~/.local/state)


def state_home() -> Path:
    """Where orchestrate keeps what it decided, out of an agent's reach by convention."""
    import os

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / STATE_DIR


def repo_state_dir(repo: Path, spec_name: str) -> Path:
    """orchestrate's own record for one spec of one repository."""
    import hashlib

    key = hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:16]
    return state_home() / f"{repo.resolve().name}-{key}" / spec_name


def attach_keys(log: Path) -> Path:
    """The FIFO `orchestrate attach` types into while the agent logging to `log` runs under a
    pseudo-terminal (config `pty`)."""
    return log.with_suffix(".keys")


def radar_file(logs: Path, subtask_id: str) -> Path:
    """ORCHESTRATE_RADAR_FILE: where the conflict radar tells a subtask's agent of overlaps."""
    return logs / f"{subtask_id}.radar"


def radar_cache(repo: Path, spec_name: str) -> Path:
    """The conflict radar's private indexes (its stat cache) for one build of the spec."""
    return repo / PRIVATE_DIR / "radar" / spec_name
