"""Runs first inside a sandbox with network `allow` (as `python -I -S -c <this file's text>`,
standard library only): listens on the sandbox's loopback port and forwards each connection to
the build's egress proxy through the Unix socket bound in, then installs the seccomp filter that
refuses AF_UNIX sockets and becomes the command. The forwarder (forked before the filter) keeps
its socket; the command and all it starts cannot make one.

Arguments: SOCKET PORT FILTER_HEX -- COMMAND...
"""

import ctypes
import os
import select
import signal
import socket
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _pump(client: socket.socket, proxy_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.connect(proxy_path)
    ends = {client: upstream, upstream: client}
    open_ends = [client, upstream]
    while open_ends:
        ready, _, _ = select.select(open_ends, [], [])
        for end in ready:
            data = end.recv(65536)
            if data:
                ends[end].sendall(data)
            else:
                open_ends.remove(end)
                ends[end].shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, proxy_path: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # reap the connection children
    while True:
        client, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            try:
                _pump(client, proxy_path)
            finally:
                os._exit(0)
        client.close()


def _confine(program: bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _Fprog(len(program) // 8, ctypes.addressof(buffer))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                  ctypes.c_ulong(0)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                  ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def main(args: list[str]) -> None:
    proxy_path, port, program = args[0], int(args[1]), bytes.fromhex(args[2])
    command = args[4:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    if os.fork() == 0:
        try:
            _serve(listener, proxy_path)
        finally:
            os._exit(0)
    listener.close()
    _confine(program)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"orchestrate: cannot run {command[0]}: {exc.strerror}\n")
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


if __name__ == "__main__":
    main(sys.argv[1:])
