"""Classic BPF programs that keep everything but our ARP/NDP work out of Python.

A raw socket sees every frame of its protocol on the interface; on a busy segment that is mostly
ARP for other hosts and IPv6 we do not care about. The kernel runs these filters before queueing a
frame, so a frame that is not for us costs no Python at all. Each program also drops our own
outgoing frames (PACKET_OUTGOING) through the packet-type ancillary load.

Two levels: with the announced addresses given, a program accepts only frames that name one of
them (target, or sender for conflict detection); without them, or when the list is too long for
one program, it accepts every ARP request / Neighbor Solicitation and Python does the rest.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypeVar

# Instruction classes and modes (linux/filter.h).
BPF_LD, BPF_JMP, BPF_RET = 0x00, 0x05, 0x06
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_ABS = 0x20
BPF_JA, BPF_JEQ = 0x00, 0x10
BPF_K = 0x00
SKF_AD_OFF = -0x1000
SKF_AD_PKTTYPE = 4
PACKET_OUTGOING = 4

_IP = TypeVar("_IP", ipaddress.IPv4Address, ipaddress.IPv6Address)

ACCEPT = 0x40000  # snap length: the whole frame
DROP = 0

# Offsets from the start of the Ethernet header.
OFF_DST_MAC = 0
OFF_ETHERTYPE = 12
OFF_ARP_HTYPE = 14
OFF_ARP_PTYPE = 16
OFF_ARP_OP = 20
OFF_ARP_SPA = 28
OFF_ARP_TPA = 38
OFF_IP6_NEXT = 20
OFF_IP6_DST = 38
OFF_ICMP6_TYPE = 54
OFF_NDP_TARGET = 62

# Beyond this many addresses the exact program is replaced by the generic one (still correct).
MAX_EXACT_V4 = 1000
MAX_EXACT_V6 = 400


class Insn(NamedTuple):
    """One `sock_filter`; a plain tuple underneath, so `netkit.bpf.attach` takes a program."""

    code: int
    jt: int
    jf: int
    k: int


Program = tuple[Insn, ...]


def _ret(k: int) -> Insn:
    return Insn(BPF_RET | BPF_K, 0, 0, k)


class _Builder:
    """Straight-line programs with symbolic forward jumps to labels ("accept", "drop", ...)."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int | str, int | str]] = []
        self.labels: dict[str, int] = {}

    def ld(self, size: int, offset: int) -> None:
        self.insns.append((BPF_LD | size | BPF_ABS, offset, 0, 0))

    def jeq(self, k: int, jt: int | str, jf: int | str) -> None:
        """jt/jf: an int (relative skip) or a label."""
        self.insns.append((BPF_JMP | BPF_JEQ | BPF_K, k, jt, jf))

    def require(self, size: int, offset: int, value: int) -> None:
        """Load a header field and drop the frame unless it equals `value`."""
        self.ld(size, offset)
        self.jeq(value, 0, "drop")

    def ja(self, skip: int) -> None:
        self.insns.append((BPF_JMP | BPF_JA, skip, 0, 0))

    def ret(self, k: int) -> None:
        self.insns.append((BPF_RET | BPF_K, k, 0, 0))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def finish(self) -> Program:
        """Resolve labels; "accept" and "drop" default to returns appended at the end."""
        for name, verdict in (("accept", ACCEPT), ("drop", DROP)):
            if name not in self.labels:
                self.label(name)
                self.ret(verdict)
        out: list[Insn] = []
        for pc, (code, k, jt, jf) in enumerate(self.insns):

            def rel(target: int | str, pc: int = pc) -> int:
                if isinstance(target, int):
                    return target
                skip = self.labels[target] - pc - 1
                if not 0 <= skip <= 255:
                    raise ValueError("BPF jump out of range")
                return skip

            out.append(Insn(code, rel(jt), rel(jf), k))
        return tuple(out)

    def local_drop(self) -> None:
        """A `ret 0` reachable by short jumps from the header checks, skipped by the rest."""
        self.ja(1)
        self.label("drop")
        self.ret(DROP)


def _reject_outgoing(b: _Builder) -> None:
    b.ld(BPF_B, SKF_AD_OFF + SKF_AD_PKTTYPE)
    b.jeq(PACKET_OUTGOING, "drop", 0)


def _icmp6_type(b: _Builder) -> None:
    """The head of every ICMPv6 program: incoming IPv6 carrying ICMPv6, its type left in A."""
    _reject_outgoing(b)
    b.require(BPF_H, OFF_ETHERTYPE, 0x86DD)
    b.require(BPF_B, OFF_IP6_NEXT, 58)
    b.ld(BPF_B, OFF_ICMP6_TYPE)


def _exact(addresses: Iterable[_IP] | None, limit: int) -> list[_IP] | None:
    """The addresses to match one by one; None (none given, or too many): the generic program."""
    if addresses is None:
        return None
    ips = sorted(set(addresses))
    return ips if len(ips) <= limit else None


def arp_program(addresses: Iterable[ipaddress.IPv4Address] | None = None) -> Program:
    """ARP requests, and broadcast (gratuitous) replies, for Ethernet/IPv4.

    With `addresses`, only frames whose target or sender address is one of them: targets are the
    requests we answer; senders are other hosts claiming our addresses (conflicts).
    """
    ips = _exact(addresses, MAX_EXACT_V4)
    b = _Builder()
    _reject_outgoing(b)
    b.require(BPF_H, OFF_ETHERTYPE, 0x0806)
    b.require(BPF_H, OFF_ARP_HTYPE, 1)
    b.require(BPF_H, OFF_ARP_PTYPE, 0x0800)
    b.ld(BPF_H, OFF_ARP_OP)
    b.jeq(1, 5, 0)  # request: skip the broadcast check below
    b.jeq(2, 0, "drop")
    b.require(BPF_W, OFF_DST_MAC, 0xFFFFFFFF)
    b.require(BPF_H, OFF_DST_MAC + 4, 0xFFFF)
    if ips is None:
        b.ret(ACCEPT)
        return b.finish()
    b.local_drop()
    for offset in (OFF_ARP_TPA, OFF_ARP_SPA):
        b.ld(BPF_W, offset)
        for ip in ips:
            # `jeq ip, 0, 1; ret accept` keeps every jump short however long the list is.
            b.jeq(int(ip), 0, 1)
            b.ret(ACCEPT)
    b.ret(DROP)
    return b.finish()


def ndp_program(addresses: Iterable[ipaddress.IPv6Address] | None = None) -> Program:
    """Neighbor Solicitations, and multicast (unsolicited) Neighbor Advertisements.

    With `addresses`, only those whose target is one of them. IPv6 extension headers before the
    ICMPv6 header are not followed (Neighbor Discovery does not use them).
    """
    ips = _exact(addresses, MAX_EXACT_V6)
    b = _Builder()
    _icmp6_type(b)
    b.jeq(135, 3, 0)  # solicitation: skip the multicast check below
    b.jeq(136, 0, "drop")
    b.require(BPF_B, OFF_IP6_DST, 0xFF)
    if ips is None:
        b.ret(ACCEPT)
        return b.finish()
    b.local_drop()
    for ip in ips:
        words = struct.unpack("!4I", ip.packed)
        # Block of 9: (ld, jeq) x 4 then ret accept; a mismatch skips to the next block.
        for i, word in enumerate(words):
            b.ld(BPF_W, OFF_NDP_TARGET + 4 * i)
            b.jeq(word, 0, 7 - 2 * i)
        b.ret(ACCEPT)
    b.ret(DROP)
    return b.finish()


def router_discovery_program() -> Program:
    """Router Solicitations and Advertisements (ICMPv6 133 and 134) received on the link."""
    b = _Builder()
    _icmp6_type(b)
    b.jeq(133, "accept", 0)
    b.jeq(134, "accept", "drop")
    return b.finish()


def drop_all_program() -> Program:
    return (_ret(DROP),)


def run(program: Sequence[Insn], frame: bytes, pkttype: int = 0) -> int:
    """Interpret `program` over `frame` as the kernel would (the subset we emit), for tests."""
    acc = 0
    pc = 0
    while True:
        insn = program[pc]
        cls = insn.code & 0x07
        if cls == BPF_RET:
            return insn.k
        if cls == BPF_LD:
            size = {BPF_W: 4, BPF_H: 2, BPF_B: 1}[insn.code & 0x18]
            if insn.k & 0xFFFFFFFF == (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF:
                acc = pkttype
            elif insn.k + size > len(frame):
                return 0  # the kernel drops a frame when a load runs past its end
            else:
                acc = int.from_bytes(frame[insn.k : insn.k + size], "big")
            pc += 1
        elif insn.code == BPF_JMP | BPF_JA:
            pc += 1 + insn.k
        elif cls == BPF_JMP:
            pc += 1 + (insn.jt if acc == insn.k else insn.jf)
        else:
            raise ValueError(f"unsupported BPF instruction {insn}")
