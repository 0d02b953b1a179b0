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


def relative(path: Path, root: Path = ROOT) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


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
DOORS = {"merge/gitcmd.py", "orchestrator/door/processes.py"}
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
OUTSIDE_THE_PROCESS = {"orchestrator/workspace/ray_probe.py"}


def test_processes_start_only_at_the_door() -> None:
    found = [problem for path in modules("orchestrator", "merge")
             if relative(path) not in DOORS | OUTSIDE_THE_PROCESS
             for problem in process_starts(path)]
    assert not found, ("start and signal processes through merge/gitcmd.py (sync) or "
                       "orchestrator/door/processes.py (trio):\n" + "\n".join(found))


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


# Statuses: the words of orchestrator.types.Status, written nowhere else in orchestrator/.
# merge/ keeps its own vocabulary (merge outcomes and finding kinds such as "conflict") in
# merge/words.py; the plan statuses its report reads from rows are plain strings it is given.
PLAN_MODULE = "orchestrator/types.py"
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
    from orchestrator.plan.model import Status

    assert {str(s) for s in Status} == STATUS_WORDS
    assert {text for _, text in strings(ROOT / PLAN_MODULE)} >= STATUS_WORDS


def test_merge_words_agree_with_the_plan() -> None:
    from merge import words
    from orchestrator.plan.model import MergeState, Status

    assert words.CONFLICT == Status.CONFLICT == MergeState.CONFLICT
    assert words.MERGED == MergeState.MERGED


# The rooms: sub-packages of orchestrator/, each importing only the rooms below it in this list.
# The root modules (errors, names, types, events, settings, ...) are the floor: every room may
# import them and they import no room. merge/ is a library below them all, reached through its
# face (merge/__init__.py) only.
ROOMS = ("door", "plan", "agents", "workspace", "stage", "build", "face", "cli")
ROOT_MAX_MODULES = 12
ENTRY_POINTS = {"orchestrator/__main__.py"}  # runs the command line: above every room


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def level_of(module: str) -> int:
    """-2: merge/, -1: the root modules of orchestrator/, then each room's place in ROOMS."""
    parts = module.split(".")
    if parts[0] == "merge":
        return -2
    if len(parts) > 1 and parts[1] in ROOMS:
        return ROOMS.index(parts[1])
    return -1


def local_imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str, list[str], bool]]:
    """(line, module, imported names, at module level) for each import of orchestrator or
    merge code, relative imports resolved; TYPE_CHECKING imports count like any other."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("orchestrator", "merge"):
                    yield node.lineno, alias.name, [], id(node) in top_level
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = package[:len(package) - node.level + 1]
                base = ".".join([*prefix, *([base] if base else [])])
            if base.split(".")[0] in ("orchestrator", "merge"):
                yield node.lineno, base, [a.name for a in node.names], id(node) in top_level


def known_modules() -> set[str]:
    return {module_name(path) for path in modules("orchestrator", "merge")}


def target_module(base: str, name: str, known: set[str]) -> str:
    """`from package import module` names the module; `from module import thing` the module."""
    return f"{base}.{name}" if f"{base}.{name}" in known else base


def layering_problems(paths: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in paths:
        if relative(path, root) in ENTRY_POINTS:
            continue
        here = module_name(path, root)
        mine = level_of(here)
        for line, base, _, _ in local_imports(path, root):
            if base.startswith("merge.") and not here.startswith("merge"):
                found.append(f"{relative(path, root)}:{line}: imports {base}; use the face `merge`")
            elif level_of(base) > mine:
                found.append(f"{relative(path, root)}:{line}: imports {base}, a room above it")
    return found


def private_imports(paths: list[Path], root: Path = ROOT) -> list[str]:
    return [f"{relative(path, root)}:{line}: imports {name} from {base}"
            for path in paths for line, base, names, _ in local_imports(path, root)
            for name in names if name.startswith("_") and not name.startswith("__")
            and base != module_name(path, root)]


def import_graph(paths: list[Path], root: Path = ROOT) -> dict[str, set[str]]:
    known = {module_name(path, root) for path in paths} | known_modules()
    graph: dict[str, set[str]] = {}
    for path in paths:
        here = module_name(path, root)
        edges = graph.setdefault(here, set())
        for _, base, names, _ in local_imports(path, root):
            targets = {target_module(base, name, known) for name in names} or {base}
            edges |= {t for t in targets if t != here and t in known}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def room_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    def room(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in ROOMS else parts[0]

    rooms: dict[str, set[str]] = {}
    for source, targets in graph.items():
        rooms.setdefault(room(source), set()).update(
            room(t) for t in targets if room(t) != room(source))
    return rooms


def test_rooms_import_only_downward() -> None:
    found = layering_problems(modules("orchestrator"))
    assert not found, f"rooms import only rooms below them ({ROOMS}):\n" + "\n".join(found)


def test_no_private_names_cross_modules() -> None:
    found = private_imports(modules("orchestrator", "merge"))
    assert not found, "make it public or move it where it is used:\n" + "\n".join(found)


def test_no_import_cycles() -> None:
    paths = [p for p in modules("orchestrator", "merge") if relative(p) not in ENTRY_POINTS]
    graph = import_graph(paths)
    found = cycles(graph) + cycles(room_graph(graph))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_house_has_rooms() -> None:
    root = sorted((ROOT / "orchestrator").glob("*.py"))
    assert len(root) <= ROOT_MAX_MODULES, [p.name for p in root]
    present = [room for room in ROOMS if (ROOT / "orchestrator" / room / "__init__.py").exists()]
    assert present == list(ROOMS)
    assert (ROOT / "orchestrator" / "agents" / "__init__.py").exists()


def plant(tmp_path: Path, files: dict[str, str]) -> list[Path]:
    """A throwaway tree shaped like the repository, for the rules to judge."""
    paths = []
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths


def test_the_layering_rule_catches_an_upward_import(tmp_path: Path) -> None:
    paths = plant(tmp_path, {
        "orchestrator/plan/model.py": "from orchestrator.build.run import run_build\n",
        "orchestrator/build/run.py": "from orchestrator.plan import model\nimport merge\n",
        "orchestrator/names.py": "from orchestrator.face.live import Live\n",
        "orchestrator/stage/gate.py": "from merge.integrate import integrate\n"})
    found = layering_problems(paths, tmp_path)
    assert len(found) == 3, found
    assert any("plan/model.py" in f and "a room above" in f for f in found)
    assert any("names.py" in f for f in found)
    assert any("use the face" in f for f in found)


def test_the_cycle_rule_catches_a_cycle(tmp_path: Path) -> None:
    paths = plant(tmp_path, {
        "orchestrator/build/a.py": "from orchestrator.build import b\n",
        "orchestrator/build/b.py": "from orchestrator.build.c import thing\n",
        "orchestrator/build/c.py": "from orchestrator.build.a import other\n",
        "orchestrator/build/d.py": "from orchestrator.build import a\n"})
    assert cycles(import_graph(paths, tmp_path)) == [
        ["orchestrator.build.a", "orchestrator.build.b", "orchestrator.build.c"]]
    assert cycles({"x.face.a": {"x.build.b"}, "x.build.b": set()}) == []


def test_the_cycle_rule_catches_a_cycle_of_rooms() -> None:
    graph = {"orchestrator.stage.a": {"orchestrator.build.b"},
             "orchestrator.build.b": {"orchestrator.stage.c"}, "orchestrator.stage.c": set()}
    assert cycles(graph) == []
    assert cycles(room_graph(graph)) == [["build", "stage"]]


def test_the_private_rule_catches_a_private_import(tmp_path: Path) -> None:
    paths = plant(tmp_path, {
        "orchestrator/build/driver.py": "from orchestrator.workspace.attempt import _shell\n"
                                        "from orchestrator.build.driver import _own\n",
        "orchestrator/stage/gate.py": "from . import _sibling\n"})
    assert len(private_imports(paths, tmp_path)) == 2


def test_the_room_graph_sees_rooms() -> None:
    graph = import_graph([p for p in modules("orchestrator") if relative(p) not in ENTRY_POINTS])
    rooms = room_graph(graph)
    assert "plan" in rooms["build"]
    assert "build" in rooms["cli"]


def literal_event_kinds(path: Path) -> list[str]:
    """emit("kind", ...) and Event("kind", ...) calls: kinds are EventKind members."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = dotted(node.func) or ""
            if name.split(".")[-1] in ("emit", "Event"):
                found.append(f"{relative(path)}:{node.lineno}: {node.args[0].value!r}")
    return found


def test_event_kinds_are_members_of_the_enum() -> None:
    found = [problem for path in modules("orchestrator") for problem in literal_event_kinds(path)]
    assert not found, "use orchestrator.events.EventKind:\n" + "\n".join(found)


def test_the_event_kind_rule_sees_literals(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('ctx.emit("subtask_started", "x")\nsink.emit(Event("build_started", ""))\n'
                      'ctx.emit(EventKind.BUILD_STARTED, "fine")\n')
    assert len(literal_event_kinds(sample)) == 2


# The plan's `orchestrate` object has one reader, the typed Record in plan/; other rooms ask it.
PLAN_ROOM = "orchestrator/plan/"
RAW_META = re.compile(r"meta\.get\(|meta\[")


def raw_meta_reads(path: Path) -> list[str]:
    return [f"{relative(path)}:{n}: {line.strip()}"
            for n, line in enumerate(path.read_text().splitlines(), 1) if RAW_META.search(line)]


def test_only_the_plan_room_reads_the_orchestrate_object() -> None:
    found = [problem for path in modules("orchestrator")
             if not relative(path).startswith(PLAN_ROOM) for problem in raw_meta_reads(path)]
    assert not found, "read Subtask.record / Plan.record instead:\n" + "\n".join(found)


def test_the_meta_rule_sees_raw_reads(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('a = subtask.meta.get("head")\nb = plan.meta["cost_usd"]\n'
                      'c = s.record.head\n')
    assert len(raw_meta_reads(sample)) == 2


# One writer of statuses: Subtask.set_status, called from plan/ (records.py holds every
# transition of a run); no other module assigns a subtask's `status`.
STATUS_WRITE = re.compile(r"""\[["']status["']\]\s*=(?!=)""")
STATUS_WRITER = "orchestrator/plan/model.py"


def status_writes(path: Path) -> list[str]:
    return [f"{relative(path)}:{n}: {line.strip()}"
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if STATUS_WRITE.search(line)]


def test_statuses_have_one_writer() -> None:
    found = [problem for path in modules("orchestrator") if relative(path) != STATUS_WRITER
             for problem in status_writes(path)]
    calls = [f"{relative(path)}:{n}" for path in modules("orchestrator")
             if not relative(path).startswith(PLAN_ROOM)
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\b(subtask|s)\.set_status\(", line)]
    assert not found + calls, ("change statuses through plan/transitions.py:\n"
                               + "\n".join(found + calls))


def test_the_status_writer_rule_sees_writes(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('subtask.raw["status"] = "completed"\nok = raw["status"] == "x"\n')
    assert len(status_writes(sample)) == 1
    assert status_writes(ROOT / STATUS_WRITER)
