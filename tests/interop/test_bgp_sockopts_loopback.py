"""Socket options on real loopback sockets: the kernel accepts what we build, reports it back and
enforces it (an MD5-keyed listener refuses handshakes without the key)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from bgp import sockopts
from bgp.sockopts import SockoptError

HANDSHAKE_WAIT = 0.5  # s; loopback answers in microseconds, a dropped SYN is retried after 1 s


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
def tcp(request: pytest.FixtureRequest) -> Iterator[socket.socket]:
    s = socket.socket(request.param, socket.SOCK_STREAM)
    yield s
    s.close()


def test_md5_struct_layout_matches_linux_tcp_md5sig() -> None:
    raw = sockopts.md5sig_struct(socket.AF_INET, "198.51.100.1", b"secret")
    assert len(raw) == 128 + 8 + 80
    assert struct.unpack("=H", raw[:2])[0] == socket.AF_INET
    assert raw[4:8] == bytes([198, 51, 100, 1])
    assert struct.unpack("=H", raw[130:132])[0] == 6
    assert raw[136:142] == b"secret"


def test_md5_ipv4_peer_on_ipv6_socket_uses_mapped_address() -> None:
    raw = sockopts.md5sig_struct(socket.AF_INET6, "198.51.100.1", b"k")
    assert struct.unpack("=H", raw[:2])[0] == socket.AF_INET6
    assert raw[8:24] == b"\0" * 10 + b"\xff\xff" + bytes([198, 51, 100, 1])


def _handshake(family: int, dst: str, port: int, src: str, key: str | None) -> bool:
    """Does a TCP handshake from `src` complete? A listener holding an MD5 key for `src` drops
    every SYN that lacks that key's signature (RFC 2385), so the connect times out instead."""
    with socket.socket(family, socket.SOCK_STREAM) as c:
        c.settimeout(HANDSHAKE_WAIT)
        c.bind((src, 0))
        if key is not None:
            sockopts.set_md5(c, dst, key)
        try:
            c.connect((dst, port))
        except TimeoutError:
            return False
        return True


def _listening(family: int, addr: str) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((addr, 0))
    s.listen(16)
    return s


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
def test_md5_key_is_enforced_by_the_kernel_and_removed(family: int) -> None:
    addr = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with _listening(family, addr) as server:
        port = server.getsockname()[1]
        sockopts.set_md5(server, addr, "s3cret")
        assert not _handshake(family, addr, port, addr, None), "no key must not connect"
        assert not _handshake(family, addr, port, addr, "wrong"), "a wrong key must not connect"
        assert _handshake(family, addr, port, addr, "s3cret")
        sockopts.set_md5(server, addr, None)  # remove
        assert _handshake(family, addr, port, addr, None)
        sockopts.set_md5(server, addr, None)  # removing again is not an error


def test_md5_on_listening_socket_keys_each_peer_separately() -> None:
    # An IPv6 socket serving IPv4 peers keys them by their v4-mapped address.
    with _listening(socket.AF_INET6, "::ffff:127.0.0.1") as server:
        port = server.getsockname()[1]
        sockopts.set_md5(server, "127.0.0.2", "a")
        sockopts.set_md5(server, "127.0.0.3", "b")
        v4 = socket.AF_INET
        assert _handshake(v4, "127.0.0.1", port, "127.0.0.2", "a")
        assert not _handshake(v4, "127.0.0.1", port, "127.0.0.2", "b")
        assert _handshake(v4, "127.0.0.1", port, "127.0.0.3", "b")
        assert not _handshake(v4, "127.0.0.1", port, "127.0.0.3", None)
        assert _handshake(v4, "127.0.0.1", port, "127.0.0.4", None), "an unkeyed peer is plain TCP"


def test_md5_key_too_long_is_rejected() -> None:
    with socket.socket() as s, pytest.raises(SockoptError, match="longer than 80"):
        sockopts.set_md5(s, "198.51.100.1", "x" * 81)


def test_md5_ipv6_peer_on_ipv4_socket_is_rejected() -> None:
    with socket.socket() as s, pytest.raises(SockoptError, match="IPv6 peer"):
        sockopts.set_md5(s, "2001:db8::1", "x")


@pytest.mark.parametrize("ttl", [1, 2, 255])
def test_ttl_set_and_read_back(tcp: socket.socket, ttl: int) -> None:
    sockopts.set_ttl(tcp, ttl)
    assert sockopts.get_ttl(tcp) == ttl


@pytest.mark.parametrize("ttl", [0, 256])
def test_ttl_out_of_range(ttl: int) -> None:
    with socket.socket() as s, pytest.raises(SockoptError, match="out of range"):
        sockopts.set_ttl(s, ttl)


def test_min_ttl_set_and_read_back(tcp: socket.socket) -> None:
    sockopts.set_min_ttl(tcp, 254)
    assert sockopts.get_min_ttl(tcp) == 254


def test_bind_to_device_loopback_and_unbind(tcp: socket.socket) -> None:
    # No VRF devices exist on this kernel; a VRF binds by the VRF master's name the same way.
    sockopts.bind_to_device(tcp, "lo")
    assert sockopts.bound_device(tcp) == "lo"
    sockopts.bind_to_device(tcp, "")
    assert sockopts.bound_device(tcp) == ""


def test_bind_to_missing_device_names_the_option() -> None:
    with socket.socket() as s, pytest.raises(SockoptError, match="SO_BINDTODEVICE 'vrf-nope0'"):
        sockopts.bind_to_device(s, "vrf-nope0")


def test_bind_to_device_name_too_long() -> None:
    with socket.socket() as s, pytest.raises(SockoptError, match="longer than 15"):
        sockopts.bind_to_device(s, "x" * 16)


def test_bind_source(tcp: socket.socket) -> None:
    src = "::1" if tcp.family == socket.AF_INET6 else "127.0.0.1"
    sockopts.bind_source(tcp, src)
    assert tcp.getsockname()[0] == src


def test_bind_source_wrong_family_and_missing_address() -> None:
    with socket.socket(socket.AF_INET6) as s, pytest.raises(SockoptError, match="is IPv4"):
        sockopts.bind_source(s, "127.0.0.1")
    with socket.socket() as s, pytest.raises(SockoptError, match=r"bind to source 192\.0\.2\.77"):
        sockopts.bind_source(s, "192.0.2.77")


def test_family_of() -> None:
    assert sockopts.family_of("198.51.100.1") == socket.AF_INET
    assert sockopts.family_of("2001:db8::1") == socket.AF_INET6
