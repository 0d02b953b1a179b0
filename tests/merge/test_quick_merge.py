"""Merges computed from the trees (merge/quick_merge.py) give exactly merge-tree's results: on
generated histories of every kind of change (edits, additions, deletions, renames of files and
folders, modes, links, a file turned folder and back), each chain of merges is made twice, with
and without the quick merges, and every step's outcome and tree must agree."""

from __future__ import annotations

import contextlib
import random
import shutil
from pathlib import Path

import pytest

from merge.gitcmd import CommitWriter
from merge.integrate import Candidate, merge_commit_onto
from merge.quick_merge import QuickMerges
from tests.conftest import commit_all, git

BASE_FILES = ("a/one.txt", "a/two.txt", "a/b/three.txt", "a/b/four.txt", "c/five.txt",
              "c/six.txt", "top.txt", "d/e/f/deep.txt", "run.sh")


def base_commit(repo: Path) -> str:
    for path in BASE_FILES:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("".join(f"{path} line {n}\n" for n in range(8)))
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("top.txt")
    return commit_all(repo, "base")


def files_in(tree: Path) -> list[Path]:
    return sorted(p for p in tree.rglob("*") if ".git" not in p.relative_to(tree).parts
                  and (p.is_file() or p.is_symlink()))


def folders_in(tree: Path) -> list[Path]:
    return sorted(p for p in tree.rglob("*") if ".git" not in p.relative_to(tree).parts
                  and p.is_dir() and not p.is_symlink())


def change(tree: Path, rng: random.Random, tag: str) -> None:
    """One random change of any kind an agent makes."""
    files, folders = files_in(tree), folders_in(tree)
    tag = f"{tag}-{rng.randrange(1000)}"  # a branch's second change names its own paths
    kind = rng.choice(["edit", "edit", "add", "add", "new folder", "delete", "delete folder",
                       "rename", "rename folder", "mode", "link", "file to folder",
                       "folder to file"])
    target = rng.choice(files)
    place = rng.choice([tree, *folders])
    if kind == "edit" and not target.is_symlink():
        with target.open("a") as out:
            out.write(f"edited by {tag}\n")
    elif kind == "add":
        (place / f"{tag}.txt").write_text(f"added by {tag}\n")
    elif kind == "new folder":
        (place / f"{tag}-dir" / "inner").mkdir(parents=True)
        (place / f"{tag}-dir" / "inner" / "new.txt").write_text(f"{tag}\n")
    elif kind == "delete":
        target.unlink()
    elif kind == "delete folder" and folders:
        shutil.rmtree(rng.choice(folders))
    elif kind == "rename" and not target.is_symlink():
        target.rename(place / f"{tag}-{target.name}")
    elif kind == "rename folder" and folders:
        folder = rng.choice(folders)
        folder.rename(folder.with_name(f"{folder.name}-{tag}"))
    elif kind == "mode" and not target.is_symlink():
        target.chmod(target.stat().st_mode ^ 0o111)
    elif kind == "link":
        target.unlink()
        target.symlink_to("top.txt")
    elif kind == "file to folder":
        target.unlink()
        target.mkdir()
        (target / "was-a-file.txt").write_text(f"{tag}\n")
    elif kind == "folder to file" and folders:
        folder = rng.choice(folders)
        shutil.rmtree(folder)
        folder.write_text(f"a file now, by {tag}\n")


def branch(repo: Path, base: str, name: str, rng: random.Random) -> Candidate:
    work = repo.parent / f"work-{name}"
    git(repo, "worktree", "add", "-q", "-b", name, str(work), base)
    for _ in range(rng.randint(1, 3)):
        change(work, rng, name)
    git(work, "add", "--all")
    if git(work, "status", "--porcelain"):
        git(work, "commit", "-q", "-m", f"{name}: work")
    head = git(work, "rev-parse", "HEAD")
    git(repo, "worktree", "remove", "--force", str(work))
    return Candidate(name, name, base, head, f"Merge {name}\n")


def chain(repo: Path, start: str, candidates: list[Candidate], *, quick: bool
          ) -> tuple[list[tuple[str, str | None]], int]:
    """Each step's (outcome, tree), and how many merges the quick merges made."""
    steps: list[tuple[str, str | None]] = []
    tip = start
    with CommitWriter(repo) as writer, contextlib.ExitStack() as stack:
        merges = (stack.enter_context(QuickMerges(repo, start, [c.head for c in candidates]))
                  if quick else None)
        for candidate in candidates:
            if candidate.head == start:
                continue
            result = merge_commit_onto(repo, tip, candidate, writer, merges)
            tree = git(repo, "rev-parse", f"{result.merge_commit}^{{tree}}") \
                if result.merge_commit else None
            steps.append((result.outcome, tree))
            if result.merge_commit:
                tip = result.merge_commit
        return steps, merges.count if merges else 0


@pytest.mark.parametrize("seed", range(8))
def test_every_step_of_a_chain_equals_merge_trees(repo: Path, seed: int) -> None:
    rng = random.Random(seed)
    start = base_commit(repo)
    candidates = [branch(repo, start, f"b{seed}-{n}", rng) for n in range(6)]
    expected, _ = chain(repo, start, candidates, quick=False)
    found, _ = chain(repo, start, candidates, quick=True)
    assert found == expected


def test_branches_that_change_other_paths_are_merged_without_merge_tree(repo: Path) -> None:
    start = base_commit(repo)
    edits = {"e1": "a/one.txt", "e2": "c/five.txt", "e3": "d/e/f/deep.txt", "e4": "top.txt"}
    candidates = []
    for name, path in edits.items():
        git(repo, "switch", "-q", "-c", name, start)
        with (repo / path).open("a") as out:
            out.write(f"{name}\n")
        (repo / f"new-{name}").mkdir()
        (repo / f"new-{name}" / "file.txt").write_text(name)
        candidates.append(Candidate(name, name, start, commit_all(repo, name), f"{name}\n"))
    git(repo, "switch", "-q", "main")
    expected, _ = chain(repo, start, candidates, quick=False)
    found, count = chain(repo, start, candidates, quick=True)
    assert found == expected
    assert count == len(candidates)


CASES = {  # what the first branch writes (None: removes c/), what the second one writes
    "same path": ("a/one.txt", "a/one.txt"),
    "file where a folder is": ("x", "x/inside.txt"),
    "folder where a file is": ("x/inside.txt", "x"),
    "folder emptied": (None, "c/seven.txt"),
    "older fork": ("new.txt", "c/five.txt"),
    "unrelated history": ("new.txt", "c/five.txt"),
}


@pytest.mark.parametrize("what", CASES)
def test_what_git_could_merge_otherwise_goes_to_merge_tree(repo: Path, what: str) -> None:
    before = git(repo, "rev-parse", "HEAD")
    start = base_commit(repo)
    first, second = CASES[what]
    one = branch_writing(repo, "one", start, first)
    others = [branch_writing(repo, f"other-{n}", start, f"other-{n}.txt") for n in (1, 2)]
    fork = {"older fork": before, "unrelated history": None}.get(what, start)
    two = branch_writing(repo, "two", fork, second)
    expected, _ = chain(repo, start, [one, *others, two], quick=False)
    found, count = chain(repo, start, [one, *others, two], quick=True)
    assert found == expected
    assert count == 3  # all but the last


def branch_writing(repo: Path, name: str, base: str | None, path: str | None) -> Candidate:
    """A branch from `base` (None: an orphan branch) that writes `path` (None: removes c/)."""
    if base is None:
        git(repo, "switch", "-q", "--orphan", name)
    else:
        git(repo, "switch", "-q", "-c", name, base)
    if path is None:
        shutil.rmtree(repo / "c")  # a folder the other side adds to: a rename, maybe
    else:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(f"{name}\n")
    head = commit_all(repo, name)
    git(repo, "switch", "-q", "main")
    return Candidate(name, name, base or head, head, f"{name}\n")
