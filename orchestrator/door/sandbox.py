"""The sandbox of one process (bubblewrap): what it may read, write and reach, as a bwrap argument
list and an environment. Pure apart from `probe`, which tries bwrap once per build.

Inside: the whole file system read-only; the worktree (and `sandbox_paths` given `:rw`)
writable; a private /tmp and /run; the user's home replaced by a private folder (the directories
on PATH, and the real locations they link to, readable again); new pid, ipc, uts and cgroup
namespaces; no network (`none`), the build's egress proxy only (`allow`), or the host's (`host`);
no capabilities; a seccomp filter refusing AF_UNIX sockets; dead with its parent.

The environment is built from an allow-list: nothing else of the user's enters, not even into
bwrap's own pid 1 (it is bwrap's environment, so bwrap is started with the allow-listed one).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from merge import run_command
from orchestrator.door.seccomp import unix_socket_filter

MODES = ("auto", "bwrap", "none")
NETWORKS = ("none", "allow", "host")
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `sudo apt-get install -y bubblewrap`)"
PROXY_SOCKET = "/run/orchestrate-egress.sock"  # where the egress proxy's socket is bound inside
PROXY_PORT = 3128  # the loopback port inside the sandbox that leads to the proxy
MASKED = (Path("/tmp"), Path("/run"), Path("/var/tmp"))  # replaced by empty private folders
ALLOWED_ENV = ("PATH", "LANG", "TERM")
ORCHESTRATE_ENV = ("GIT_CEILING_DIRECTORIES", "GIT_TERMINAL_PROMPT", "PAGER", "GIT_PAGER")
PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy")


@dataclass(frozen=True)
class ExtraPath:
    """One entry of `sandbox_paths`: `~/.cache/pip` (read-only) or `~/.m2:rw`."""

    path: Path
    writable: bool = False

    @classmethod
    def parse(cls, entry: str) -> ExtraPath:
        text, writable = (entry[:-3], True) if entry.endswith(":rw") else (entry, False)
        if not text.strip():
            raise ValueError(f"has an empty path in {entry!r}")
        path = Path(os.path.expanduser(text))
        if not path.is_absolute():
            raise ValueError(f"must hold absolute paths (or ~/...), not {entry!r}")
        return cls(path, writable)


@dataclass(frozen=True)
class Confinement:
    """Where one sandboxed process runs: `writable` folders (its worktree), `readable` ones
    that a mask would otherwise hide (the repository, tool folders), its private `home` (a
    folder of the host bound over the user's home; None leaves the home visible read-only,
    as setup commands get it), and its network."""

    writable: tuple[Path, ...]
    readable: tuple[Path, ...] = ()
    home: Path | None = None
    user_home: Path = field(default_factory=Path.home)
    network: str = "none"
    proxy_socket: Path | None = None  # the egress proxy's socket on the host (network allow)
    credentials: tuple[str, ...] = ()  # environment variables passed in as they are
    bwrap: str = "bwrap"


def tool_paths(search_path: str, home: Path, *, links_per_dir: int = 200) -> list[Path]:
    """The folders on PATH, the real locations they link to, and the folders their programs
    link into (`node_modules/.bin/claude` -> its package): readable in the sandbox even where
    they lie under the masked home. A `bin` folder brings its prefix (`~/.pyenv/versions/X`,
    `~/.cargo`), except `~/bin` and `~/.local/bin`. Computed once per build."""
    found: list[Path] = []
    for entry in search_path.split(os.pathsep):
        if not entry or not os.path.isabs(entry):
            continue
        for path in (Path(entry), Path(os.path.realpath(entry)), *_link_targets(entry,
                                                                            links_per_dir)):
            path = _with_prefix(path, home)
            if path not in found:
                found.append(path)
    return found


def _with_prefix(folder: Path, home: Path) -> Path:
    if folder.name == "bin" and folder.parent not in (home, home / ".local", Path("/")):
        return folder.parent
    return folder


def _link_targets(folder: str, limit: int) -> list[Path]:
    targets: list[Path] = []
    try:
        with os.scandir(folder) as entries:
            for _, entry in zip(range(limit), entries, strict=False):
                if entry.is_symlink():
                    targets.append(Path(os.path.realpath(entry.path)).parent)
    except OSError:
        pass
    return targets


def _masked(path: Path, masks: Sequence[Path]) -> bool:
    return any(path == mask or mask in path.parents for mask in masks)


def bwrap_argv(confinement: Confinement, argv: Sequence[str], *, cwd: Path,
               seccomp_fd: int | None = None) -> list[str]:
    """The bwrap command line that runs `argv` in `cwd` inside `confinement`."""
    home = confinement.home
    masks = [*MASKED, *([confinement.user_home] if home is not None else [])]
    # --as-pid-1: bwrap's own init would linger as a zombie after the command, holding the
    # process group the door waits on; as pid 1 the command takes everything with it
    words = [confinement.bwrap, "--die-with-parent", "--unshare-pid", "--as-pid-1",
             "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL"]
    if confinement.network != "host":
        words.append("--unshare-net")
    words += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for mask in MASKED:
        words += ["--tmpfs", str(mask)]
    binds = [("--bind", home, confinement.user_home)] if home is not None else []
    binds += [("--ro-bind-try", p, p) for p in confinement.readable if _masked(p, masks)]
    binds += [("--bind", p, p) for p in confinement.writable]
    for option, source, target in sorted(binds, key=lambda bind: len(bind[2].parts)):
        words += [option, str(source), str(target)]  # parents before what lies inside them
    for writable in confinement.writable:  # its .git (a file, or a clone's folder) stays as is
        words += ["--ro-bind-try", str(writable / ".git"), str(writable / ".git")]
    if confinement.proxy_socket is not None:
        words += ["--ro-bind", str(confinement.proxy_socket), PROXY_SOCKET]
    if seccomp_fd is not None:
        words += ["--seccomp", str(seccomp_fd)]
    return [*words, "--chdir", str(cwd), "--", *argv]


def sandbox_env(env: Mapping[str, str], confinement: Confinement) -> dict[str, str]:
    """The allow-listed part of `env` (a child environment made as usual), with HOME, TMPDIR
    and, for network `allow`, the proxy variables."""
    keep = {*ALLOWED_ENV, *ORCHESTRATE_ENV, *confinement.credentials}
    chosen = {k: v for k, v in env.items() if k in keep or k.startswith("ORCHESTRATE_")}
    chosen.update(HOME=str(confinement.user_home), TMPDIR="/tmp")
    if confinement.network == "allow":
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        chosen.update(HTTPS_PROXY=proxy, HTTP_PROXY=proxy, https_proxy=proxy, http_proxy=proxy,
                      NO_PROXY="localhost", no_proxy="localhost")
    return chosen


def probe(bwrap: str = "bwrap") -> str | None:
    """Why bwrap cannot sandbox here (not on PATH, or it cannot make its namespaces), or None
    when it works. Runs one tiny sandbox: call it once per build."""
    found = shutil.which(bwrap)
    if found is None:
        return f"`{bwrap}` is not on PATH"
    trial = bwrap_argv(Confinement(writable=(), bwrap=found), ["/bin/true"], cwd=Path("/"))
    try:
        done = run_command(trial, Path("/"), env={"PATH": os.defpath})
    except OSError as exc:
        return f"`{found}` cannot run: {exc}"
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        return f"`{found}` cannot create a sandbox here: {said[-1] if said else done.returncode}"
    return None


def confined_argv(confinement: Confinement, argv: Sequence[str], *, cwd: Path,
                  seccomp_fd: int) -> list[str]:
    """`argv` as run in `confinement`. With the egress proxy, a forwarder starts inside first
    and then applies the seccomp filter itself (it needs one Unix socket: the proxy's)."""
    if confinement.proxy_socket is None:
        return bwrap_argv(confinement, argv, cwd=cwd, seccomp_fd=seccomp_fd)
    inside = [sys.executable, "-I", "-S", "-c", _inside_source(), PROXY_SOCKET,
              str(PROXY_PORT), unix_socket_filter().hex(), "--", *argv]
    return bwrap_argv(confinement, inside, cwd=cwd)


@functools.cache
def _inside_source() -> str:
    return Path(__file__).with_name("egress_inside.py").read_text(encoding="utf-8")


def credentials_in(environ: Mapping[str, str], names: Iterable[str]) -> tuple[str, ...]:
    """The credential variables of `names` that are set in `environ`."""
    return tuple(name for name in names if environ.get(name))
