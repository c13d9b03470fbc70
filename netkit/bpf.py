"""Attaching a classic BPF program to a socket, the one way l2 and bfd do it.

l2's raw ARP/NDP sockets and bfd's echo socket both keep unwanted packets out of Python with a
kernel filter; the `sock_fprog` layout and the buffer's lifetime are easy to get subtly wrong, so
there is exactly one copy of them.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Sequence

SO_ATTACH_FILTER = 26
BPF_MAXINSNS = 4096  # the kernel's limit on a classic program's length

Instruction = tuple[int, int, int, int]  # code, jt, jf, k (struct sock_filter)

_INSN = struct.Struct("=HBBI")


def pack(program: Sequence[Instruction]) -> bytes:
    """The program as the kernel reads it: one 8-byte `sock_filter` per instruction."""
    return b"".join(_INSN.pack(code, jt, jf, k & 0xFFFFFFFF) for code, jt, jf, k in program)


def attach(sock: socket.socket, program: Sequence[Instruction]) -> None:
    """SO_ATTACH_FILTER: atomically replaces any filter already on the socket.

    The kernel copies the program during the call, so the buffer only has to outlive it.
    """
    if not 0 < len(program) <= BPF_MAXINSNS:
        raise ValueError(f"BPF program length {len(program)} out of range 1-{BPF_MAXINSNS}")
    code = pack(program)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
