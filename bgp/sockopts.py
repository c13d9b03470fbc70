"""Socket options a BGP transport needs: TCP MD5 (RFC 2385), TTL/GTSM, VRF binding, source address.

Linux only. Every function takes a plain socket and raises `SockoptError` (an `OSError`) with a
message naming the option when the kernel refuses it, so a misconfiguration is reported clearly
instead of as a bare errno.

TCP MD5 keys are per peer address: a connecting socket carries the key of the one peer it dials; a
listening socket carries one key per configured peer, and accepted sockets inherit them. On an
AF_INET6 socket an IPv4 peer's key is set with its IPv4-mapped address (the kernel stores it as an
IPv4 key).

VRF binding uses SO_BINDTODEVICE with the VRF master device's name. The test kernel has no VRF
devices, so this is unit-tested with ordinary interfaces only.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

# From <linux/tcp.h> / <linux/in.h> / <linux/in6.h>; not all are exported by the socket module.
TCP_MD5SIG = 14
TCP_MD5SIG_MAXKEYLEN = 80
IP_MINTTL = 21
IPV6_MINHOPCOUNT = 73
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
_SOCKADDR_STORAGE = 128

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SockoptError(OSError):
    """The kernel refused a socket option; the message names the option and the value."""


def _addr(address: str | IPAddress) -> IPAddress:
    return address if not isinstance(address, str) else ipaddress.ip_address(address)


def _sockaddr_storage(family: int, peer: IPAddress) -> bytes:
    """A `struct sockaddr_storage` for `peer` as seen from a socket of `family` (port 0)."""
    if family == socket.AF_INET6:
        if isinstance(peer, ipaddress.IPv4Address):
            peer = ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + peer.packed)
        raw = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + peer.packed
        raw += struct.pack("=I", 0)
    else:
        if not isinstance(peer, ipaddress.IPv4Address):
            raise SockoptError(f"TCP_MD5SIG: IPv6 peer {peer} on an IPv4 socket")
        raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + peer.packed
    return raw.ljust(_SOCKADDR_STORAGE, b"\x00")


def md5sig_struct(family: int, peer: str | IPAddress, key: bytes) -> bytes:
    """`struct tcp_md5sig` for `peer`; an empty key deletes the peer's key."""
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise SockoptError(f"TCP_MD5SIG: key longer than {TCP_MD5SIG_MAXKEYLEN} bytes")
    head = _sockaddr_storage(family, _addr(peer))
    # flags, prefixlen (unused without TCP_MD5SIG_EXT), keylen, ifindex, key[80]
    return head + struct.pack("=BBHI", 0, 0, len(key), 0) + key.ljust(TCP_MD5SIG_MAXKEYLEN, b"\0")


def set_md5(sock: socket.socket, peer: str | IPAddress, password: str | bytes | None) -> None:
    """Install (or, with an empty/None password, remove) the RFC 2385 key for `peer`."""
    key = password.encode() if isinstance(password, str) else (password or b"")
    raw = md5sig_struct(sock.family, peer, key)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, raw)
    except OSError as exc:
        if not key and exc.errno == 2:  # ENOENT: deleting a key that was never set
            return
        raise SockoptError(exc.errno, f"TCP_MD5SIG for {peer}: {exc.strerror}") from exc


def set_ttl(sock: socket.socket, ttl: int) -> None:
    """Outgoing TTL / hop limit: 1 for single-hop eBGP, N for multihop, 255 with GTSM."""
    if not 1 <= ttl <= 255:
        raise SockoptError(f"TTL {ttl} out of range 1..255")
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
            # An IPv6 socket may also carry IPv4-mapped traffic; keep both in step.
            try:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            except OSError:
                pass
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    except OSError as exc:
        raise SockoptError(exc.errno, f"IP_TTL {ttl}: {exc.strerror}") from exc


def get_ttl(sock: socket.socket) -> int:
    if sock.family == socket.AF_INET6:
        return sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS)
    return sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)


def set_min_ttl(sock: socket.socket, min_ttl: int) -> None:
    """Drop received segments with a lower TTL (GTSM, RFC 5082: peer sends 255, we require 254)."""
    if not 0 <= min_ttl <= 255:
        raise SockoptError(f"minimum TTL {min_ttl} out of range 0..255")
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, min_ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, min_ttl)
    except OSError as exc:
        raise SockoptError(exc.errno, f"IP_MINTTL {min_ttl}: {exc.strerror}") from exc


def get_min_ttl(sock: socket.socket) -> int:
    if sock.family == socket.AF_INET6:
        return sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT)
    return sock.getsockopt(socket.IPPROTO_IP, IP_MINTTL)


def bind_to_device(sock: socket.socket, device: str) -> None:
    """Bind the socket to an interface or a VRF master device (SO_BINDTODEVICE); "" unbinds."""
    raw = device.encode()
    if len(raw) >= 16:
        raise SockoptError(f"SO_BINDTODEVICE: device name {device!r} longer than 15 bytes")
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, raw + b"\0" if raw else b"")
    except OSError as exc:
        raise SockoptError(exc.errno, f"SO_BINDTODEVICE {device!r}: {exc.strerror}") from exc


def bound_device(sock: socket.socket) -> str:
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, 16)
    return raw.split(b"\0", 1)[0].decode()


def bind_source(sock: socket.socket, address: str | IPAddress | None, port: int = 0) -> None:
    """Bind to a source address (and port 0: kernel-chosen) before connect."""
    if address is None:
        return
    addr = _addr(address)
    try:
        if sock.family == socket.AF_INET6:
            if isinstance(addr, ipaddress.IPv4Address):
                raise SockoptError(f"source {addr} is IPv4 but the socket is IPv6")
            sock.bind((str(addr), port, 0, 0))
        else:
            sock.bind((str(addr), port))
    except SockoptError:
        raise
    except OSError as exc:
        raise SockoptError(exc.errno, f"bind to source {addr}: {exc.strerror}") from exc


def family_of(address: str | IPAddress) -> int:
    return socket.AF_INET6 if _addr(address).version == 6 else socket.AF_INET
