"""The process door, synchronous flavour: the one place (with its trio twin
orchestrator/processes.py) that starts child processes, signals process groups, and parses
what git prints.

It lives in merge/ because merge/ is plain synchronous code that may import neither trio nor
anything of orchestrator/; orchestrator/processes.py builds the trio flavour on the same
environment, errors and parsers.

Every error carries the command, exit code, stdout and stderr. The environment is cleaned of
variables that would point git at another repository, and git never prompts.

Every git command is hardened against what an agent could have planted in the shared `.git`,
its worktree or the user's home: no hook and no fsmonitor ever run (`git push` alone keeps the
user's hooks, so git-lfs uploads), and a clean/smudge filter, textconv or external diff driver
that was not configured when orchestrate first looked at the repository is switched off
(`pin_git_config` takes that look again at the start of a build).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tempfile import TemporaryDirectory

_LEAKY_VARS = ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY",
               "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX",
               "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES")
# A compare-and-swap that lost ("cannot lock ref ...: is at X but expected Y") is not
# contention: the same command would fail again, so it is not retried. Another process's
# `git worktree add` in progress shows as a worktree whose admin files are not written yet.
_LOCK_CONTENTION = re.compile(r"Unable to create '.*\.lock': File exists|cannot lock ref .*"
                              r"Unable to create|index\.lock|"
                              r"failed to read .*worktrees/[^/\n]+/(?:commondir|gitdir|HEAD)")
LOCK_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


class GitError(Exception):
    def __init__(self, args: tuple[str, ...], cwd: Path, result: GitResult) -> None:
        super().__init__(args, result.returncode)
        self.args_ = args
        self.cwd = cwd
        self.result = result

    def __str__(self) -> str:
        if said := lock_message(self):  # every step stopped by a lock file says the same
            return f"{said[0]}. {said[1]}"
        parts = [f"`git {' '.join(self.args_)}` failed with exit code {self.result.returncode} "
                 f"(in {self.cwd})"]
        if self.result.stderr.strip():
            parts.append("stderr: " + _clip(self.result.stderr))
        if self.result.stdout.strip():
            parts.append("stdout: " + _clip(self.result.stdout))
        return "\n".join(parts)


def _clip(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " [...]"


def child_env(extra: Mapping[str, str] | None = None, *,
              hidden: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment without the `hidden` variables, with `extra` on top: the
    one way every child's environment is made."""
    drop = frozenset(hidden)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if extra:
        env.update(extra)
    return env


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = child_env({"GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true",
                     "GIT_MERGE_AUTOEDIT": "no", "LC_ALL": "C"}, hidden=_LEAKY_VARS)
    if extra:
        env.update(extra)
    return env


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def is_lock_contention(result: GitResult) -> bool:
    return result.returncode != 0 and bool(_LOCK_CONTENTION.search(result.stderr))


def run_git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> GitResult:
    """Run `git ARGS` in `cwd` (hardened), retrying briefly when another git holds one of its
    lock files."""
    check_worktree(cwd, args)
    overrides: tuple[str, ...] = ()
    if may_run_drivers(args):
        listing = run_command(["git", *HOOKLESS, *DRIVER_QUERY], cwd, env=git_env(env))
        overrides = untrusted_driver_overrides(cwd, listing, args)
    argv = hardened_argv(args, overrides)
    for delay in (*LOCK_RETRIES, None):
        result = run_command(argv, cwd, input=input, env=git_env(env))
        if delay is None or not is_lock_contention(result):
            break
        time.sleep(delay)
    if check and result.returncode != 0:
        raise GitError(args, cwd, result)
    return result


def run_command(argv: Sequence[str], cwd: Path, *, input: bytes | None = None,
                env: Mapping[str, str] | None = None) -> GitResult:
    """Run a program to completion with its output captured (never through a shell)."""
    done = subprocess.run(list(argv), cwd=cwd, input=input or b"", capture_output=True,
                          env=None if env is None else dict(env), check=False)
    return GitResult(done.returncode, decode(done.stdout), decode(done.stderr))


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The commit `rev` names, or None when it names none (`rev-parse --verify --quiet`)."""
    found = run_git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options",
                    rev + "^{commit}", check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def rev_parse(repo: Path, rev: str) -> str:
    """The commit `rev` names; GitError when it names none."""
    return run_git(repo, "rev-parse", "--verify", "--end-of-options",
                   rev + "^{commit}").stdout.strip()


@dataclass(frozen=True)
class WorktreeEntry:
    path: Path
    branch: str | None  # the full ref (refs/heads/...), None when detached


WORKTREE_LIST = ("worktree", "list", "--porcelain", "-z")


def parse_worktree_list(listing: str) -> list[WorktreeEntry]:
    """The worktrees in the output of `git worktree list --porcelain -z`, main one first."""
    found: list[WorktreeEntry] = []
    path: Path | None = None
    branch: str | None = None
    for line in listing.split("\0"):
        if line.startswith("worktree "):
            path, branch = Path(line[len("worktree "):]), None
        elif line.startswith("branch "):
            branch = line[len("branch "):]
        elif not line and path is not None:
            found.append(WorktreeEntry(path, branch))
            path = None
    return found


def list_worktrees(repo: Path) -> list[WorktreeEntry]:
    return parse_worktree_list(run_git(repo, *WORKTREE_LIST).stdout)


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid`; False when there is no such group (or not ours)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_self() -> None:
    """SIGKILL this process: no `finally`, no atexit, no flush (the failpoints' power cut)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(os.getpid(), signal.SIGKILL)


def run_attached(command: str, *, input: bytes, env: Mapping[str, str]) -> int | None:
    """Run `command` through the shell with this process's terminal as its output (a pager,
    as git runs one); its exit code, or None when it could not be started."""
    try:
        return subprocess.run(command, shell=True, input=input, env=dict(env),
                              check=False).returncode
    except OSError:
        return None


class CommitWriter:
    """Writes commit objects as `git commit-tree --no-gpg-sign` would, through one
    `git hash-object -w -t commit --stdin-paths` process for a whole chain of merges instead
    of one process per commit (git flushes each id as soon as the object is written).

    The author and committer are git's own (`git var`: the GIT_AUTHOR_* / GIT_COMMITTER_*
    variables, else the configuration), read once. Where a commit encoding other than UTF-8
    is configured, or git cannot name an identity, every commit goes through commit-tree."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: TemporaryDirectory[str] | None = None
        self._header: str | None = None
        self._count = 0

    def __enter__(self) -> CommitWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def commit(self, tree: str, parents: Sequence[str], message: str) -> str:
        if self._header is None:
            self._header = _identity_header(self.repo)
        if not self._header:
            args = ["commit-tree", "--no-gpg-sign", tree]
            for parent in parents:
                args += ["-p", parent]
            return run_git(self.repo, *args, input=message.encode()).stdout.strip()
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents), self._header, "", ""]
        return self._write("\n".join(lines).encode() + message.encode())

    def _write(self, content: bytes) -> str:
        if self._process is None:
            from tempfile import TemporaryDirectory  # here: tempfile loads shutil, bz2, lzma

            self._folder = TemporaryDirectory(prefix="orchestrate-commits-")
            self._process = subprocess.Popen(
                ["git", *HOOKLESS, "hash-object", "-w", "-t", "commit", "--stdin-paths",
                 "--no-filters"],
                cwd=self.repo, env=git_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
        assert self._folder is not None
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._count += 1
        path = Path(self._folder.name, f"commit-{self._count}")
        path.write_bytes(content)
        try:
            self._process.stdin.write(os.fsencode(path) + b"\n")
            self._process.stdin.flush()
            written = self._process.stdout.readline().decode().strip()
        except OSError:
            written = ""
        if not written:
            raise GitError(("hash-object", "-w", "-t", "commit", "--stdin-paths"), self.repo,
                           GitResult(self._stop(), "", self._stderr()))
        return written

    def _stderr(self) -> str:
        pipe = self._process.stderr if self._process else None
        return decode(pipe.read()) if pipe else ""

    def _stop(self) -> int:
        process, self._process = self._process, None
        return 0 if process is None else _end(process)

    def close(self) -> None:
        self._stop()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


class BatchGit:
    """One long-lived `git ARGS` (hardened, no driver can run in it: `cat-file --batch`,
    `mktree --batch`) that answers each request on stdout as soon as it is read."""

    def __init__(self, repo: Path, *args: str) -> None:
        self.repo, self.args = repo, args
        self._process: subprocess.Popen[bytes] | None = None

    def ask(self, request: bytes) -> bytes:
        """Send `request`; return the first line of the answer (without its newline)."""
        process = self._started()
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(request)
            process.stdin.flush()
            line = process.stdout.readline()
        except OSError:
            line = b""
        if not line.endswith(b"\n"):
            raise GitError(self.args, self.repo, GitResult(self.close(), "", ""))
        return line[:-1]

    def read(self, size: int) -> bytes:
        """The next `size` bytes of the answer (and the newline after them)."""
        process = self._started()
        assert process.stdout is not None
        data = process.stdout.read(size + 1)
        if len(data) != size + 1:
            raise GitError(self.args, self.repo, GitResult(self.close(), "", ""))
        return data[:size]

    def start(self) -> None:
        """Start git now (it gets ready while the caller does something else)."""
        self._started()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            self._process = subprocess.Popen(hardened_argv(self.args), cwd=self.repo,
                                             env=git_env(), stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL)
        return self._process

    def close(self) -> int:
        process, self._process = self._process, None
        return 0 if process is None else _end(process)


def _end(process: subprocess.Popen[bytes]) -> int:
    """Close a long-lived git's input, wait for it (killed after 30 s), close its output."""
    if process.stdin:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe:
            pipe.close()
    return code


def _identity_header(repo: Path) -> str:
    """The author and committer lines of a commit made now, or "" where this writer must
    leave the commit to commit-tree."""
    found = run_git(repo, "var", "-l", check=False)
    if found.returncode != 0:
        return ""
    values: dict[str, str] = {}
    for line in found.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key.lower(), value)
    encoding = values.get("i18n.commitencoding", "utf-8").lower().replace("-", "")
    author, committer = values.get("git_author_ident"), values.get("git_committer_ident")
    if encoding != "utf8" or not author or not committer:
        return ""
    return f"author {author}\ncommitter {committer}"


# --- hardened git: no hook, no fsmonitor, no filter or driver an agent planted --------------

HOOKLESS = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")
# Subcommands that never read a working tree's content nor generate a patch: no clean/smudge
# filter, textconv or external diff can run in them.
_DRIVERLESS = frozenset({
    "rev-parse", "update-ref", "symbolic-ref", "merge-base", "commit-tree", "rev-list",
    "for-each-ref", "diff-tree", "var", "config", "remote", "ls-remote", "push", "fetch", "init",
    "branch", "merge-tree", "ls-tree", "show-ref", "mktree", "check-ref-format",
    "check-ignore"})
# Not `write-tree`: a command that writes the index compares racily clean entries' files with
# their blobs, through the clean filter.
# Output of `diff` between the index and a tree that lists names only: no blob is compared
# through a textconv, no external diff runs, no working tree file is read.
_NAMES_ONLY = frozenset({"--name-only", "--name-status"})
_GLOBAL_OPTIONS_WITH_VALUE = frozenset({"-c", "-C", "--git-dir", "--work-tree", "--namespace"})
DRIVER_QUERY = ("config", "-z", "--show-origin", "--get-regexp",
                r"^(filter\..+\.(clean|smudge|process|required)|diff\..+\.(textconv|command)|"
                r"merge\..+\.driver|core\.repositoryformatversion)$")
# Commands that merge files with the merge attributes: each driver, git's built-in `union` and
# `binary` included, becomes git's own 3-way text merge (a user driver's name wins over a
# built-in one, and a driver no config names falls back to the built-in text merge).
_MERGING = frozenset({"merge", "cherry-pick", "revert", "rebase", "am", "stash", "checkout",
                      "switch", "apply", "pull"})
_BUILTIN_MERGE = "git merge-file --marker-size=%L -L HEAD -L base -L {theirs} %A %O %B"
# per repository (its config file), the driver settings seen when orchestrate first looked
_trusted: dict[str, frozenset[tuple[str, str]]] = {}


def subcommand(args: Sequence[str]) -> str:
    """The git subcommand in `args`, after git's own global options."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return ""


def may_run_drivers(args: Sequence[str]) -> bool:
    """Whether `git ARGS` could run a clean/smudge filter, textconv or external diff."""
    name = subcommand(args)
    if name == "worktree":
        rest = list(args)[list(args).index("worktree") + 1:]
        return bool(rest) and rest[0] not in ("list", "prune", "lock", "unlock", "move") and \
            not (rest[0] == "remove" and "--force" in rest) and \
            not (rest[0] == "add" and "--no-checkout" in rest)  # no status, no checkout
    if name in ("diff", "diff-index"):
        return not ("--cached" in args and _NAMES_ONLY & set(args))
    return name not in _DRIVERLESS


def hardened_argv(args: Sequence[str], overrides: Sequence[str] = ()) -> list[str]:
    """`git ARGS` with hooks and fsmonitor off (push keeps the user's hooks) and `overrides`."""
    if subcommand(args) == "push":
        return ["git", "-c", "core.fsmonitor=false", *args]
    return ["git", *HOOKLESS, *overrides, *args]


def _parse_driver_listing(cwd: Path, stdout: str) -> tuple[str, list[tuple[str, str]]]:
    """The repository's config file (the key of its trusted set) and the driver settings."""
    home, settings = str(cwd), []
    records = stdout.split("\0")
    for origin, entry in zip(records[0::2], records[1::2], strict=False):
        key, _, value = entry.partition("\n")
        if key == "core.repositoryformatversion":
            place = origin.removeprefix("file:")
            home = str((cwd / place).resolve()) if origin.startswith("file:") else home
        else:
            settings.append((key, value))
    return home, settings


def untrusted_driver_overrides(cwd: Path, listing: GitResult,
                               args: Sequence[str] = ()) -> tuple[str, ...]:
    """`-c` options that switch off every filter and diff driver whose settings differ from
    the ones seen when orchestrate first looked at this repository, and (for a command that
    merges, `args`) every merge driver."""
    if listing.returncode not in (0, 1):
        return ()
    home, settings = _parse_driver_listing(cwd, listing.stdout)
    trusted = _trusted.setdefault(home, frozenset(settings))
    merging = subcommand(args) in _MERGING
    overrides: list[str] = []
    off: set[tuple[str, str]] = set()
    for key, value in settings:
        section, _, rest = key.partition(".")
        name = rest.rpartition(".")[0]
        if (section, name) in off or (section == "merge" and not merging) or (
                section != "merge" and (key, value) in trusted):
            continue
        off.add((section, name))
        overrides += _switched_off(section, name, args)
    if merging:
        for name in ("union", "binary", "text"):
            if ("merge", name) not in off:
                overrides += _switched_off("merge", name, args)
        overrides += ["-c", "merge.default=text"]
    return tuple(overrides)


def _switched_off(section: str, name: str, args: Sequence[str]) -> list[str]:
    if section == "merge":
        # labelled as git labels a `git merge BRANCH`: HEAD and the branch merged
        theirs = next((a for a in reversed(args) if not a.startswith("-")), "theirs")
        return ["-c", f"merge.{name}.driver={_BUILTIN_MERGE.format(theirs=shlex.quote(theirs))}"]
    knobs = ("clean", "smudge", "process") if section == "filter" else ("textconv", "command")
    found = [option for knob in knobs for option in ("-c", f"{section}.{name}.{knob}=")]
    return found + (["-c", f"filter.{name}.required=false"] if section == "filter" else [])


def pin_git_config(repo: Path) -> None:
    """Trust the filter and diff drivers configured now (the start of a build) and no other."""
    listing = run_command(["git", *HOOKLESS, *DRIVER_QUERY], repo, env=git_env())
    if listing.returncode in (0, 1):
        home, settings = _parse_driver_listing(repo, listing.stdout)
        _trusted[home] = frozenset(settings)


@contextlib.contextmanager
def attributeless_git(repo: Path) -> Iterator[dict[str, str]]:
    """An environment in which git sees `repo`'s objects but no attributes, no merge driver
    and no config of the repository, the user or the system: a scratch git dir whose object
    store is `repo`'s. Merges computed there are git's built-in 3-way merge, whatever an agent
    wrote in `.gitattributes`, `info/attributes` or a config file."""
    objects = _object_dir(repo)
    shallow = Path(objects).parent / "shallow"
    with tempfile.TemporaryDirectory(prefix="orchestrate-merge-") as scratch:
        root = Path(scratch)
        (root / "refs").mkdir()
        (root / "HEAD").write_text("ref: refs/heads/main\n")
        (root / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = true\n")
        if shallow.is_file():
            (root / "shallow").write_bytes(shallow.read_bytes())
        yield {"GIT_DIR": scratch, "GIT_OBJECT_DIRECTORY": objects, "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ATTR_NOSYSTEM": "1"}


ATTRIBUTELESS = ("-c", "core.attributesFile=" + os.devnull)
_object_dirs: dict[Path, str] = {}  # per repository: where its objects are (asked once)


def _object_dir(repo: Path) -> str:
    if not os.path.isdir(_object_dirs.get(repo, "")):
        _object_dirs[repo] = run_git(repo, "rev-parse", "--path-format=absolute",
                                     "--git-path", "objects").stdout.strip()
    return _object_dirs[repo]


# --- a worktree is checked before any command runs in it ----------------------------------

# the folders under which every folder is a worktree of orchestrate's (given by orchestrator/)
_guarded_roots: set[Path] = set()


def guard_worktrees(root: Path) -> None:
    """Check every worktree under `root` before any git command runs in it."""
    _guarded_roots.add(root)


def in_private_worktree(cwd: Path) -> bool:
    return any(cwd.is_relative_to(root) and cwd != root for root in _guarded_roots)


def worktree_problem(worktree: Path) -> str | None:
    """Why `worktree`'s `.git` is not a file pointing at its own administrative folder in a
    repository's `worktrees/`, with that folder pointing back at it (git run there would
    work on whatever it points at, e.g. the user's own checkout), or None."""
    dotgit = worktree / ".git"
    try:
        if not worktree.is_dir() or worktree.is_symlink():
            return "the worktree folder is gone or was replaced by a link"
        if dotgit.is_symlink() or not dotgit.is_file():
            return "the worktree's .git is not a file (missing, a folder or a link)"
        text = dotgit.read_text(errors="replace")
        if not text.startswith("gitdir: "):
            return "the worktree's .git file has no `gitdir:` line"
        admin = Path(os.path.normpath(worktree / text[len("gitdir: "):].strip()))
        if admin.is_symlink() or not (admin / "commondir").is_file() or os.path.normpath(
                admin / (admin / "commondir").read_text().strip()) != str(admin.parent.parent):
            return f"the worktree's .git points at {admin}, not at a worktree's own folder"
        back = Path((admin / "gitdir").read_text(errors="replace").strip())
        if os.path.normpath(back) != os.path.normpath(dotgit):
            return f"the worktree's .git points at {admin}, which belongs to {back.parent}"
    except OSError as exc:
        return f"the worktree's .git cannot be read ({exc.strerror})"
    return None


def guarded_worktree_problem(cwd: Path) -> str | None:
    """`worktree_problem` for a folder under a guarded root; None for any other folder."""
    return worktree_problem(cwd) if in_private_worktree(cwd) else None


def check_worktree(cwd: Path, args: Sequence[str]) -> None:
    """Refuse (as a failed git command) to run `git ARGS` in a damaged orchestrate worktree."""
    if in_private_worktree(cwd) and (problem := worktree_problem(cwd)):
        raise GitError(tuple(args), cwd, GitResult(128, "", f"orchestrate: {problem}"))


_LOCK_FILE = re.compile(r"Unable to create '([^'\n]*\.lock)': File exists")


def stale_lock(error: GitError) -> tuple[Path, float] | None:
    """The lock file that made `error` (after every retry) and its age in seconds, or None."""
    found = _LOCK_FILE.search(error.result.stderr)
    if found is None:
        return None
    path = error.cwd / found.group(1)
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        age = 0.0
    return path, age


def lock_message(error: GitError) -> tuple[str, str] | None:
    """A user's message and hint for a git command stopped by a lock file, or None."""
    if (found := stale_lock(error)) is None:
        return None
    path, age = found
    shown = f"{age / 3600:.1f} h" if age >= 3600 else f"{age / 60:.0f} min" if age >= 60 \
        else f"{age:.0f} s"
    return (f"git could not update a ref or index: the lock file {path} exists "
            f"({shown} old)",
            "Another git command may be running in this repository, or one was killed. If no "
            "git is running, delete that file and run the command again.")
