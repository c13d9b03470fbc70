"""What the codec must know about a session to read or write its messages.

The encoding of AS numbers, NLRI path identifiers and the maximum message size depend on
what both speakers negotiated in their OPENs; the FSM builds one context per direction
(`SessionEstablished.negotiated.rx` / `.tx`).  Before the OPEN exchange, `PRE_OPEN`.
"""

from __future__ import annotations

from dataclasses import dataclass

AFI_IPV4 = 1
AFI_IPV6 = 2
AFI_L2VPN = 25
SAFI_UNICAST = 1
SAFI_MULTICAST = 2
SAFI_MPLS_LABEL = 4
SAFI_EVPN = 70
SAFI_MPLS_VPN = 128
SAFI_FLOWSPEC = 133
SAFI_FLOWSPEC_VPN = 134

IPV4_UNICAST = (AFI_IPV4, SAFI_UNICAST)
IPV6_UNICAST = (AFI_IPV6, SAFI_UNICAST)

AFI_NAMES = {1: "ipv4", 2: "ipv6", 25: "l2vpn", 16388: "bgp-ls"}
SAFI_NAMES = {
    1: "unicast",
    2: "multicast",
    4: "labeled-unicast",
    5: "mvpn",
    65: "vpls",
    70: "evpn",
    71: "bgp-ls",
    72: "bgp-ls-vpn",
    73: "sr-te",
    128: "mpls-vpn",
    129: "mpls-vpn-multicast",
    132: "rtc",
    133: "flowspec",
    134: "flowspec-vpn",
}

STANDARD_MAX_MESSAGE = 4096
EXTENDED_MAX_MESSAGE = 65535


def family_name(afi: int, safi: int) -> str:
    """'ipv4-unicast', or 'afi-99-safi-7' for families without a name."""
    return f"{AFI_NAMES.get(afi, f'afi-{afi}')}-{SAFI_NAMES.get(safi, f'safi-{safi}')}"


@dataclass(frozen=True, slots=True)
class CodecContext:
    """Negotiated encoding choices for one direction of one session."""

    four_octet_as: bool = True
    add_path: frozenset[tuple[int, int]] = frozenset()
    extended_message: bool = False

    @property
    def max_message_size(self) -> int:
        return EXTENDED_MAX_MESSAGE if self.extended_message else STANDARD_MAX_MESSAGE

    def has_add_path(self, afi: int, safi: int) -> bool:
        return bool(self.add_path) and (afi, safi) in self.add_path


DEFAULT_CONTEXT = CodecContext()
PRE_OPEN = CodecContext(four_octet_as=False)
