"""IP prefixes as they travel in BGP NLRI (RFC 4271 §4.3, RFC 4760, RFC 7911 path ids).

`Prefix` is a plain tuple (cheap to build by the hundred thousand): the address bytes with
host bits cleared (4 or 16 octets), the prefix length and an optional add-path identifier.
The encode helpers return the wire bytes so a packer can encode each prefix once and join.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from typing import NamedTuple

from bgp.context import AFI_IPV4, AFI_IPV6
from bgp.errors import INVALID_NETWORK_FIELD, UPDATE_MESSAGE_ERROR, BGPError, ErrorAction

_PAD = bytes(16)
_LAST_BYTE_MASK = (0x00, 0x80, 0xC0, 0xE0, 0xF0, 0xF8, 0xFC, 0xFE)


class Prefix(NamedTuple):
    """An IPv4 or IPv6 prefix: `addr` is 4 or 16 octets with host bits zero."""

    addr: bytes
    length: int
    path_id: int | None = None

    @classmethod
    def parse(cls, text: str, path_id: int | None = None) -> Prefix:
        """'203.0.113.0/24' or '2001:db8::/32' (a bare address is a host route)."""
        net = ipaddress.ip_network(text, strict=False)
        return cls(net.network_address.packed, net.prefixlen, path_id)

    @classmethod
    def from_network(
        cls, net: ipaddress.IPv4Network | ipaddress.IPv6Network, path_id: int | None = None
    ) -> Prefix:
        return cls(net.network_address.packed, net.prefixlen, path_id)

    @property
    def afi(self) -> int:
        return AFI_IPV4 if len(self.addr) == 4 else AFI_IPV6

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network((self.addr, self.length))

    def __str__(self) -> str:
        return f"{ipaddress.ip_address(self.addr)}/{self.length}"

    def encode(self, add_path: bool = False) -> bytes:
        """Wire form: [path id] length, then the significant octets."""
        body = bytes((self.length,)) + self.addr[: (self.length + 7) >> 3]
        if add_path:
            return struct.pack("!I", self.path_id or 0) + body
        return body


def encode_prefix(prefix: Prefix, add_path: bool = False) -> bytes:
    return prefix.encode(add_path)


def encode_prefixes(prefixes: Iterable[Prefix], add_path: bool = False) -> bytes:
    """Concatenated NLRI for an UPDATE's NLRI/withdrawn field or an MP_(UN)REACH attribute."""
    if add_path:
        return b"".join([p.encode(True) for p in prefixes])
    return b"".join([bytes((p.length,)) + p.addr[: (p.length + 7) >> 3] for p in prefixes])


def decode_prefixes(
    data: bytes,
    afi: int,
    add_path: bool = False,
    action: ErrorAction = ErrorAction.SESSION_RESET,
) -> tuple[Prefix, ...]:
    """Parse an NLRI field; any length inconsistency is 3/10 (Invalid Network Field)."""
    width = 4 if afi == AFI_IPV4 else 16
    max_len = width * 8
    out: list[Prefix] = []
    append = out.append
    pos = 0
    end = len(data)
    while pos < end:
        path_id: int | None = None
        if add_path:
            if end - pos < 5:
                raise BGPError(
                    UPDATE_MESSAGE_ERROR,
                    INVALID_NETWORK_FIELD,
                    reason="truncated add-path NLRI",
                    action=action,
                )
            path_id = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
        length = data[pos]
        pos += 1
        if length > max_len:
            raise BGPError(
                UPDATE_MESSAGE_ERROR,
                INVALID_NETWORK_FIELD,
                reason=f"prefix length {length} exceeds {max_len}",
                action=action,
            )
        nbytes = (length + 7) >> 3
        if pos + nbytes > end:
            raise BGPError(
                UPDATE_MESSAGE_ERROR,
                INVALID_NETWORK_FIELD,
                reason="prefix overruns the NLRI field",
                action=action,
            )
        raw = data[pos : pos + nbytes]
        pos += nbytes
        rem = length & 7
        if rem and raw[-1] & ~_LAST_BYTE_MASK[rem] & 0xFF:
            raw = raw[:-1] + bytes((raw[-1] & _LAST_BYTE_MASK[rem],))
        append(Prefix(raw + _PAD[: width - nbytes], length, path_id))
    return tuple(out)


def count_prefixes(data: bytes, afi: int, add_path: bool = False) -> int:
    """Validate an NLRI field and count its prefixes without building objects."""
    max_len = 32 if afi == AFI_IPV4 else 128
    step = 5 if add_path else 1
    pos = 0
    count = 0
    end = len(data)
    while pos < end:
        if pos + step > end:
            raise BGPError(UPDATE_MESSAGE_ERROR, INVALID_NETWORK_FIELD, reason="truncated NLRI")
        length = data[pos + step - 1]
        if length > max_len:
            raise BGPError(
                UPDATE_MESSAGE_ERROR,
                INVALID_NETWORK_FIELD,
                reason=f"prefix length {length} exceeds {max_len}",
            )
        pos += step + ((length + 7) >> 3)
        count += 1
    if pos != end:
        raise BGPError(
            UPDATE_MESSAGE_ERROR, INVALID_NETWORK_FIELD, reason="prefix overruns the NLRI field"
        )
    return count
