"""AF_PACKET raw sockets with a BPF filter, and IPv6 multicast group membership.

A socket is created with protocol 0 (it receives nothing), gets its filter, and only then is bound
to the interface and the ARP or IPv6 ethertype, so no unfiltered frame is ever queued to Python.
Opening a raw socket without CAP_NET_RAW raises `MissingCapability`, which names it. Nothing else
needs a capability: multicast joins go through an ordinary IPv6 socket, and the larger receive
buffer (SO_RCVBUFFORCE, CAP_NET_ADMIN) falls back to SO_RCVBUF without it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct
from collections.abc import Iterator, Sequence

from l2 import bpf
from netkit.bpf import attach

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_ALL = 0x0003
RCVBUF = 4 * 1024 * 1024
SO_RCVBUFFORCE = 33


class MissingCapability(PermissionError):
    """The process lacks a Linux capability it needs; the message says which and why."""

    def __init__(self, capability: str, why: str) -> None:
        super().__init__(f"missing {capability}: {why} (run as root or grant {capability})")
        self.capability = capability


@contextlib.contextmanager
def _needs(capability: str, why: str) -> Iterator[None]:
    try:
        yield
    except PermissionError as exc:
        raise MissingCapability(capability, why) from exc


def _grow_receive_buffer(sock: socket.socket) -> None:
    """Room for bursts: SO_RCVBUFFORCE (CAP_NET_ADMIN) may exceed rmem_max; else best effort."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)


def open_packet_socket(
    interface: str, ethertype: int, program: Sequence[bpf.Insn] | None
) -> socket.socket:
    """A non-blocking raw socket on `interface` for `ethertype`, filtered by `program` if given."""
    with _needs("CAP_NET_RAW", "AF_PACKET raw sockets answer ARP/NDP"):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        if program is not None:
            attach(sock, program)
        _grow_receive_buffer(sock)
        sock.bind((interface, ethertype))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def open_arp_socket(interface: str, program: Sequence[bpf.Insn] | None) -> socket.socket:
    return open_packet_socket(interface, ETH_P_ARP, program)


def open_ndp_socket(interface: str, program: Sequence[bpf.Insn] | None) -> socket.socket:
    return open_packet_socket(interface, ETH_P_IPV6, program)


class MulticastGroups:
    """Reference-counted IPv6 multicast memberships on one interface.

    Joining through the IPv6 stack (not just the NIC filter) makes the kernel send MLD reports, so
    a snooping switch forwards the solicited-node traffic to us; several announced addresses can
    share one solicited-node group, hence the counts.
    """

    def __init__(self, ifindex: int) -> None:
        self.ifindex = ifindex
        self._counts: dict[ipaddress.IPv6Address, int] = {}
        self._sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)

    def _mreq(self, group: ipaddress.IPv6Address) -> bytes:
        return group.packed + struct.pack("@I", self.ifindex)

    def join(self, group: ipaddress.IPv6Address) -> None:
        count = self._counts.get(group, 0)
        if count == 0:
            # No capability needed: any process may join a group through the IPv6 stack.
            try:
                self._sock.setsockopt(
                    socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, self._mreq(group)
                )
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:  # already a member: fine
                    raise
        self._counts[group] = count + 1

    def leave(self, group: ipaddress.IPv6Address) -> None:
        count = self._counts.get(group, 0)
        if count <= 1:
            self._counts.pop(group, None)
            if count == 1:
                with contextlib.suppress(OSError):
                    self._sock.setsockopt(
                        socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, self._mreq(group)
                    )
        else:
            self._counts[group] = count - 1

    def groups(self) -> set[ipaddress.IPv6Address]:
        return set(self._counts)

    def close(self) -> None:
        self._counts.clear()
        self._sock.close()  # closing drops every membership
