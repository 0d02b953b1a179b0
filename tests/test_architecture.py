"""The shape of the code, checked on its syntax trees: which module may spell which name,
start which process, and import which package."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMES_MODULE = "orchestrator/names.py"
# Spellings only orchestrator/names.py may contain (docstrings aside, which explain them).
NAME_PATTERNS = {
    "the branch prefix": re.compile(r"(?<![.\w-])orchestrate/"),
    "the worktree root": re.compile(r"\.orchestrate/worktrees|^worktrees$"),
    "the pool folder": re.compile(r"(?<!\w)\.pool\b"),
    "a private folder": re.compile(r"\.orchestrate\b|\.auto-claude\b"),
    "Auto-Claude's branch prefix": re.compile(r"(?<![.\w-])auto-claude/"),
}


def modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def strings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string constant in the module but its docstrings, including the
    literal parts of f-strings."""
    tree = ast.parse(path.read_text(), str(path))
    skip = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def test_names_are_spelled_in_one_module() -> None:
    found = [f"{relative(path)}:{line}: {what} in {text[:60]!r}"
             for path in modules("orchestrator", "merge") if relative(path) != NAMES_MODULE
             for line, text in strings(path)
             for what, pattern in NAME_PATTERNS.items() if pattern.search(text)]
    assert not found, "ask orchestrator/names.py instead:\n" + "\n".join(found)


def test_the_patterns_find_the_real_names() -> None:
    """The rule above is not vacuous: each pattern matches what the names module hands out."""
    from orchestrator import names

    real = {"the branch prefix": names.integration_branch("001"),
            "the worktree root": names.WORKTREE_ROOT, "the pool folder": names.POOL,
            "a private folder": names.AUTO_CLAUDE_DIR,
            "Auto-Claude's branch prefix": names.auto_claude_branch("001")}
    assert real.keys() == NAME_PATTERNS.keys()
    for what, value in real.items():
        assert NAME_PATTERNS[what].search(value), what
    assert NAME_PATTERNS["a private folder"].search(names.PRIVATE_DIR)
    assert names.subtask_branch("001", "a").startswith(names.spec_branch_prefix("001"))


@pytest.mark.parametrize("text", ["orchestrate/{spec}/integration", "refs/heads/orchestrate/",
                                  ".orchestrate/worktrees", ".pool", ".auto-claude"])
def test_a_stray_spelling_is_caught(text: str) -> None:
    assert any(pattern.search(text) for pattern in NAME_PATTERNS.values())


@pytest.mark.parametrize("text", ["orchestrate: interrupted", "orchestrate-crash-",
                                  "keep_worktrees", "`orchestrate report 001`"])
def test_ordinary_words_are_not_names(text: str) -> None:
    assert not any(pattern.search(text) for pattern in NAME_PATTERNS.values())


# The process door: the only modules that start child processes or signal them.
DOORS = {"merge/gitcmd.py", "orchestrator/processes.py"}
PROCESS_CALLS = {"trio.run_process", "trio.lowlevel.open_process", "os.killpg", "os.kill",
                 "subprocess.Popen", "subprocess.run", "os.system", "os.popen", "os.fork",
                 "os.posix_spawn", "os.posix_spawnp", "os.execv", "os.execvp", "os.execve"}
MERGE_MAY_NOT_IMPORT = ("trio", "anthropic", "rich", "ray", "click", "orchestrator")


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := dotted(node.value)) is not None:
        return f"{base}.{node.attr}"
    return None


def imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the module, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def process_starts(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = [f"{relative(path)}:{line}: imports {name}" for line, name in imported(tree)
             if name == "subprocess" or name.startswith("subprocess.")]
    for node in ast.walk(tree):
        name = dotted(node) if isinstance(node, ast.Attribute) else None
        if name in PROCESS_CALLS:
            found.append(f"{relative(path)}:{node.lineno}: uses {name}")
    return found


def forbidden_in_merge(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [f"{relative(path)}:{line}: imports {name}" for line, name in imported(tree)
            if name.split(".")[0] in MERGE_MAY_NOT_IMPORT]


# Ray ships ray_probe's functions by value to nodes that may have no orchestrate installed, so
# they can import only the standard library: the door is not there to call.
# door/egress_inside.py runs inside a sandbox (`python -I -S -c`), a process of its own.
OUTSIDE_THE_PROCESS = {"orchestrator/ray_probe.py", "orchestrator/door/egress_inside.py"}


def test_processes_start_only_at_the_door() -> None:
    found = [problem for path in modules("orchestrator", "merge")
             if relative(path) not in DOORS | OUTSIDE_THE_PROCESS
             for problem in process_starts(path)]
    assert not found, ("start and signal processes through merge/gitcmd.py (sync) or "
                       "orchestrator/processes.py (trio):\n" + "\n".join(found))


def test_the_doors_are_where_processes_start() -> None:
    """The rule is not vacuous: it sees what the doors themselves do."""
    for door in DOORS:
        assert process_starts(ROOT / door), door


def test_merge_is_plain_synchronous_code() -> None:
    found = [problem for path in modules("merge") for problem in forbidden_in_merge(path)]
    assert not found, "merge/ is given what it needs; it imports none of:\n" + "\n".join(found)


def test_the_import_rule_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import subprocess\nfrom orchestrator.names import POOL\n"
                      "def f():\n    import trio\n    trio.run_process(['x'])\n")
    assert len(process_starts(sample)) == 2
    assert len(forbidden_in_merge(sample)) == 3  # orchestrator.names, .POOL, trio


# Statuses: the words of orchestrator.plan.Status, written nowhere else in orchestrator/.
# merge/ keeps its own vocabulary (merge outcomes and finding kinds such as "conflict") in
# merge/words.py; the plan statuses its report reads from rows are plain strings it is given.
PLAN_MODULE = "orchestrator/plan.py"
STATUS_WORDS = frozenset({"pending", "in_progress", "completed", "failed", "blocked",
                          "conflict"})


def status_literals(path: Path) -> list[str]:
    return [f"{relative(path)}:{line}: {text!r}" for line, text in strings(path)
            if text in STATUS_WORDS]


def test_no_bare_status_word_outside_the_plan_model() -> None:
    found = [problem for path in modules("orchestrator") if relative(path) != PLAN_MODULE
             for problem in status_literals(path)]
    assert not found, ("use orchestrator.plan.Status / MergeState (or merge.words for a merge "
                       "outcome) instead of:\n" + "\n".join(found))


def test_the_status_rule_sees_the_plan_model() -> None:
    from orchestrator.plan import Status

    assert {str(s) for s in Status} == STATUS_WORDS
    assert {text for _, text in strings(ROOT / PLAN_MODULE)} >= STATUS_WORDS


def test_merge_words_agree_with_the_plan() -> None:
    from merge import words
    from orchestrator.plan import MergeState, Status

    assert words.CONFLICT == Status.CONFLICT == MergeState.CONFLICT
    assert words.MERGED == MergeState.MERGED


# The face: the core emits events (orchestrator/events.py: Event, Sink) and never imports the
# renderers; only the command line and the build, which picks a sink, reach them.
FACE = ("orchestrator.progress", "orchestrator.live", "orchestrator.status_view", "rich")
MAY_REACH_THE_FACE = {"orchestrator/cli.py", "orchestrator/build.py", "orchestrator/views.py",
                      "orchestrator/progress.py", "orchestrator/live.py",
                      "orchestrator/status_view.py"}


def test_the_core_does_not_import_the_renderers() -> None:
    found = [f"{relative(path)}:{line}: imports {name}"
             for path in modules("orchestrator") if relative(path) not in MAY_REACH_THE_FACE
             for line, name in imported(ast.parse(path.read_text()))
             if any(name == face or name.startswith(face + ".") for face in FACE)]
    assert not found, "import Event and Sink from orchestrator.events:\n" + "\n".join(found)
