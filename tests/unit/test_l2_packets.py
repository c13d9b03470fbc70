"""The ARP/NDP codec: round trips, checksums cross-checked with scapy, malformed input rejected."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from l2 import packets as p

macs = st.binary(min_size=6, max_size=6)
ipv4s = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
ipv6s = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
unicast6 = ipv6s.filter(lambda a: not a.is_multicast)
options = st.lists(
    st.builds(
        p.NdpOption,
        st.integers(0, 255),
        st.binary(max_size=30).map(lambda b: b + bytes(-(len(b) + 2) % 8)),
    ),
    max_size=3,
).map(tuple)


@given(st.sampled_from([p.ARP_REQUEST, p.ARP_REPLY]), macs, ipv4s, macs, ipv4s, macs, macs)
def test_arp_round_trip(
    op: int,
    sha: bytes,
    spa: ipaddress.IPv4Address,
    tha: bytes,
    tpa: ipaddress.IPv4Address,
    dst: bytes,
    src: bytes,
) -> None:
    arp = p.Arp(op, sha, spa, tha, tpa)
    frame = p.arp_frame(dst, src, arp)
    assert len(frame) == p.ETH_MIN_FRAME  # padded like a real NIC would
    eth = p.parse_ethernet(frame)
    assert (eth.dst, eth.src, eth.ethertype) == (dst, src, p.ETH_P_ARP)
    assert p.parse_arp(eth.payload) == arp


@given(unicast6, options, unicast6, ipv6s)
def test_ns_round_trip(
    target: ipaddress.IPv6Address,
    opts: tuple[p.NdpOption, ...],
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
) -> None:
    if src == p.UNSPECIFIED6:
        src = ipaddress.IPv6Address("fe80::1")
    frame = p.ndp_frame(
        b"\x33\x33\xff\x00\x00\x01", b"\x02" * 6, src, dst, p.NeighborSolicitation(target, opts)
    )
    ip = p.parse_ipv6(p.parse_ethernet(frame).payload)
    assert (ip.src, ip.dst, ip.hop_limit) == (src, dst, 255)
    assert p.parse_ndp(ip) == p.NeighborSolicitation(target, opts)


@given(unicast6, st.booleans(), st.booleans(), st.booleans(), macs, unicast6, ipv6s)
def test_na_round_trip(
    target: ipaddress.IPv6Address,
    r: bool,
    s: bool,
    o: bool,
    mac: bytes,
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
) -> None:
    na = p.NeighborAdvertisement(target, r, s, o, (p.lladdr_option(p.NDP_OPT_TARGET_LLADDR, mac),))
    frame = p.ndp_frame(b"\x02" * 6, b"\x04" * 6, src, dst, na)
    parsed = p.parse_ndp(p.parse_ipv6(p.parse_ethernet(frame).payload))
    assert parsed == na
    assert isinstance(parsed, p.NeighborAdvertisement) and parsed.target_lladdr == mac


def test_na_matches_scapy_including_checksum() -> None:
    """An independent implementation decodes our NA and computes the same checksum."""
    na = p.NeighborAdvertisement(
        ipaddress.IPv6Address("2001:db8:100::200"),
        solicited=True,
        override=True,
        options=(p.lladdr_option(p.NDP_OPT_TARGET_LLADDR, bytes.fromhex("020000000011")),),
    )
    frame = p.ndp_frame(
        bytes.fromhex("020000000064"),
        bytes.fromhex("020000000011"),
        ipaddress.IPv6Address("2001:db8:100::200"),
        ipaddress.IPv6Address("2001:db8:100::64"),
        na,
    )
    pkt = Ether(frame)
    ours = pkt[ICMPv6ND_NA].cksum
    assert pkt[IPv6].hlim == 255
    assert pkt[ICMPv6ND_NA].S == 1 and pkt[ICMPv6ND_NA].O == 1 and pkt[ICMPv6ND_NA].R == 0
    assert pkt[ICMPv6ND_NA].tgt == "2001:db8:100::200"
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:11"
    del pkt[ICMPv6ND_NA].cksum
    assert Ether(bytes(pkt))[ICMPv6ND_NA].cksum == ours


def test_scapy_frames_parse() -> None:
    ns = bytes(
        Ether(src="02:00:00:00:00:64", dst="33:33:ff:00:02:00")
        / IPv6(src="2001:db8:100::64", dst="ff02::1:ff00:200", hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8:100::200")
    )
    msg = p.parse_ndp(p.parse_ipv6(p.parse_ethernet(ns).payload))
    assert msg == p.NeighborSolicitation(ipaddress.IPv6Address("2001:db8:100::200"))
    assert msg.source_lladdr is None
    arp = bytes(
        Ether(src="02:00:00:00:00:64", dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, psrc="198.51.100.100", pdst="198.51.100.200", hwsrc="02:00:00:00:00:64")
    )
    parsed = p.parse_arp(p.parse_ethernet(arp).payload)
    assert parsed.target_ip == ipaddress.IPv4Address("198.51.100.200")


def _ns_bytes(**over: object) -> bytes:
    fields: dict[str, Any] = {"src": "2001:db8:100::64", "dst": "ff02::1:ff00:200", "hlim": 255}
    fields.update(over)
    return bytes(IPv6(**fields) / ICMPv6ND_NS(tgt="2001:db8:100::200"))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00" * 10, "ethernet-truncated"),
    ],
)
def test_ethernet_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(p.MalformedFrame) as exc:
        p.parse_ethernet(data)
    assert exc.value.reason == reason


def test_arp_malformed() -> None:
    good = p.Arp(
        1,
        b"\x02" * 6,
        ipaddress.IPv4Address("1.2.3.4"),
        p.ZERO_MAC,
        ipaddress.IPv4Address("5.6.7.8"),
    ).build()
    for data, reason in [
        (good[:20], "arp-truncated"),
        (b"\x00\x06" + good[2:], "arp-not-ethernet-ipv4"),
        (good[:4] + b"\x06\x10" + good[6:], "arp-not-ethernet-ipv4"),
        (good[:6] + b"\x00\x09" + good[8:], "arp-bad-op"),
    ]:
        with pytest.raises(p.MalformedFrame) as exc:
            p.parse_arp(data)
        assert exc.value.reason == reason


def test_ndp_malformed() -> None:
    good = _ns_bytes()
    p.parse_ndp(p.parse_ipv6(good))
    bad_sum = bytearray(good)
    bad_sum[42] ^= 0xFF
    zero_opt = bytes(
        IPv6(src="2001:db8:100::64", dst="ff02::1:ff00:200", hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8:100::200")
        / bytes([1, 0, 0, 0, 0, 0, 0, 0])
    )
    cases = [
        (good[:30], "ipv6-truncated"),
        (b"\x40" + good[1:], "ipv6-bad-version"),
        (good[:-1], "ipv6-truncated"),
        (_ns_bytes(hlim=64), "ndp-hop-limit"),
        (bytes(bad_sum), "icmpv6-bad-checksum"),
        (
            bytes(
                IPv6(src="::", dst="2001:db8:100::200", hlim=255)
                / ICMPv6ND_NS(tgt="2001:db8:100::200")
            ),
            "ndp-bad-dad-probe",
        ),
        (
            bytes(IPv6(src="2001:db8::1", dst="ff02::1", hlim=255) / ICMPv6ND_NS(tgt="ff02::5")),
            "ndp-multicast-target",
        ),
    ]
    for data, reason in cases:
        with pytest.raises(p.MalformedFrame) as exc:
            p.parse_ndp(p.parse_ipv6(data))
        assert exc.value.reason == reason, data
    # scapy recomputes the checksum over our zero-length option, so only that rule trips.
    with pytest.raises(p.MalformedFrame) as exc:
        p.parse_ndp(p.parse_ipv6(zero_opt))
    assert exc.value.reason == "ndp-option-zero-length"


@given(st.binary(max_size=120))
def test_random_bytes_only_ever_raise_malformed(data: bytes) -> None:
    for parse in (p.parse_ethernet, p.parse_arp):
        try:
            parse(data)
        except p.MalformedFrame:
            pass
    try:
        p.parse_ndp(p.parse_ipv6(data))
    except p.MalformedFrame:
        pass


def test_solicited_node_and_multicast_mac() -> None:
    group = p.solicited_node(ipaddress.IPv6Address("2001:db8:100::1:2a3"))
    assert group == ipaddress.IPv6Address("ff02::1:ff01:2a3")
    assert p.multicast_mac(group) == bytes.fromhex("3333ff0102a3")
    assert p.mac_str(p.parse_mac("02:AB:00:00:00:01")) == "02:ab:00:00:00:01"
