"""Declared files (SPEC 11) without a build: glob intersection and matching, waves in plan
order, predicted overlaps made concrete against a real repository's tracked files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from merge.globs import intersect, matches, normalize, uncovered
from orchestrator.plan.declared import declared_files, predicted_overlaps, wave_numbers, waves
from orchestrator.plan.parse import parse_plan
from tests.conftest import commit_all

INTERSECTING = [
    ("src/**", "src/a/b.py"),
    ("src/**", "src"),  # the folder itself and everything below it
    ("src/*.py", "src/**/x.py"),  # `**` matches no folder at all: src/x.py
    ("src/?.py", "src/a.py"),
    ("src/a?c.py", "src/*c.py"),
    ("**", "anything/at/all.txt"),
    ("**/*.py", "src/*/test_*.py"),
    ("a/*/c", "a/b/*"),
    ("docs", "docs/operations.md"),  # a declared folder covers its files
    ("docs/", "docs/a/b.md"),
    ("./src//app.py", "src/app.py"),
    ("x*y", "xy"),  # `*` matches nothing too
    ("a**b/c", "ab/c"),  # `**` inside a segment means `*`
]
DISJOINT = [
    ("src/a.py", "src/b.py"),
    ("src/*.py", "src/a/b.py"),  # `*` does not cross a slash
    ("src/?.py", "src/ab.py"),  # `?` is exactly one character
    ("src/?.py", "src/.py"),
    ("**/*.py", "**/*.md"),
    ("src/*", "src/a/b.py"),  # `src/*` is what lies directly in src
    ("docs/*.md", "docs/sub/a.md"),
    ("src/app.py", "src/app.pyc"),
    ("a*b", "ba"),
    ("src/**", "srcs/a.py"),
]


@pytest.mark.parametrize(("a", "b"), INTERSECTING)
def test_declarations_that_share_a_path_intersect(a: str, b: str) -> None:
    assert intersect(a, b)
    assert intersect(b, a)


@pytest.mark.parametrize(("a", "b"), DISJOINT)
def test_declarations_without_a_common_path_do_not(a: str, b: str) -> None:
    assert not intersect(a, b)
    assert not intersect(b, a)


CANDIDATES = ["src/a.py", "src/ab.py", "src/a/b.py", "src/a/x.py", "src/x.py", "src/.py",
              "docs/a.md", "docs/sub/a.md", "a/b/c", "a/bc/c", "xy", "xzzy", "src",
              "srcs/a.py", "deep/er/still/a.py", "a.py/b.md"]
PATTERNS = ["src/**", "src/*.py", "src/**/x.py", "src/?.py", "**/*.py", "**/*.md", "a/*/c",
            "a/b/*", "docs", "x*y", "src/*", "*"]


@pytest.mark.parametrize("a", PATTERNS)
def test_intersection_agrees_with_matching_on_every_sample_path(a: str) -> None:
    """Whenever some sample path matches two patterns, the patterns intersect; two patterns
    the search calls disjoint never share a sample path."""
    for b in PATTERNS:
        shared = [p for p in CANDIDATES if matches(a, p) and matches(b, p)]
        if shared:
            assert intersect(a, b), (a, b, shared)
        if not intersect(a, b):
            assert not shared, (a, b)


def test_matching_a_path() -> None:
    assert matches("src/**", "src/a/b.py")
    assert matches("src/**/x.py", "src/x.py")
    assert matches("docs", "docs/a.md")
    assert matches("src/*.py", "src/app.py")
    assert not matches("src/*.py", "src/a/app.py")
    assert not matches("src/?.py", "src/ab.py")
    assert matches("src/a[1].py", "src/a[1].py")  # only *, ** and ? are special
    assert not matches("src/a[1].py", "src/a1.py")
    assert normalize("./a//b/./c") == "a/b/c"


def test_uncovered_paths_are_the_changes_outside_every_declaration() -> None:
    declared = ["src/**", "README.md"]
    assert uncovered(declared, ["src/a/b.py", "README.md", "notes.txt", "docs/x.md"]) == [
        "docs/x.md", "notes.txt"]
    assert uncovered([], ["anything"]) == []  # nothing declared: nothing to report


def _plan(*phases: dict[str, Any]) -> Any:
    text = __import__("json").dumps({"phases": list(phases)})
    return parse_plan(text.encode(), Path("plan.json"))


def _sub(subtask_id: str, modify: list[str] | None = None,
         create: list[str] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"id": subtask_id}
    if modify is not None:
        found["files_to_modify"] = modify
    if create is not None:
        found["files_to_create"] = create
    return found


def test_declared_files_are_modify_and_create_normalised_once() -> None:
    plan = _plan({"phase": 1, "subtasks": [
        _sub("a", ["./src/app.py", "src/app.py", ""], ["src/new.py"])]})
    assert declared_files(next(plan.subtasks())) == ("src/app.py", "src/new.py")


def test_each_subtask_joins_the_first_wave_without_a_common_file() -> None:
    phase = {"phase": 1, "parallel_safe": True, "subtasks": [
        _sub("a", ["shared.py"]), _sub("b", ["shared.py", "b.py"]), _sub("free"),
        _sub("c", ["b.py"]), _sub("d", ["shared.py"]), _sub("e", ["src/**"]),
        _sub("f", None, ["src/new/f.py"])]}
    plan = _plan(phase)
    found = waves(plan.phases[0].subtasks)
    assert [[s.id for s in wave] for wave in found] == [["a", "free", "c", "e"], ["b", "f"],
                                                        ["d"]]
    assert wave_numbers(plan.phases[0]) == {"a": 1, "free": 1, "c": 1, "e": 1, "b": 2,
                                            "f": 2, "d": 3}
    assert wave_numbers(plan.phases[0], "together") == dict.fromkeys(
        ["a", "b", "free", "c", "d", "e", "f"], 1)
    assert len(waves(plan.phases[0].subtasks, "together")) == 1


def test_a_sequential_phase_has_no_waves_and_no_predicted_overlaps() -> None:
    plan = _plan({"phase": 1, "subtasks": [_sub("a", ["x.py"]), _sub("b", ["x.py"])]})
    assert wave_numbers(plan.phases[0]) == {}
    assert predicted_overlaps(plan) == []


def test_predicted_overlaps_name_the_tracked_files_a_glob_reaches(repo: Path) -> None:
    (repo / "src" / "a").mkdir()
    (repo / "src" / "a" / "b.py").write_text("b\n")
    commit_all(repo, "more files")
    plan = _plan({"phase": 1, "parallel_safe": True, "subtasks": [
        _sub("wide", ["src/**"]), _sub("narrow", ["src/a/b.py"]),
        _sub("py", ["src/*.py"]), _sub("docs", None, ["docs/new.md"]),
        _sub("docs-too", ["docs/new.md"])]})
    found = {o.subtasks: o for o in predicted_overlaps(plan, repo)}
    assert set(found) == {("wide", "narrow"), ("wide", "py"), ("docs", "docs-too")}
    assert found[("wide", "narrow")].paths == ("src/a/b.py",)
    assert found[("wide", "py")].paths == ("src/app.py",)  # the tracked file both reach
    assert found[("docs", "docs-too")].paths == ("docs/new.md",)  # not tracked yet: the path
    assert re.search(r"wide and py both declare src/app\.py",
                     found[("wide", "py")].describe())


def test_the_path_index_finds_exactly_the_pairs_a_pairwise_comparison_finds() -> None:
    declarations = [["src/a.py"], ["src"], ["src/a.py", "docs/x.md"], ["docs/"], ["src/**"],
                     ["lib/*.py"], ["lib/z.py", "src/b.py"], ["tests/t.py"], ["src/a.py/"],
                     ["**/*.md"], [], ["lib"]]
    subtasks = [{"id": f"s{n}", "files_to_modify": d} for n, d in enumerate(declarations)]
    plan = _plan({"phase": 1, "parallel_safe": True, "subtasks": subtasks})
    found = {o.subtasks: o.patterns for o in predicted_overlaps(plan)}
    brute = {}
    declared = [(s.id, declared_files(s)) for s in plan.subtasks()]
    for n, (first, mine) in enumerate(declared):
        for second, theirs in declared[n + 1:]:
            if pairs := tuple((a, b) for a in mine for b in theirs if intersect(a, b)):
                brute[first, second] = pairs
    assert found == brute
    assert ("s0", "s1") in found  # a file and its folder
    assert ("s5", "s11") in found  # a glob and a folder
