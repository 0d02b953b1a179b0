"""A seccomp filter that refuses `socket(AF_UNIX, ...)` inside the sandbox, so no Unix socket of
the host (an ssh agent, a container daemon, a session bus) can be reached: a read-only bind
does not stop `connect`. Anthropic's sandbox runtime does the same; like it, the filter is
classic BPF assembled by hand and handed to `bwrap --seccomp FD`.

Every other system call is allowed. A process of another architecture than the host's (a 32-bit
program, whose sockets go through `socketcall`) gets EPERM for every call, and so do x86_64's
x32 calls: neither could be filtered by number here.
"""

from __future__ import annotations

import functools
import os
import platform
import struct

# classic BPF opcodes (linux/filter.h)
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K

RET_ALLOW = 0x7FFF0000  # SECCOMP_RET_ALLOW
RET_EPERM = 0x00050000 | 1  # SECCOMP_RET_ERRNO | EPERM
AF_UNIX = 1
X32_BIT = 0x40000000

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16

# machine -> (AUDIT_ARCH_*, __NR_socket)
ARCHITECTURES = {
    "x86_64": (0xC000003E, 41),
    "aarch64": (0xC00000B7, 198),
}


class UnsupportedArchitecture(Exception):
    """No system call numbers for this machine: the filter cannot be built."""


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


@functools.cache
def unix_socket_filter(machine: str | None = None) -> bytes:
    """The filter program (struct sock_filter[]) for `machine` (default: this one)."""
    machine = machine or platform.machine()
    if machine not in ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"no seccomp filter for {machine} (known: {', '.join(ARCHITECTURES)})")
    arch, socket_nr = ARCHITECTURES[machine]
    x32_limit = X32_BIT if machine == "x86_64" else 0xFFFFFFFF
    # the jump offsets count instructions after the jump; ALLOW is #7 and DENY #8
    return b"".join([
        _insn(LD_W_ABS, OFFSET_ARCH),  # 0
        _insn(JEQ_K, arch, jt=0, jf=6),  # 1: another architecture -> DENY
        _insn(LD_W_ABS, OFFSET_NR),  # 2
        _insn(JGE_K, x32_limit, jt=4, jf=0),  # 3: x32 calls -> DENY
        _insn(JEQ_K, socket_nr, jt=0, jf=2),  # 4: not socket() -> ALLOW
        _insn(LD_W_ABS, OFFSET_ARG0),  # 5: the domain (low 32 bits, little-endian)
        _insn(JEQ_K, AF_UNIX, jt=1, jf=0),  # 6: AF_UNIX -> DENY
        _insn(RET_K, RET_ALLOW),  # 7
        _insn(RET_K, RET_EPERM),  # 8
    ])


def filter_fd(program: bytes) -> int:
    """A file descriptor positioned at the start of `program`, for `bwrap --seccomp FD`
    (bwrap reads it to the end). The caller passes it to the child and closes it."""
    fd = os.memfd_create("orchestrate-seccomp", 0)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
