"""Bytes captured from real routers on this machine decode as the routers meant them, and
drive the session FSM to Established.

Captured with tests/lab (one router namespace, one node) by connecting to each router from
the node, sending an OPEN with MP IPv4/IPv6, route refresh, 4-octet AS, graceful restart,
extended message, add-path receive for IPv4 unicast and enhanced route refresh, and recording
everything the router sent for a few seconds: FRR bgpd 8.4.4 (`frr defaults datacenter`,
addpath-tx-all-paths), GoBGP 3.10.0, BIRD 2.0.12 (add paths tx, graceful restart).
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import pytest

from bgp import attributes as A
from bgp import capabilities as C
from bgp import events as E
from bgp import messages as M
from bgp.context import CodecContext
from bgp.errors import BGPError
from bgp.fsm import Session, SessionConfig, State
from bgp.nlri import Prefix

FRR = bytes.fromhex(
    "ffffffffffffffffffffffffffffffff00710104fbf40009c633640154020601040001000102060104000200"
    "01020280000202020002024600020641040000fbf402020600020a450800010103000201030206490402766d"
    "0002044002c0780210470e0001018000000000020180000000ffffffffffffffffffffffffffffffff001304"
    "ffffffffffffffffffffffffffffffff003c020000001c400101005002000602010000fbf4400304c6336401"
    "800404000000000000000219c0000200ffffffffffffffffffffffffffffffff005e0200000047900e002e00"
    "02012020010db8010000000000000000000001fe800000000000005417c7fffeb37427004020010db8020000"
    "00400101005002000602010000fbf480040400000000ffffffffffffffffffffffffffffffff001702000000"
    "00ffffffffffffffffffffffffffffffff001d0200000006800f03000201ffffffffffffffffffffffffffff"
    "ffff001304ffffffffffffffffffffffffffffffff001304"
)

GOBGP = bytes.fromhex(
    "ffffffffffffffffffffffffffffffff00410104fbf4005ac63364012402220200490402766d000104000100"
    "0101040002000141040000fbf40506000100010002ffffffffffffffffffffffffffffffff001304ffffffff"
    "ffffffffffffffffffffffff005002000000354001010240020602010000fbf4400304c63364018004040000"
    "002ac00808fde80064ffffff01c0200c0000fbf4000000010000000218cb0071ffffffffffffffffffffffff"
    "ffffffff004c02000000354001010240020602010000fbf4c00804fde800c8800e1e00020110000000000000"
    "00000000ffffc6336401004020010db802000000"
)

BIRD = bytes.fromhex(
    "ffffffffffffffffffffffffffffffff00490104fbf400f0c63364012c022a01040001000101040002000102"
    "00400a0078000101000002010041040000fbf445040001010246004700ffffffffffffffffffffffffffffff"
    "ff001304ffffffffffffffffffffffffffffffff003402000000144001010040020602010000fbf4400304c6"
    "3364010000000219c0000200ffffffffffffffffffffffffffffffff0049020000002a400101004002060201"
    "0000fbf4400304c6336401c00804fde80064c0200c0000fbf400000001000000020000000218cb0071ffffff"
    "ffffffffffffffffffffffffff00170200000000ffffffffffffffffffffffffffffffff005d020000004690"
    "0e002e0002012020010db8010000000000000000000001fe800000000000006c2853fffe501929004020010d"
    "b8020000004001010040020602010000fbf4c00804fde800c8ffffffffffffffffffffffffffffffff001d02"
    "00000006800f03000201"
)


ADD_PATH_V4 = CodecContext(add_path=frozenset({(1, 1)}), extended_message=True)


def decode_all(wire: bytes, ctx: CodecContext) -> list[M.Message]:
    buf = bytearray(wire)
    return [M.decode(raw, ctx) for raw in M.iter_messages(buf, 65535)]


def updates(msgs: list[M.Message]) -> list[M.Update]:
    return [m for m in msgs if isinstance(m, M.Update)]


def test_frr_capture() -> None:
    msgs = decode_all(FRR, ADD_PATH_V4)
    op = msgs[0]
    assert isinstance(op, M.Open) and op.asn == 64500 and op.hold_time == 9
    codes = [c.code for c in op.capabilities]
    assert codes == [1, 1, 128, 2, 70, 65, 6, 69, 73, 64, 71]
    assert op.capability(C.CAP_ADD_PATH) == C.AddPath(((1, 1, 3), (2, 1, 3)))
    gr = op.capability(C.CAP_GRACEFUL_RESTART)
    assert gr == C.GracefulRestart(120, restart_state=True, notification=True, families=())
    assert isinstance(op.capability(C.CAP_FQDN), C.UnknownCapability)
    v4, v6, eor4, eor6 = updates(msgs)
    assert v4.nlri == (Prefix.parse("192.0.2.0/25", 2),) and v4.problems == ()
    assert v4.attribute(A.NEXT_HOP) == A.NextHop(ipaddress.IPv4Address("198.51.100.1"))
    assert v4.attribute(A.AS_PATH) == A.AsPath.sequence(64500)  # sent with Extended Length
    reach = v6.mp_reach
    assert reach is not None and [str(p) for p in reach.nlri] == ["2001:db8:200::/64"]
    hops = reach.next_hop_addresses()
    assert str(hops[0]) == "2001:db8:100::1" and hops[1].is_link_local
    assert eor4.end_of_rib() == (1, 1) and eor6.end_of_rib() == (2, 1)


def test_frr_capture_without_add_path_context_is_a_network_field_error() -> None:
    """The same bytes read as if add-path had not been negotiated: 3/10, as FRR would get."""
    with pytest.raises(BGPError) as info:
        decode_all(FRR, CodecContext(extended_message=True))
    assert (info.value.code, info.value.subcode) == (3, 10)


def test_gobgp_capture() -> None:
    msgs = decode_all(GOBGP, CodecContext())
    op = msgs[0]
    assert isinstance(op, M.Open) and op.router_id == ipaddress.IPv4Address("198.51.100.1")
    assert op.capability(C.CAP_EXTENDED_NEXT_HOP) == C.ExtendedNextHop(((1, 1, 2),))
    v4, v6 = updates(msgs)
    assert [str(p) for p in v4.nlri] == ["203.0.113.0/24"]
    assert v4.attribute(A.COMMUNITIES) == A.Communities.parse("65000:100", "no-export")
    assert v4.attribute(A.LARGE_COMMUNITY) == A.LargeCommunities.parse("64500:1:2")
    assert v4.attribute(A.MULTI_EXIT_DISC) == A.MultiExitDisc(42)
    assert v4.attribute(A.ORIGIN) == A.Origin(A.ORIGIN_INCOMPLETE)
    reach = v6.mp_reach
    assert reach is not None
    assert reach.next_hop_addresses() == (ipaddress.IPv6Address("::ffff:198.51.100.1"),)


def test_bird_capture() -> None:
    msgs = decode_all(BIRD, ADD_PATH_V4)
    op = msgs[0]
    assert isinstance(op, M.Open) and op.hold_time == 240
    assert op.capability(C.CAP_ADD_PATH) == C.AddPath(((1, 1, 2),))
    assert op.capability(C.CAP_LONG_LIVED_GR) == C.UnknownCapability(71, b"")
    ups = updates(msgs)
    assert [u.end_of_rib() for u in ups] == [None, None, (1, 1), None, (2, 1)]
    assert ups[1].nlri == (Prefix.parse("203.0.113.0/24", 2),)
    assert ups[1].attribute(A.LARGE_COMMUNITY) == A.LargeCommunities.parse("64500:1:2")
    assert all(u.problems == () for u in ups)


@pytest.mark.parametrize(
    ("wire", "announced", "eor"),
    [(FRR, 2, {(1, 1), (2, 1)}), (GOBGP, 2, set()), (BIRD, 3, {(1, 1), (2, 1)})],
    ids=["frr", "gobgp", "bird"],
)
def test_captured_sessions_establish_in_the_fsm(
    wire: bytes, announced: int, eor: set[tuple[int, int]]
) -> None:
    cfg = SessionConfig(
        local_as=64512,
        router_id=ipaddress.IPv4Address("198.51.100.11"),
        peer_as=64500,
        families=((1, 1), (2, 1)),
        graceful_restart=True,
        extra_capabilities=(C.AddPath(((1, 1, 1),)),),
    )
    s = Session(cfg, random.Random(1))
    s.start(0)
    req = s.next_event()
    assert isinstance(req, E.ConnectRequested)
    s.connection_made(req.conn_id, 0)
    for i in range(0, len(wire), 50):  # as TCP might deliver it
        s.data_received(req.conn_id, wire[i : i + 50], 1)
    events: list[Any] = []
    while (ev := s.next_event()) is not None:
        events.append(ev)
    assert s.state == State.ESTABLISHED, events
    assert s.counters.prefixes_received == announced
    assert s.eor_received == eor  # GoBGP sends End-of-RIB only with graceful restart
    assert not any(isinstance(e, E.SessionDown) for e in events)
