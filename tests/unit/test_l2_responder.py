"""The responder's decisions on real frame bytes (built with scapy, an independent codec)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether

from l2 import packets as p
from l2.responder import (
    PACKET_OUTGOING,
    BurstConfig,
    Conflict,
    InterfaceInfo,
    Responder,
    TakeoverSent,
    diff_announcements,
)

MAC = "02:00:00:00:00:11"
CLIENT_MAC = "02:00:00:00:00:64"
OTHER_MAC = "02:00:00:00:00:99"
VIP4 = ipaddress.IPv4Address("198.51.100.200")
VIP6 = ipaddress.IPv6Address("2001:db8:100::200")
LL = ipaddress.IPv6Address("fe80::11")


def make(na_source: str = "target") -> Responder:
    r = Responder(na_source)  # type: ignore[arg-type]
    r.set_interface(InterfaceInfo("eth0", p.parse_mac(MAC), LL))
    r.set_interface(InterfaceInfo("eth1", p.parse_mac("02:00:00:00:01:11")))
    r.set_announced({"eth0": [VIP4, VIP6]})
    return r


def answer(r: Responder, interface: str, frame: bytes, pkttype: int = 0) -> list[bytes]:
    """Feed one frame; the answers, which always go out on the interface it came in on."""
    r.frame_received(interface, frame, pkttype)
    out = r.datagrams_to_send()
    assert all(name == interface for name, _ in out)
    return [f for _, f in out]


def sent(r: Responder) -> list[tuple[str, str, int]]:
    """(interface, kind, ARP op or ICMPv6 type) of every queued frame, in order."""
    out = []
    for name, frame in r.datagrams_to_send():
        pkt = Ether(frame)
        out.append((name, "arp", pkt[ARP].op) if ARP in pkt else (name, "na", pkt[IPv6].nh))
    return out


def takeover_events(r: Responder) -> list[TakeoverSent]:
    events = []
    while (event := r.next_event()) is not None:
        assert isinstance(event, TakeoverSent)
        events.append(event)
    return events


def arp_request(
    target: str = str(VIP4),
    dst: str = "ff:ff:ff:ff:ff:ff",
    sender: str = "198.51.100.100",
    hwsrc: str = CLIENT_MAC,
    op: int = 1,
) -> bytes:
    return bytes(Ether(src=hwsrc, dst=dst) / ARP(op=op, hwsrc=hwsrc, psrc=sender, pdst=target))


def ns(
    target: str = str(VIP6),
    src: str = "2001:db8:100::64",
    dst: str | None = None,
    slla: str | None = CLIENT_MAC,
    eth_src: str = CLIENT_MAC,
    eth_dst: str | None = None,
) -> bytes:
    dst_ip = ipaddress.IPv6Address(dst or p.solicited_node(ipaddress.IPv6Address(target)))
    if eth_dst is None:
        eth_dst = p.mac_str(p.multicast_mac(dst_ip)) if dst_ip.is_multicast else MAC
    dst = str(dst_ip)
    pkt = (
        Ether(src=eth_src, dst=eth_dst) / IPv6(src=src, dst=dst, hlim=255) / ICMPv6ND_NS(tgt=target)
    )
    if slla:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=slla)
    return bytes(pkt)


def test_arp_request_for_announced_ip_gets_one_reply_with_interface_mac() -> None:
    r = make()
    (reply,) = answer(r, "eth0", arp_request())
    pkt = Ether(reply)
    assert pkt.dst == CLIENT_MAC and pkt.src == MAC
    assert pkt[ARP].op == 2 and pkt[ARP].hwsrc == MAC and pkt[ARP].psrc == str(VIP4)
    assert pkt[ARP].hwdst == CLIENT_MAC and pkt[ARP].pdst == "198.51.100.100"
    assert r.counters.requests_received[str(VIP4)] == 1
    assert r.counters.responses_sent[str(VIP4)] == 1


def test_unicast_arp_request_to_our_mac_is_answered_but_not_to_another_mac() -> None:
    r = make()
    assert len(answer(r, "eth0", arp_request(dst=MAC))) == 1
    assert answer(r, "eth0", arp_request(dst=OTHER_MAC)) == []
    assert r.counters.dropped["not-for-us"] == 1


def test_never_answers_unannounced_ip_other_interface_or_own_frames() -> None:
    r = make()
    assert answer(r, "eth0", arp_request(target="198.51.100.201")) == []
    assert answer(r, "eth1", arp_request()) == []  # announced, but not on eth1
    assert answer(r, "eth9", arp_request()) == []  # not a served interface
    assert answer(r, "eth0", arp_request(), PACKET_OUTGOING) == []
    assert answer(r, "eth0", ns(target="2001:db8:100::201")) == []
    assert r.counters.responses_sent == {}
    assert r.counters.dropped["outgoing"] == 1
    assert r.counters.dropped["interface-not-served"] == 1


def test_withdrawn_ip_is_no_longer_answered() -> None:
    r = make()
    r.set_announced({"eth0": [VIP6]})
    assert answer(r, "eth0", arp_request()) == []
    r.set_announced({})
    assert answer(r, "eth0", ns()) == []


def test_another_mac_claiming_our_ip_is_a_conflict_and_gratuitous_is_not_answered() -> None:
    r = make()
    garp = arp_request(sender=str(VIP4), hwsrc=OTHER_MAC)
    assert answer(r, "eth0", garp) == []
    reply = arp_request(op=2, sender=str(VIP4), hwsrc=OTHER_MAC, target=str(VIP4))
    assert answer(r, "eth0", reply) == []
    assert r.counters.conflicts[str(VIP4)] == 2
    event = r.next_event()
    assert isinstance(event, Conflict) and event.mac == OTHER_MAC and event.ip == str(VIP4)
    assert event.how == "arp-sender"
    # Our own MAC as sender (another of our sockets' frames looped back) is not a conflict.
    answer(r, "eth0", arp_request(sender=str(VIP4), hwsrc=MAC))
    assert r.counters.conflicts[str(VIP4)] == 2


def test_ns_with_slla_gets_solicited_override_na_from_target() -> None:
    r = make()
    (reply,) = answer(r, "eth0", ns())
    pkt = Ether(reply)
    assert pkt.dst == CLIENT_MAC and pkt.src == MAC
    assert pkt[IPv6].hlim == 255 and pkt[IPv6].src == str(VIP6)
    assert pkt[IPv6].dst == "2001:db8:100::64"
    na = pkt[ICMPv6ND_NA]
    assert (na.S, na.O, na.R) == (1, 1, 0) and na.tgt == str(VIP6)
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == MAC
    cksum = na.cksum
    del pkt[ICMPv6ND_NA].cksum
    assert Ether(bytes(pkt))[ICMPv6ND_NA].cksum == cksum
    assert r.counters.responses_sent[str(VIP6)] == 1


def test_unicast_ns_without_slla_is_answered_to_frame_source() -> None:
    """MetalLB #2920: NUD probes carry no SLLA; reply to the Ethernet source."""
    r = make()
    frame = ns(dst=str(VIP6), slla=None, eth_src=OTHER_MAC, eth_dst=MAC)
    (reply,) = answer(r, "eth0", frame)
    assert Ether(reply).dst == OTHER_MAC


def test_slla_wins_over_frame_source() -> None:
    r = make()
    (reply,) = answer(r, "eth0", ns(slla=CLIENT_MAC, eth_src=OTHER_MAC))
    assert Ether(reply).dst == CLIENT_MAC


def test_link_local_source_option_falls_back_to_target_while_tentative() -> None:
    r = make("link-local")
    (reply,) = answer(r, "eth0", ns())
    assert Ether(reply)[IPv6].src == str(LL)
    r.set_interface(InterfaceInfo("eth0", p.parse_mac(MAC), None))  # link-local tentative
    (reply,) = answer(r, "eth0", ns())
    assert Ether(reply)[IPv6].src == str(VIP6)


def test_dad_probe_for_our_address_is_defended_and_reported() -> None:
    r = make()
    (reply,) = answer(r, "eth0", ns(src="::", slla=None, eth_src=OTHER_MAC))
    pkt = Ether(reply)
    assert pkt[IPv6].dst == "ff02::1" and pkt.dst == "33:33:00:00:00:01"
    assert (pkt[ICMPv6ND_NA].S, pkt[ICMPv6ND_NA].O) == (0, 1)
    assert r.counters.conflicts[str(VIP6)] == 1


def test_na_from_another_mac_for_our_address_is_a_conflict() -> None:
    r = make()
    na = bytes(
        Ether(src=OTHER_MAC, dst="33:33:00:00:00:01")
        / IPv6(src=str(VIP6), dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(tgt=str(VIP6), O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=OTHER_MAC)
    )
    assert answer(r, "eth0", na) == []
    assert r.counters.conflicts[str(VIP6)] == 1


def test_ns_to_wrong_group_or_other_unicast_mac_is_dropped() -> None:
    r = make()
    assert answer(r, "eth0", ns(dst="ff02::1:ff00:999")) == []
    assert r.counters.malformed["ndp-bad-destination"] == 1
    assert answer(r, "eth0", ns(dst=str(VIP6), eth_dst=OTHER_MAC)) == []
    assert r.counters.dropped["not-for-us"] == 1


def test_malformed_frames_are_dropped_and_counted() -> None:
    r = make()
    good = ns()
    bad = bytearray(good)
    bad[-10] ^= 0x55  # breaks the ICMPv6 checksum
    assert answer(r, "eth0", bytes(bad)) == []
    assert answer(r, "eth0", good[:20]) == []
    assert answer(r, "eth0", arp_request()[:30]) == []
    assert answer(r, "eth0", b"\x01") == []
    assert r.counters.malformed == {
        "icmpv6-bad-checksum": 1,
        "ipv6-truncated": 1,
        "arp-truncated": 1,
        "ethernet-truncated": 1,
    }
    assert r.counters.malformed_total == 4
    assert r.counters.responses_sent == {}
    assert len(answer(r, "eth0", good)) == 1  # and the next good one still works


def test_gratuitous_round_arp_request_and_reply_and_unsolicited_na() -> None:
    r = make()
    req, rep = (Ether(f) for f in r.gratuitous("eth0", VIP4))
    for pkt in (req, rep):
        assert pkt.dst == "ff:ff:ff:ff:ff:ff" and pkt[ARP].psrc == pkt[ARP].pdst == str(VIP4)
        assert pkt[ARP].hwsrc == MAC
    assert req[ARP].op == 1 and rep[ARP].op == 2 and rep[ARP].hwdst == MAC
    (na,) = (Ether(f) for f in r.gratuitous("eth0", VIP6))
    assert na[IPv6].dst == "ff02::1" and na[IPv6].hlim == 255
    assert (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (0, 1)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == MAC
    assert r.counters.gratuitous_sent == {str(VIP4): 2, str(VIP6): 1}
    assert r.gratuitous("eth1", VIP4) == []  # not announced there


def test_takeover_burst_first_round_at_once_then_every_interval_until_count() -> None:
    r = Responder(burst=BurstConfig(count=3, interval=1.0))
    r.set_interface(InterfaceInfo("eth0", p.parse_mac(MAC)))
    r.set_announced({"eth0": [VIP4]})
    assert r.get_timer() is None
    r.start_takeover("eth0", VIP4, 100.0)
    assert sent(r) == [("eth0", "arp", 1), ("eth0", "arp", 2)]  # round 1, without waiting
    assert r.get_timer() == 101.0
    r.handle_timer(100.99)
    assert sent(r) == [], "not due yet"
    r.handle_timer(101.2)  # a late timer: the next round counts from when this one went out
    assert len(sent(r)) == 2 and r.get_timer() == 102.2
    r.handle_timer(102.2)
    assert len(sent(r)) == 2
    assert r.get_timer() is None, "three rounds, then the burst is over"
    r.handle_timer(200.0)
    assert sent(r) == []
    assert [e.round for e in takeover_events(r)] == [1, 2, 3]
    assert r.counters.gratuitous_sent == {str(VIP4): 6}


def test_default_burst_is_five_rounds_one_second_apart() -> None:
    r = make()
    r.start_takeover("eth0", VIP6, 0.0)
    times = [0.0]
    while (deadline := r.get_timer()) is not None:
        r.handle_timer(deadline)
        times.append(deadline)
    assert times == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert r.counters.gratuitous_sent == {str(VIP6): 5}
    assert {kind for _, kind, _ in sent(r)} == {"na"}


def test_takeovers_run_side_by_side_and_one_timer_serves_them_all() -> None:
    r = make()
    r.start_takeover("eth0", VIP4, 0.0)
    r.start_takeover("eth0", VIP6, 0.5)
    sent(r)
    assert r.get_timer() == 1.0
    r.handle_timer(1.0)
    assert [kind for _, kind, _ in sent(r)] == ["arp", "arp"]
    assert r.get_timer() == 1.5


def test_restarting_a_takeover_starts_its_count_over() -> None:
    r = Responder(burst=BurstConfig(count=2, interval=1.0))
    r.set_interface(InterfaceInfo("eth0", p.parse_mac(MAC)))
    r.set_announced({"eth0": [VIP4]})
    r.start_takeover("eth0", VIP4, 0.0)
    r.start_takeover("eth0", VIP4, 0.5)
    assert [e.round for e in takeover_events(r)] == [1, 1]
    assert r.get_timer() == 1.5
    r.handle_timer(1.5)
    assert [e.round for e in takeover_events(r)] == [2] and r.get_timer() is None


def test_withdrawal_or_a_lost_interface_ends_the_burst() -> None:
    r = make()
    r.start_takeover("eth0", VIP4, 0.0)
    r.start_takeover("eth0", VIP6, 0.0)
    sent(r)
    r.set_announced({"eth0": [VIP6]})  # VIP4 withdrawn: its burst stops
    r.handle_timer(1.0)
    assert [kind for _, kind, _ in sent(r)] == ["na"]
    r.remove_interface("eth0")
    assert r.get_timer() is None
    r.handle_timer(2.0)
    assert sent(r) == []


def test_no_takeover_for_unannounced_pairs_or_a_zero_count() -> None:
    r = make()
    r.start_takeover("eth1", VIP4, 0.0)  # served interface, address not announced on it
    r.start_takeover("eth9", VIP4, 0.0)  # not a served interface
    assert sent(r) == [] and r.get_timer() is None
    quiet = Responder(burst=BurstConfig(count=0))
    quiet.set_interface(InterfaceInfo("eth0", p.parse_mac(MAC)))
    quiet.set_announced({"eth0": [VIP4]})
    quiet.start_takeover("eth0", VIP4, 0.0)
    assert quiet.datagrams_to_send() == [] and quiet.get_timer() is None


@pytest.mark.parametrize(("count", "interval"), [(-1, 1.0), (1, -0.5)])
def test_burst_config_rejects_negative_values(count: int, interval: float) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        BurstConfig(count, interval)


def test_conflicts_and_takeover_rounds_share_the_event_queue() -> None:
    r = make()
    answer(r, "eth0", arp_request(sender=str(VIP4), hwsrc=OTHER_MAC))
    r.start_takeover("eth0", VIP4, 0.0)
    first, second = r.next_event(), r.next_event()
    assert isinstance(first, Conflict) and isinstance(second, TakeoverSent)
    assert r.next_event() is None


def test_diff_announcements_bursts_only_for_new_pairs() -> None:
    a = frozenset({VIP4})
    added, removed = diff_announcements({"eth0": a}, {"eth0": a})
    assert added == set() and removed == set()
    added, removed = diff_announcements({"eth0": a}, {"eth0": a, "eth1": a})
    assert added == {("eth1", VIP4)} and removed == set()
    added, removed = diff_announcements({"eth0": a}, {})
    assert removed == {("eth0", VIP4)}


@given(st.binary(max_size=200), st.sampled_from([0, 1, 2, 3]))
def test_any_bytes_are_answered_dropped_or_counted_never_raised(frame: bytes, pkttype: int) -> None:
    r = make()
    replies = answer(r, "eth0", frame, pkttype)
    c = r.counters
    handled = c.malformed_total + c.dropped_total + sum(c.requests_received.values())
    assert handled >= 1  # every frame is accounted for somewhere
    assert len(replies) <= 1


@given(st.binary(min_size=42, max_size=60))
def test_random_arp_bodies_never_reply_for_unannounced_targets(body: bytes) -> None:
    r = make()
    frame = b"\xff" * 6 + bytes.fromhex(CLIENT_MAC.replace(":", "")) + b"\x08\x06" + body[14:]
    for reply in answer(r, "eth0", frame):
        assert Ether(reply)[ARP].psrc == str(VIP4)
