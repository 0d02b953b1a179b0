"""Copy-on-write worktrees: a subtask's worktree is a kernel overlay whose read-only lower layer
is one checkout of its base commit, shared by every worktree made from that commit, and whose
upper layer holds only what changed. Making one costs what its base differs from the shared
checkout, not the tree's size, and the commit reads the upper layer instead of the tree.

On disk, under the repository's `.orchestrate/`:

    lower/<commit>/tree     the checkout of <commit> (never written once made)
    lower/<commit>/index    its index, with the stat data of `tree`'s files
    overlay/<spec>/<name>/  upper/ and work/ of the worktree `worktrees/<spec>/<name>`, and
                            `base`: the commit of its lower layer

The worktree itself stays an ordinary git worktree (`git worktree add --no-checkout`, its
branch, admin folder and `.git` file); its index starts as a copy of the lower's, and the
overlay reports a lower file's inode, size and times unchanged, so `git status` inside sees a
clean tree. The `.git` file is copied into the upper layer before the mount, so it exists
whether the overlay is mounted or not (`git worktree prune` never forgets a mounted one). A
worktree found unmounted (a reboot, a killed build) holds no files: it is removed and made
again, like any damaged worktree.

Mounts live in the host's mount namespace, so the coordinator, the conflict radar, resolution
rounds, the sandbox's bind of the worktree and the user all see the same worktree. A build
killed with SIGKILL leaves its mounts; the next build, `orchestrate reset` and `orchestrate
clean` unmount the stale ones (`recover`, `unmount_under`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from orchestrator import names
from orchestrator.door.mounts import (
    mount_overlay,
    overlay_mounts,
    safe_for_options,
    unmount,
)
from orchestrator.errors import UsageError

MODES = ("auto", "overlay", "worktree")
LOWER = "lower"
STATE = "overlay"
BASE_FILE = "base"
KEEP_UNUSED_LOWERS = 1  # the newest lower nothing mounts stays for the next phase or build
RECENT_S = 120.0  # a lower chosen this recently may be about to be mounted: never collected
WHITEOUT = (0, 0)
WHOLE_DIR_XATTRS = ("trusted.overlay.opaque", "trusted.overlay.redirect")
_probed: dict[Path, str | None] = {}


def lower_root(repo: Path) -> Path:
    return repo / names.PRIVATE_DIR / LOWER


def state_root(repo: Path) -> Path:
    return repo / names.PRIVATE_DIR / STATE


def state_dir(repo: Path, worktree: Path) -> Path:
    """`overlay/<spec>/<name>` for the worktree `worktrees/<spec>/<name>`."""
    return state_root(repo) / worktree.relative_to(names.worktree_root(repo))


# ---- whether to use overlays ------------------------------------------------------------


def unavailable(repo: Path) -> str | None:
    """Why an overlay cannot be mounted for `repo`'s worktrees, or None when it can (tried
    once per process: a throwaway overlay mounted and unmounted under `.orchestrate/`)."""
    repo = repo.resolve()
    if repo not in _probed:
        _probed[repo] = _probe(repo)
    return _probed[repo]


def _probe(repo: Path) -> str | None:
    private = repo / names.PRIVATE_DIR
    if not safe_for_options(private):
        return f"the repository's path {repo} has a character overlay options cannot hold"
    if os.geteuid() != 0 and not _has_cap_sys_admin():
        return "mounting needs root (CAP_SYS_ADMIN)"
    probe = state_root(repo) / f".probe-{os.getpid()}"
    made = [folder for folder in (private, state_root(repo)) if not folder.exists()]
    try:
        for part in ("lower", "upper", "work", "mnt"):
            (probe / part).mkdir(parents=True, exist_ok=True)
        mount_overlay(probe / "lower", probe / "upper", probe / "work", probe / "mnt")
        unmount(probe / "mnt")
    except OSError as exc:
        return f"the kernel refused an overlay mount ({exc.strerror or exc})"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
        for folder in reversed(made):  # no trace of the probe
            with contextlib.suppress(OSError):
                folder.rmdir()
    return None


def _has_cap_sys_admin() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 21))
    except (OSError, ValueError):
        pass
    return False


def uses_overlay(repo: Path, mode: str) -> bool:
    """The workspace kind of a build: `worktree` never, `overlay` always (a clear error where
    it cannot be mounted), `auto` where it can."""
    if mode == "worktree":
        return False
    reason = unavailable(repo)
    if reason is not None and mode == "overlay":
        raise UsageError(f"workspace = overlay, but {reason}",
                         "Use `workspace = auto` (overlays where they can be mounted) or "
                         "`workspace = worktree` in orchestrate.toml, or "
                         "ORCHESTRATE_WORKSPACE=auto.")
    return reason is None


# ---- lower layers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Lower:
    commit: str
    tree: Path
    index: Path


def existing_lower(repo: Path, commit: str) -> Lower | None:
    folder = lower_root(repo) / commit
    if not (folder / "index").is_file():
        return None
    touch(folder)
    return Lower(commit, folder / "tree", folder / "index")


def lowers_of(repo: Path) -> list[Lower]:
    """Every complete lower layer, the most recently used first."""
    try:
        folders = [f for f in lower_root(repo).iterdir()
                   if not f.name.startswith(".") and (f / "index").is_file()]
    except FileNotFoundError:
        return []
    folders.sort(key=_mtime, reverse=True)
    return [Lower(f.name, f / "tree", f / "index") for f in folders]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def touch(folder: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(folder)


# ---- mounting ---------------------------------------------------------------------------


def mount_worktree(repo: Path, worktree: Path, admin: Path, lower: Lower) -> None:
    """Mount the overlay of `lower` at `worktree`, a worktree just added without checkout:
    its `.git` file copied into a fresh upper layer, its index the lower's."""
    state = state_dir(repo, worktree)
    shutil.rmtree(state, ignore_errors=True)
    (state / "upper").mkdir(parents=True)
    (state / "work").mkdir()
    shutil.copyfile(worktree / ".git", state / "upper" / ".git")
    (state / BASE_FILE).write_text(lower.commit + "\n")
    _link_or_copy(lower.index, admin / "index.lower-copy")
    os.replace(admin / "index.lower-copy", admin / "index")
    touch(lower.tree.parent)
    mount_overlay(lower.tree, state / "upper", state / "work", worktree)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where it can be (git never writes an index in place: it writes a new file
    and renames it over, so the shared one stays as it is), else a copy."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def mounted(worktree: Path) -> bool:
    """Whether an overlay is mounted at `worktree`."""
    target = _absolute(worktree)
    return any(m.target == target for m in overlay_mounts())


def unmount_worktree(repo: Path, worktree: Path) -> bool:
    """Unmount every overlay at `worktree` and drop its upper layer; whether one was mounted."""
    found = unmount_all_at(worktree)
    shutil.rmtree(state_dir(repo, worktree), ignore_errors=True)
    return found


def unmount_all_at(worktree: Path) -> bool:
    target = _absolute(worktree)
    found = False
    for _ in range(8):  # stacked mounts come off one at a time
        if not any(m.target == target for m in overlay_mounts()) or not unmount(target):
            break
        found = True
    return found


def unmount_under(folder: Path) -> list[Path]:
    """Unmount every overlay mounted at or below `folder` (the deepest first)."""
    top = _absolute(folder)
    targets = sorted({m.target for m in overlay_mounts()
                      if m.target == top or m.target.is_relative_to(top)},
                     key=lambda p: len(p.parts), reverse=True)
    return [target for target in targets if unmount_all_at(target)]


@contextlib.contextmanager
def unmounted_on_exit(folder: str | Path) -> Iterator[Path]:
    """For scratch folders (benchmarks, tests): unmount every overlay a build left mounted
    below `folder` (kept or failed worktrees) when the block ends, so it can be deleted."""
    try:
        yield Path(folder)
    finally:
        unmount_under(Path(folder))


def _absolute(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return Path(os.path.abspath(path))


# ---- recovery and collection ------------------------------------------------------------


def recover(repo: Path, spec: str, registered: set[Path]) -> list[Path]:
    """After a killed build: unmount the spec's stale overlays (mounted at a path that is no
    longer a registered worktree, stacked, or with an upper layer that is not its own), drop
    upper layers nothing mounts, and collect unused lower layers. The unmounted paths."""
    root = names.worktree_root(repo).resolve()
    spec_root, pool = root / spec, root / names.POOL
    registered = {_absolute(p) for p in registered}
    mounts = overlay_mounts()
    stale: list[Path] = []
    for target in {m.target for m in mounts}:
        if not (target.is_relative_to(spec_root) or target.is_relative_to(pool)):
            continue
        here = [m for m in mounts if m.target == target]
        own_upper = state_dir(repo.resolve(), target) / "upper" if target.is_relative_to(
            spec_root) else None
        broken = target not in registered or len(here) > 1 or here[0].upper != own_upper
        if broken and unmount_all_at(target):
            stale.append(target)
    _drop_unmounted_state(repo, spec)
    collect_lowers(repo)
    return stale


def _drop_unmounted_state(repo: Path, spec: str) -> None:
    spec_state = state_root(repo) / spec
    if not spec_state.is_dir():
        return
    uppers = {m.upper for m in overlay_mounts()}
    for folder in spec_state.iterdir():
        if folder.resolve() / "upper" not in uppers:
            shutil.rmtree(folder, ignore_errors=True)


def collect_lowers(repo: Path, keep: int = KEEP_UNUSED_LOWERS,
                   grace_s: float = RECENT_S) -> list[str]:
    """Remove the lower layers no overlay mounts, but the `keep` most recently used, and
    half-made ones; never one chosen in the last `grace_s` seconds. The commits removed."""
    root = lower_root(repo)
    if not root.is_dir():
        return []
    with FileLock(str(root / ".lock")):
        used = {lower.parent.parent for m in overlay_mounts() for lower in m.lower}
        removed: list[str] = []
        now = time.time()
        unused = [lower for lower in lowers_of(repo) if lower.tree.parent.resolve() not in used]
        for lower in unused[keep:]:
            if now - _mtime(lower.tree.parent) >= grace_s:
                remove_folder(lower.tree.parent)
                removed.append(lower.commit)
        for half in [*root.glob(".tmp-*"), *root.glob(".trash-*")]:
            pid = half.name.rsplit("-", 1)[-1]
            if not (pid.isdigit() and _alive(int(pid))):
                remove_folder(half)
    return removed


def _alive(pid: int) -> bool:
    return pid == os.getpid() or Path(f"/proc/{pid}").exists()


def remove_folder(folder: Path) -> None:
    """Out of the way at once (renamed), then deleted."""
    trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}")
    try:
        os.rename(folder, trash)
    except OSError:
        trash = folder
    shutil.rmtree(trash, ignore_errors=True)


# ---- what changed -----------------------------------------------------------------------


@dataclass
class Changes:
    """What an overlay worktree's upper layer says changed since its lower layer's commit."""

    base: str
    lower_index: Path | None = None  # the index of the lower layer's checkout of `base`
    # the worktree's index is still the lower's (no git command of the agent rewrote it)
    index_untouched: bool = False
    written: list[str] = field(default_factory=list)  # files and links, new or changed
    removed: list[str] = field(default_factory=list)  # whiteouts: a file or folder deleted
    replaced: list[str] = field(default_factory=list)  # folders whose lower content is hidden
    nested_git: list[str] = field(default_factory=list)  # new folders holding a `.git`


def changes(worktree: Path) -> Changes | None:
    """The changes in `worktree`'s upper layer, or None when it is not one of our overlays
    (the caller then scans the whole tree)."""
    target = _absolute(worktree)
    here = [m for m in overlay_mounts() if m.target == target]
    if not here or here[-1].upper is None:
        return None
    upper = here[-1].upper
    try:
        base = (upper.parent / BASE_FILE).read_text().strip()
    except OSError:
        return None
    lower_index = here[-1].lower[0].parent / "index" if here[-1].lower else None
    found = Changes(base, lower_index, _same_file(_index_of(upper / ".git"), lower_index))
    for kind, path in _walk(upper):
        getattr(found, kind).append(path)
    return found


def _index_of(git_file: Path) -> Path | None:
    """The index of the worktree whose `.git` file is `git_file`."""
    try:
        pointer = git_file.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    if not pointer.startswith("gitdir: "):
        return None
    return Path(pointer.removeprefix("gitdir: ").strip()) / "index"


def _same_file(one: Path | None, other: Path | None) -> bool:
    if one is None or other is None:
        return False
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def _walk(upper: Path) -> Iterator[tuple[str, str]]:
    stack = [""]
    while stack:
        relative = stack.pop()
        try:
            entries = list(os.scandir(upper / relative if relative else upper))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if not relative and entry.name in (".git", *names.PRIVATE_DIRS):
                continue  # our copy of the worktree's .git file; what is never committed
            if entry.name == ".git":
                yield "nested_git", relative
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISCHR(info.st_mode) and (os.major(info.st_rdev),
                                                os.minor(info.st_rdev)) == WHITEOUT:
                yield "removed", path
            elif stat.S_ISDIR(info.st_mode):
                if _whole_dir(entry.path):
                    yield "replaced", path
                stack.append(path)
            else:
                yield "written", path


def _whole_dir(path: str) -> bool:
    try:
        present = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return False
    return any(name in present for name in WHOLE_DIR_XATTRS)
