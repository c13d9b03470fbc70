"""Messages built by someone else (scapy's BGP layer, hex laid out from the RFCs) decode
correctly, including families and attributes we never originate."""

from __future__ import annotations

import ipaddress
import logging
import struct

from bgp import attributes as A
from bgp import capabilities as C
from bgp import messages as M
from bgp.context import CodecContext
from bgp.nlri import Prefix

logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.contrib import bgp as S  # noqa: E402

TWO_OCTET = CodecContext(four_octet_as=False)


def hx(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def test_scapy_update_with_communities_and_med() -> None:
    pkt = S.BGPHeader(type=2) / S.BGPUpdate(
        path_attr=[
            S.BGPPathAttr(type_flags=0x40, type_code=1, attribute=S.BGPPAOrigin(origin=2)),
            S.BGPPathAttr(
                type_flags=0x40,
                type_code=2,
                attribute=S.BGPPAASPath(
                    segments=[
                        S.BGPPAASPath.ASPathSegment(segment_type=2, segment_value=[64500, 64501]),
                        S.BGPPAASPath.ASPathSegment(segment_type=1, segment_value=[65001, 65002]),
                    ]
                ),
            ),
            S.BGPPathAttr(
                type_flags=0x40, type_code=3, attribute=S.BGPPANextHop(next_hop="198.51.100.1")
            ),
            S.BGPPathAttr(type_flags=0x80, type_code=4, attribute=S.BGPPAMultiExitDisc(med=10)),
            S.BGPPathAttr(type_flags=0x40, type_code=5, attribute=S.BGPPALocalPref(local_pref=200)),
            S.BGPPathAttr(
                type_flags=0xC0, type_code=8, attribute=S.BGPPACommunity(community=0xFFFFFF01)
            ),
            S.BGPPathAttr(
                type_flags=0xC0,
                type_code=32,
                attribute=S.BGPPALargeCommunity(
                    segments=[
                        S.BGPLargeCommunitySegment(
                            global_administrator=64512, local_data_part1=1, local_data_part2=2
                        )
                    ]
                ),
            ),
        ],
        nlri=[S.BGPNLRI_IPv4(prefix="203.0.113.0/24"), S.BGPNLRI_IPv4(prefix="192.0.2.128/25")],
        withdrawn_routes=[S.BGPNLRI_IPv4(prefix="198.51.100.0/24")],
    )
    got = M.decode(bytes(pkt), TWO_OCTET)
    assert isinstance(got, M.Update) and got.problems == ()
    assert [str(p) for p in got.nlri] == ["203.0.113.0/24", "192.0.2.128/25"]
    assert [str(p) for p in got.withdrawn] == ["198.51.100.0/24"]
    assert got.attributes == (
        A.Origin(2),
        A.AsPath(
            (
                A.AsPathSegment(A.AS_SEQUENCE, (64500, 64501)),
                A.AsPathSegment(A.AS_SET, (65001, 65002)),
            )
        ),
        A.NextHop(ipaddress.IPv4Address("198.51.100.1")),
        A.MultiExitDisc(10),
        A.LocalPref(200),
        A.Communities((A.WELL_KNOWN_COMMUNITIES["no-export"],)),
        A.LargeCommunities(((64512, 1, 2),)),
    )


def test_scapy_open_with_capabilities() -> None:
    pkt = S.BGPHeader(type=1) / S.BGPOpen(
        my_as=23456,
        hold_time=90,
        bgp_id="198.51.100.1",
        opt_params=[
            S.BGPOptParam(param_type=2, param_value=S.BGPCapMultiprotocol(afi=2, safi=1)),
            S.BGPOptParam(param_type=2, param_value=S.BGPCapFourBytesASN(asn=4200000000)),
            S.BGPOptParam(
                param_type=2,
                param_value=S.BGPCapGracefulRestart(
                    restart_time=120,
                    restart_flags=0x8,
                    entries=[S.BGPCapGracefulRestart.GRTuple(afi=1, safi=1, flags=0x80)],
                ),
            ),
        ],
    )
    got = M.decode(bytes(pkt))
    assert got == M.Open(
        4200000000,
        90,
        ipaddress.IPv4Address("198.51.100.1"),
        (
            C.Multiprotocol(2, 1),
            C.FourOctetAS(4200000000),
            C.GracefulRestart(120, True, False, (C.GracefulRestartFamily(1, 1, True),)),
        ),
    )
    assert isinstance(got, M.Open) and got.my_as_field == 23456


def test_scapy_mp_reach_ipv6_with_link_local() -> None:
    pkt = S.BGPHeader(type=2) / S.BGPUpdate(
        path_attr=[
            S.BGPPathAttr(type_flags=0x40, type_code=1, attribute=S.BGPPAOrigin(origin=0)),
            S.BGPPathAttr(type_flags=0x40, type_code=2, attribute=S.BGPPAASPath(segments=[])),
            S.BGPPathAttr(
                type_flags=0x80,
                type_code=14,
                attribute=S.BGPPAMPReachNLRI(
                    afi=2,
                    safi=1,
                    nh_addr_len=32,
                    nh_v6_global="2001:db8::1",
                    nh_v6_link_local="fe80::1",
                    nlri=[S.BGPNLRI_IPv6(prefix="2001:db8:200::/64")],
                ),
            ),
        ]
    )
    got = M.decode(bytes(pkt), TWO_OCTET)
    assert isinstance(got, M.Update) and got.problems == ()
    reach = got.mp_reach
    assert reach is not None
    assert [str(a) for a in reach.next_hop_addresses()] == ["2001:db8::1", "fe80::1"]
    assert [str(p) for p in reach.nlri] == ["2001:db8:200::/64"]


def test_scapy_notification_and_keepalive() -> None:
    note = M.decode(
        bytes(
            S.BGPHeader(type=3) / S.BGPNotification(error_code=6, error_subcode=2, data=b"\x04down")
        )
    )
    assert note == M.Notification(6, 2, b"\x04down")
    assert isinstance(note, M.Notification) and note.shutdown_message == "down"
    assert M.decode(bytes(S.BGPHeader(type=4))) == M.Keepalive()


# Hex laid out by hand from RFC 4271 / 4760 / 4364 / 8955 / 7432.
UPDATE_HEAD = "ffffffffffffffffffffffffffffffff"
ORIGIN_IGP = "40 01 01 00"
AS_PATH_4 = "40 02 06 02 01 0000fbf4"


def update_hex(attrs: str, nlri: str = "") -> bytes:
    a = hx(attrs)
    body = b"\x00\x00" + struct.pack("!H", len(a)) + a + hx(nlri)
    return hx(UPDATE_HEAD) + struct.pack("!HB", 19 + len(body), 2) + body


def test_vpnv4_mp_reach_kept_raw() -> None:
    # AFI 1, SAFI 128, next hop RD 0:0 + 192.0.2.1, NLRI: 112 bits = label 0x00064 bottom,
    # RD type 0 64500:1, prefix 203.0.113/24.
    nlri = "70 000641 0000fbf400000001 cb0071"
    value = "0001 80 0c 0000000000000000 c0000201 00 " + nlri
    got = M.decode(update_hex(f"{ORIGIN_IGP} {AS_PATH_4} 80 0e {len(hx(value)):02x} {value}"))
    assert isinstance(got, M.Update) and got.problems == ()
    reach = got.mp_reach
    assert reach is not None and (reach.afi, reach.safi) == (1, 128)
    assert reach.raw_nlri == hx(nlri)
    assert reach.next_hop_addresses() == (ipaddress.IPv4Address("192.0.2.1"),)


def test_flowspec_mp_reach_kept_raw() -> None:
    # AFI 1, SAFI 133, no next hop; NLRI: len 6, dest prefix 203.0.113/24... component type 1.
    nlri = "08 01 18 cb0071 03 81 06"
    value = "0001 85 00 00 " + nlri
    ext = "c0 10 08 8006 0000 00000000"  # traffic-rate 0 (discard)
    got = M.decode(update_hex(f"{ORIGIN_IGP} {AS_PATH_4} 80 0e {len(hx(value)):02x} {value} {ext}"))
    assert isinstance(got, M.Update) and got.problems == ()
    reach = got.mp_reach
    assert reach is not None and (reach.afi, reach.safi) == (1, 133) and reach.raw_nlri == hx(nlri)
    ec = got.attribute(A.EXTENDED_COMMUNITIES)
    assert isinstance(ec, A.ExtendedCommunities) and ec.values == (0x8006000000000000,)


def test_evpn_mp_reach_and_route_target() -> None:
    # AFI 25, SAFI 70, next hop 192.0.2.1; route type 3 (inclusive multicast), 17 octets.
    nlri = "03 11 0001c00002010001 00000000 20 c0000201"
    value = "0019 46 04 c0000201 00 " + nlri
    rt = "c0 10 08 0002 fbf4 00000064"  # route target 64500:100
    got = M.decode(update_hex(f"{ORIGIN_IGP} {AS_PATH_4} 80 0e {len(hx(value)):02x} {value} {rt}"))
    assert isinstance(got, M.Update) and got.problems == ()
    reach = got.mp_reach
    assert reach is not None and (reach.afi, reach.safi) == (25, 70)
    ec = got.attribute(A.EXTENDED_COMMUNITIES)
    assert isinstance(ec, A.ExtendedCommunities)
    assert A.format_extended_community(ec.values[0]) == "rt:64500:100"


def test_add_path_nlri_decoded_with_context() -> None:
    # RFC 7911: path id 1 then 203.0.113.0/24, path id 2 then the same prefix.
    nlri = "00000001 18 cb0071 00000002 18 cb0071"
    attrs = f"{ORIGIN_IGP} {AS_PATH_4} 40 03 04 c6336401"
    got = M.decode(update_hex(attrs, nlri), CodecContext(add_path=frozenset({(1, 1)})))
    assert isinstance(got, M.Update) and got.problems == ()
    assert got.nlri == (Prefix.parse("203.0.113.0/24", 1), Prefix.parse("203.0.113.0/24", 2))


def test_unknown_optional_transitive_attribute_kept_with_flags() -> None:
    # Type 35 (OTC) is not interpreted; sent with the Partial bit set; type 200 unknown.
    attrs = f"{ORIGIN_IGP} {AS_PATH_4} 40 03 04 c6336401 e0 23 04 0000fbf4 c0 c8 02 abcd"
    got = M.decode(update_hex(attrs, "18 cb0071"))
    assert isinstance(got, M.Update) and got.problems == ()
    assert got.attribute(35) == A.UnknownAttribute(35, hx("0000fbf4"), 0xE0)
    unknown = got.attribute(200)
    assert unknown == A.UnknownAttribute(200, hx("abcd"), 0xC0)
    assert unknown.for_forwarding() == A.UnknownAttribute(200, hx("abcd"), 0xE0)
    assert A.UnknownAttribute(201, b"", 0x80).for_forwarding() is None  # non-transitive


def test_unknown_capabilities_kept_raw() -> None:
    # hostname (73), long-lived GR (71), and a private capability 200.
    caps = "49 07 05 6e6f646531 00  47 07 0001 01 80 000e10  c8 01 ff"
    c = hx(caps)
    body = hx("04 fbf4 005a c6336401") + bytes([len(c) + 2, 2, len(c)]) + c
    wire = hx(UPDATE_HEAD) + struct.pack("!HB", 19 + len(body), 1) + body
    got = M.decode(wire)
    assert isinstance(got, M.Open)
    assert got.capabilities == (
        C.UnknownCapability(73, hx("05 6e6f646531 00")),
        C.UnknownCapability(71, hx("0001 01 80 000e10")),
        C.UnknownCapability(200, b"\xff"),
    )


def test_enhanced_route_refresh_subtypes() -> None:
    for subtype in (1, 2):
        wire = hx(UPDATE_HEAD) + hx(f"0017 05 0001 {subtype:02x} 01")
        assert M.decode(wire) == M.RouteRefresh(1, 1, subtype)


def test_rfc9072_extended_optional_parameters() -> None:
    caps = hx("02 0006 01 04 0001 0001")
    body = hx("04 fbf4 005a c6336401 ff ff") + struct.pack("!H", len(caps)) + caps
    wire = hx(UPDATE_HEAD) + struct.pack("!HB", 19 + len(body), 1) + body
    got = M.decode(wire)
    assert isinstance(got, M.Open) and got.capabilities == (C.Multiprotocol(1, 1),)
