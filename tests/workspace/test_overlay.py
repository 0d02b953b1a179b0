"""Copy-on-write worktrees (workspace/overlay.py): a real overlay mounted at a real worktree of a
real repository, in this process. The worktree is an ordinary git worktree (`git status` is
clean, `git diff` empty); its upper layer lists exactly what changed; the commit made from that
list is the commit `git add --all` makes in a plain worktree with the same edits.

Skipped, saying why, where the kernel refuses overlay mounts (not root, no CAP_SYS_ADMIN)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import names
from orchestrator.door.mounts import overlay_mounts
from orchestrator.workspace import lowers, overlay
from orchestrator.workspace.commit import commit_work
from orchestrator.workspace.guards import nested_repository_problem
from orchestrator.workspace.worktrees import Worktrees
from tests.conftest import commit_all, git


def _why_not() -> str | None:
    probe = Path(tempfile.mkdtemp(prefix="orchestrate-overlay-probe-"))
    try:
        return overlay.unavailable(probe)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


WHY_NOT = _why_not()
pytestmark = pytest.mark.skipif(WHY_NOT is not None,
                                reason=f"overlay worktrees cannot be mounted here: {WHY_NOT}")
SPEC = "001-cow"
BRANCH = f"orchestrate/{SPEC}/s1"
MESSAGE = "s1: edit\n"


def populated(repo: Path) -> str:
    """A tree with folders to delete, replace and rename, a link and an ignored folder."""
    for folder in ("gone", "kept", "swap", "moved", "deep/er"):
        (repo / folder).mkdir(parents=True, exist_ok=True)
        for n in range(3):
            (repo / folder / f"f{n}.txt").write_text(f"{folder} {n}\n")
    (repo / "link").symlink_to("README.md")
    (repo / ".gitignore").write_text("build/\n*.log\n")
    (repo / "tracked.log").write_text("tracked although ignored\n")
    git(repo, "add", "-f", "tracked.log")
    return commit_all(repo, "tree")


def edit(tree: Path) -> None:
    """What an agent might do to a worktree: every kind of change an upper layer can hold."""
    (tree / "README.md").write_text("# changed\n")
    (tree / "new.txt").write_text("new\n")
    (tree / "kept" / "f1.txt").unlink()
    shutil.rmtree(tree / "gone")
    shutil.rmtree(tree / "swap")
    (tree / "swap").mkdir()
    (tree / "swap" / "other.txt").write_text("other\n")
    shutil.move(tree / "moved", tree / "renamed")
    (tree / "link").unlink()
    (tree / "link").symlink_to("new.txt")
    (tree / "deep" / "er" / "f0.txt").write_text("deeper\n")
    os.chmod(tree / "deep" / "er" / "f2.txt", 0o755)
    (tree / "build").mkdir()
    (tree / "build" / "out.o").write_text("ignored\n")
    (tree / "debug.log").write_text("ignored\n")
    (tree / "tracked.log").write_text("changed and tracked\n")
    (tree / names.PRIVATE_DIR).mkdir()
    (tree / names.PRIVATE_DIR / "x").write_text("never committed\n")


async def held(repo: Path, subtask: str = "s1", start: str = "HEAD") -> tuple[Worktrees, Path]:
    worktrees = Worktrees(repo, SPEC, workspace="overlay")
    await worktrees.exclude_orchestrate_dir()
    path = worktrees.path_for(subtask)
    async with worktrees.hold(subtask, f"orchestrate/{SPEC}/{subtask}", start):
        pass
    return worktrees, path


def expected_tree(repo: Path, base: str, change: Callable[[Path], None], tmp: Path) -> str:
    """The tree `git add --all` commits after `change` in a plain worktree at `base`."""
    plain = tmp / "plain"
    git(repo, "worktree", "add", "-q", "--detach", str(plain), base)
    change(plain)
    shutil.rmtree(plain / names.PRIVATE_DIR)
    git(plain, "add", "--all")
    return git(plain, "write-tree")


async def test_a_fresh_overlay_worktree_is_a_clean_git_worktree(repo: Path) -> None:
    base = populated(repo)
    worktrees, path = await held(repo)
    assert worktrees.kind == "overlay"
    assert overlay.mounted(path)
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(path, "diff", "HEAD") == ""
    assert git(path, "rev-parse", "HEAD") == base
    assert git(path, "symbolic-ref", "HEAD") == f"refs/heads/{BRANCH}"
    assert (path / "kept" / "f2.txt").read_text() == "kept 2\n"
    upper = overlay.state_dir(repo, path) / "upper"
    assert sorted(p.name for p in upper.iterdir()) == [".git"]  # nothing was written


async def test_the_upper_layer_lists_what_changed(repo: Path) -> None:
    populated(repo)
    _, path = await held(repo)
    edit(path)
    found = overlay.changes(path)
    assert found is not None
    assert set(found.removed) == {"kept/f1.txt", "gone", "moved"}
    assert set(found.replaced) == {"swap"}
    assert {"README.md", "new.txt", "swap/other.txt", "link",
            *(f"renamed/f{n}.txt" for n in range(3)),
            "deep/er/f0.txt", "deep/er/f2.txt", "build/out.o", "debug.log",
            "tracked.log"} == set(found.written)
    assert found.nested_git == []
    assert found.index_untouched  # still the shared index: no agent's flag or staging to read
    git(path, "add", "new.txt")
    assert not overlay.changes(path).index_untouched  # type: ignore[union-attr]


async def test_the_commit_from_the_upper_layer_is_git_add_alls(repo: Path,
                                                               tmp_path: Path) -> None:
    base = populated(repo)
    _, path = await held(repo)
    edit(path)
    head = await commit_work(path, MESSAGE, (".env",))
    assert git(repo, "rev-parse", f"{head}^") == base
    assert git(repo, "rev-parse", f"{head}^{{tree}}") == expected_tree(repo, base, edit, tmp_path)
    assert git(path, "status", "--porcelain") == ""
    assert git(repo, "rev-parse", BRANCH) == head


@pytest.mark.parametrize("files", [
    3, pytest.param(lowers.DATED_AHEAD_FROM, marks=pytest.mark.slow)])
async def test_an_edit_of_the_same_size_at_once_after_the_checkout_is_committed(
        repo: Path, files: int) -> None:
    # a large shared checkout's index is dated a second after its files (no entry racily
    # clean); a worktree handed out before that second came could get an edit git takes for
    # unchanged (same size, second and inode). A small one keeps git's own racy check.
    for n in range(files - 1):
        (repo / f"f{n // 100}").mkdir(exist_ok=True)
        (repo / f"f{n // 100}" / f"{n}.txt").write_text(f"{n}\n")
    (repo / "app.py").write_text("line 3\n")
    base = commit_all(repo, "app")
    _, path = await held(repo)
    (path / "app.py").write_text("second\n")  # in place: the overlay keeps the inode number
    head = await commit_work(path, MESSAGE, ())
    assert git(repo, "rev-parse", f"{head}^") == base
    assert git(repo, "show", f"{head}:app.py") == "second"
    shared = overlay.lower_root(repo) / base
    newest = max(int(f.lstat().st_mtime) for f in (shared / "tree").rglob("*"))
    dated_ahead = int((shared / "index").stat().st_mtime) > newest
    assert dated_ahead == (files >= lowers.DATED_AHEAD_FROM)


async def test_commits_and_staging_the_agent_did_itself_are_kept(repo: Path,
                                                                 tmp_path: Path) -> None:
    base = populated(repo)
    _, path = await held(repo)

    def agent(tree: Path) -> None:
        (tree / "a.txt").write_text("committed by the agent\n")
        git(tree, "add", "a.txt")
        git(tree, "commit", "-qm", "agent's own")
        (tree / "b.txt").write_text("staged\n")
        git(tree, "add", "b.txt")
        git(tree, "rm", "-q", "--cached", "kept/f0.txt")  # untracked now, still in the tree
        (tree / "c.txt").write_text("left\n")
        git(tree, "update-index", "--skip-worktree", "kept/f2.txt")  # edits git add skips
        (tree / "kept" / "f2.txt").write_text("hidden\n")
        git(tree, "update-index", "--assume-unchanged", "deep/er/f1.txt")
        (tree / "deep" / "er" / "f1.txt").write_text("hidden too\n")

    agent(path)
    own = git(path, "rev-parse", "HEAD")
    head = await commit_work(path, MESSAGE, ())
    assert git(repo, "rev-parse", f"{head}^") == own != base
    plain = tmp_path / "plain"
    git(repo, "worktree", "add", "-q", "--detach", str(plain), base)
    agent(plain)
    git(plain, "add", "--all")
    assert git(repo, "rev-parse", f"{head}^{{tree}}") == git(plain, "write-tree")


async def test_copied_files_and_private_folders_are_never_committed(repo: Path) -> None:
    base = populated(repo)
    _, path = await held(repo)
    (path / ".env").write_text("SECRET=1\n")
    (path / ".auto-claude").mkdir()
    (path / ".auto-claude" / "notes").write_text("x\n")
    (path / names.PRIVATE_DIR).mkdir()
    (path / names.PRIVATE_DIR / "y").write_text("x\n")
    assert await commit_work(path, MESSAGE, (".env",)) == base  # nothing that belongs


async def test_a_nested_repository_in_the_upper_layer_is_found(repo: Path) -> None:
    populated(repo)
    _, path = await held(repo)
    assert await nested_repository_problem(path) is None
    (path / "vendor").mkdir()
    git(path / "vendor", "init", "-q")
    problem = await nested_repository_problem(path)
    assert problem is not None
    assert "'vendor/'" in problem


async def test_a_worktree_at_another_commit_shares_the_lower_layer(repo: Path) -> None:
    base = populated(repo)
    worktrees, first = await held(repo, "s1", base)
    (repo / "README.md").write_text("# moved on\n")
    (repo / "kept" / "f0.txt").unlink()
    later = commit_all(repo, "later")
    async with worktrees.hold_detached("check-x", later) as checked:
        assert git(checked, "rev-parse", "HEAD") == later
        assert git(checked, "status", "--porcelain", "--untracked-files=all") == ""
        assert (checked / "README.md").read_text() == "# moved on\n"
        assert not (checked / "kept" / "f0.txt").exists()
        lowers = [m.lower for m in overlay_mounts() if m.target in (first.resolve(),
                                                                     checked.resolve())]
        assert len(lowers) == 2
        assert lowers[0] == lowers[1]
    assert not overlay.mounted(checked)  # released: unmounted and removed
    assert not checked.exists()


async def test_a_released_overlay_worktree_is_unmounted_and_removed(repo: Path) -> None:
    populated(repo)
    worktrees, path = await held(repo)
    (path / "new.txt").write_text("x\n")
    await commit_work(path, MESSAGE, ())
    await worktrees.release("s1", keep=False)
    assert not overlay.mounted(path)
    assert not path.exists()
    assert not overlay.state_dir(repo, path).exists()
    assert BRANCH in git(repo, "branch", "--list", BRANCH)
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


async def test_an_unmounted_overlay_worktree_is_made_again(repo: Path) -> None:
    """After a reboot (or an unmount behind orchestrate's back) the folder holds only the
    `.git` file: the next hold makes the worktree again instead of checking out in full."""
    populated(repo)
    worktrees, path = await held(repo)
    overlay.unmount_all_at(path)
    assert sorted(p.name for p in path.iterdir()) == [".git"]
    async with worktrees.hold("s1", BRANCH, "HEAD"):
        assert overlay.mounted(path)
        assert git(path, "status", "--porcelain") == ""


async def test_recovery_unmounts_stale_and_stacked_overlays(repo: Path) -> None:
    populated(repo)
    worktrees, path = await held(repo)
    stray = worktrees.path_for("stray")
    stray.mkdir(parents=True)
    lower = overlay_mounts()[-1].lower[0]
    state = overlay.state_dir(repo, stray)
    for part in ("upper", "work"):
        (state / part).mkdir(parents=True)
    from orchestrator.door.mounts import mount_overlay

    mount_overlay(lower, state / "upper", state / "work", stray)  # no worktree of git's
    assert await worktrees.recover() == [stray.resolve()]
    assert overlay.mounted(path)  # a good one stays
    assert not overlay.mounted(stray)
    assert not state.exists()


async def test_plain_worktrees_when_asked(repo: Path) -> None:
    populated(repo)
    worktrees = Worktrees(repo, SPEC, workspace="worktree")
    async with worktrees.hold("s1", BRANCH, "HEAD") as path:
        assert not overlay.mounted(path)
        assert worktrees.kind == "worktree"
        assert (path / "kept" / "f0.txt").exists()
    assert not (repo / names.PRIVATE_DIR / overlay.LOWER).exists()


async def test_the_radar_reads_an_overlay_worktree_by_its_upper_layer(repo: Path,
                                                                      tmp_path: Path) -> None:
    from orchestrator.stage.radar_reads import WorktreeReader

    first = populated(repo)
    worktrees, _ = await held(repo, "s1", first)  # the shared checkout is of `first`
    (repo / "kept" / "f0.txt").write_text("moved on\n")
    base = commit_all(repo, "later")  # a few files away: the same shared checkout serves
    async with worktrees.hold("s2", f"orchestrate/{SPEC}/s2", base) as path:
        assert overlay.changes(path).base == first  # type: ignore[union-attr]
        reader = WorktreeReader(path, base, tmp_path / "private.index", copied=(".env",))
        assert await reader.changes() == {}
        (path / "README.md").write_text("# changed\n")
        (path / "new.txt").write_text("a\n")
        (path / ".env").write_text("SECRET=1\n")
        (path / "gone" / "f0.txt").unlink()
        (path / "kept" / "f0.txt").write_text("kept 0\n")  # back to the lower's content
        assert await reader.changes() == {"README.md": "M", "new.txt": "A",
                                          "gone/f0.txt": "D", "kept/f0.txt": "M"}
        assert reader.lower_moves == ("kept/f0.txt",)  # read by the upper layer's paths
        await reader.close()


async def test_the_radar_reads_against_the_shared_index_and_never_writes_it(
        repo: Path, tmp_path: Path) -> None:
    from orchestrator.stage.radar_reads import WorktreeReader

    base = populated(repo)
    _, path = await held(repo, "s1", base)
    shared = overlay.lower_root(repo) / base / "index"
    before = shared.read_bytes()
    reader = WorktreeReader(path, base, tmp_path / "private.index")
    (path / "README.md").write_text("# changed\n")
    (path / "kept" / "f1.txt").unlink()
    assert await reader.changes() == {"README.md": "M", "kept/f1.txt": "D"}
    assert reader.shared_index == shared
    assert not (tmp_path / "private.index").exists()  # no private copy was needed
    git(path, "add", "-A")  # the agent's own index moves on; the shared one does not
    assert await reader.changes() == {"README.md": "M", "kept/f1.txt": "D"}
    assert shared.read_bytes() == before
    await reader.close()
    assert shared.exists()
