"""The process door with a sandbox: real bubblewrap, real processes, no build around them."""

from __future__ import annotations

import ast
import os
import struct
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from orchestrator.door.egress import AllowList, EgressProxy, parse_head
from orchestrator.door.processes import run_in_group
from orchestrator.door.sandbox import Confinement, ExtraPath, bwrap_argv, sandbox_env
from orchestrator.door.sandbox_policy import SandboxPolicy
from orchestrator.door.seccomp import UnsupportedArchitecture, unix_socket_filter
from tests.sandbox_support import needs_bwrap

PROBE = r"""
import os, socket, sys
def attempt(what, action):
    try:
        action()
        print(what, "ok")
    except OSError as exc:
        print(what, "refused", exc.strerror)
attempt("worktree", lambda: open("made.txt", "w").write("mine"))
attempt("outside", lambda: open(sys.argv[1], "w").write("escaped"))
attempt("home-secret", lambda: open(os.path.expanduser("~/secret.txt")).read())
attempt("unix", lambda: socket.socket(socket.AF_UNIX))
attempt("inet", lambda: socket.socket(socket.AF_INET).close())
open("/tmp/private.txt", "w").write("tmp")
print("home", sorted(os.listdir(os.path.expanduser("~"))))
print("pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print("environ", sorted(os.environ))
print("pid1", sorted(v.split(b"=")[0].decode()
                      for v in open("/proc/1/environ", "rb").read().split(b"\0") if v))
"""


def _run(confinement: Confinement | None, argv: list[str], cwd: Path, log: Path,
         env: dict[str, str]) -> int:
    async def main() -> int:
        with log.open("wb") as output:
            return await run_in_group(argv, cwd=cwd, output=output, env=env,
                                      confinement=confinement)
    return trio.run(main)


def test_the_seccomp_filter_is_nine_instructions_for_each_known_machine() -> None:
    for machine, socket_nr in (("x86_64", 41), ("aarch64", 198)):
        program = unix_socket_filter(machine)
        assert len(program) == 9 * 8
        assert struct.unpack_from("<HBBI", program, 4 * 8) == (0x15, 0, 2, socket_nr)
    with pytest.raises(UnsupportedArchitecture, match="riscv64"):
        unix_socket_filter("riscv64")


def test_extra_paths_expand_the_home_and_mark_writable_ones(tmp_path: Path) -> None:
    assert ExtraPath.parse("~/.m2:rw") == ExtraPath(Path.home() / ".m2", writable=True)
    assert ExtraPath.parse("/opt/cache") == ExtraPath(Path("/opt/cache"))
    with pytest.raises(ValueError, match="absolute"):
        ExtraPath.parse("relative/path")


def test_the_environment_keeps_only_the_allow_list_and_named_credentials() -> None:
    confinement = Confinement(writable=(), credentials=("ANTHROPIC_API_KEY",), network="allow")
    env = sandbox_env({"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "x", "ANTHROPIC_API_KEY": "k",
                       "ORCHESTRATE_SPEC": "001", "SSH_AUTH_SOCK": "/run/ssh"}, confinement)
    assert env["ANTHROPIC_API_KEY"] == "k"
    assert env["ORCHESTRATE_SPEC"] == "001"
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "SSH_AUTH_SOCK" not in env
    assert env["TMPDIR"] == "/tmp"
    assert env["HTTPS_PROXY"].startswith("http://127.0.0.1:")


def test_a_worktree_inside_a_masked_folder_is_bound_after_the_mask(tmp_path: Path) -> None:
    words = bwrap_argv(Confinement(writable=(tmp_path / "wt",), home=tmp_path / "h",
                                   user_home=tmp_path / "home"), ["true"], cwd=tmp_path)
    assert words.index("/tmp") < words.index(str(tmp_path / "h")) < words.index(
        str(tmp_path / "wt"))
    assert "--unshare-net" in words
    assert words[-2:] == ["--", "true"]


@needs_bwrap
def test_a_sandboxed_process_writes_only_its_worktree(tmp_path: Path) -> None:
    repo, home, private = tmp_path / "repo", tmp_path / "home", tmp_path / "private-home"
    worktree = repo / ".orchestrate" / "wt"
    for folder in (worktree, home, private):
        folder.mkdir(parents=True)
    (home / "secret.txt").write_text("s3cret")
    outside, log = repo / "outside.txt", tmp_path / "log"
    confinement = Confinement(writable=(worktree,), home=private, user_home=home,
                              readable=(Path(sys.executable).parent, repo))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "API_TOKEN": "t0ken",
           "ORCHESTRATE_SPEC": "001"}
    code = _run(confinement, [sys.executable, "-c", PROBE, str(outside)], worktree, log, env)
    text = log.read_text()
    assert code == 0, text
    assert "worktree ok" in text
    assert (worktree / "made.txt").read_text() == "mine"
    assert "outside refused Read-only file system" in text
    assert not outside.exists()
    assert "home-secret refused No such file or directory" in text
    assert "home []" in text
    assert "unix refused Operation not permitted" in text
    assert "inet ok" in text
    assert not Path("/tmp/private.txt").exists()
    pids = next(line for line in text.splitlines() if line.startswith("pids"))
    assert len(ast.literal_eval(pids.removeprefix("pids "))) == 1  # this python, nobody else
    assert "API_TOKEN" not in text
    assert "'ORCHESTRATE_SPEC'" in text
    assert list(private.iterdir()) == []  # /tmp was private, the home stayed empty


@needs_bwrap
def test_the_proxy_lets_listed_hosts_through_and_logs_the_others(tmp_path: Path) -> None:
    worktree, log, agent_log = tmp_path / "wt", tmp_path / "egress.log", tmp_path / "agent.log"
    worktree.mkdir()
    client = r"""
import os, sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
try:
    urllib.request.urlopen("https://refused.example:443/", timeout=10)
except OSError as exc:
    print("refused:", exc)
"""

    async def origin(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n"
                              b"Connection: close\r\n\r\nthrough")
        await stream.aclose()

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            [listener] = await nursery.start(partial(trio.serve_tcp, origin, 0,
                                                      host="127.0.0.1"))
            port = listener.socket.getsockname()[1]
            url = f"http://127.0.0.1:{port}/hello"
            proxy = EgressProxy(nursery, tmp_path)
            async with proxy.gate("sub-1", AllowList.of([], [url]), log) as gate:
                confinement = Confinement(writable=(worktree,), network="allow",
                                          proxy_socket=gate.socket_path)
                with agent_log.open("wb") as output:
                    code = await run_in_group([sys.executable, "-c", client, url], cwd=worktree,
                                              output=output, env={"PATH": os.environ["PATH"]},
                                              confinement=confinement)
            assert proxy.refused["sub-1"] == 1
            nursery.cancel_scope.cancel()
        return code

    code = trio.run(main)
    text = agent_log.read_text()
    assert code == 0, text
    assert "through" in text
    assert "refused: " in text
    assert log.read_text() == "egress refused: refused.example:443\n"


def test_requests_are_parsed_into_tunnels_and_plain_forwards() -> None:
    tunnel = parse_head(b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (tunnel.tunnel, tunnel.host, tunnel.port) == (True, "api.anthropic.com", 443)
    plain = parse_head(b"POST http://127.0.0.1:8080/v1/messages?beta=1 HTTP/1.1\r\nA: b\r\n\r\n")
    assert plain.head.startswith(b"POST /v1/messages?beta=1 HTTP/1.1\r\nA: b")
    allow = AllowList.of(["api.anthropic.com"], ["http://127.0.0.1:8080"])
    assert allow.tunnel("api.anthropic.com", 443)
    assert not allow.tunnel("evil.example", 443)
    assert allow.forward("127.0.0.1", 8080)
    assert not allow.forward("127.0.0.1", 22)


def test_a_private_home_gets_copies_of_the_presets_config_and_is_removed(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text("{}")
    (home / ".claude.json").write_text('{"a": 1}')
    policy = SandboxPolicy(mode="bwrap", user_home=home,
                           config_paths=(home / ".claude", home / ".claude.json"))

    async def main() -> Path:
        async with policy.private_home() as private:
            assert (private / ".claude" / "settings.json").read_text() == "{}"
            (private / ".claude.json").write_text("changed by the agent")
            return private

    private = trio.run(main)
    assert not private.exists()
    assert (home / ".claude.json").read_text() == '{"a": 1}'


def test_sandbox_lists_from_the_environment_are_split_on_colons(tmp_path: Path) -> None:
    from orchestrator.errors import UsageError
    from orchestrator.settings import load_settings

    settings = load_settings(tmp_path, {}, environ={
        "ORCHESTRATE_SANDBOX_PATHS": "~/.m2:rw:/opt/cache",
        "ORCHESTRATE_SANDBOX_ALLOW": "pypi.org:127.0.0.1:8080",
        "ORCHESTRATE_CHECK_NETWORK": "host"})
    assert settings.sandbox == "auto"
    assert settings.sandbox_network == "allow"
    assert settings.sandbox_paths == ("~/.m2:rw", "/opt/cache")
    assert settings.sandbox_allow == ("pypi.org", "127.0.0.1:8080")
    assert settings.check_network == "host"
    with pytest.raises(UsageError, match="ORCHESTRATE_SANDBOX_ALLOW"):
        load_settings(tmp_path, {}, environ={"ORCHESTRATE_SANDBOX_ALLOW": "https://x.org/"})
