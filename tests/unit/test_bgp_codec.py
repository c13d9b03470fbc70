"""Round trips of every message, capability and attribute, and the packer's fast paths."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgp import attributes as A
from bgp import capabilities as C
from bgp import messages as M
from bgp.context import CodecContext
from bgp.errors import BGPError
from bgp.nlri import Prefix, count_prefixes, decode_prefixes, encode_prefixes
from tests.lab.bgp_codec_strategies import (
    attribute_sets,
    capabilities,
    contexts,
    opens,
    prefixes,
    u8,
    u16,
)

CTX4 = CodecContext(four_octet_as=True, extended_message=True)
# The suite runs on a loaded shared machine: no per-example deadline.
LOADED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def by_type(attrs: tuple[A.Attribute, ...]) -> list[A.Attribute]:
    return sorted(attrs, key=lambda a: a.type_code)


@LOADED
@given(opens())
def test_open_round_trip(msg: M.Open) -> None:
    assert M.decode(M.encode(msg)) == msg


@LOADED
@given(capabilities)
def test_capability_round_trip(cap: C.Capability) -> None:
    wire = C.encode_capability(cap)
    assert C.decode_capabilities(wire) == [cap]


@LOADED
@given(st.lists(prefixes(1), max_size=30), st.lists(prefixes(1), max_size=30), attribute_sets())
def test_update_round_trip_four_octet(
    withdrawn: list[Prefix], nlri: list[Prefix], attrs: tuple[A.Attribute, ...]
) -> None:
    msg = M.Update(tuple(withdrawn), attrs if nlri else (), tuple(nlri))
    got = M.decode(M.encode(msg, CTX4), CTX4)
    assert isinstance(got, M.Update)
    assert got.problems == ()
    assert got.withdrawn == msg.withdrawn and got.nlri == msg.nlri
    assert by_type(got.attributes) == by_type(msg.attributes)


@LOADED
@given(st.lists(prefixes(1, path_id=True), min_size=1, max_size=20), attribute_sets())
def test_update_round_trip_add_path(nlri: list[Prefix], attrs: tuple[A.Attribute, ...]) -> None:
    ctx = CodecContext(add_path=frozenset({(1, 1)}))
    got = M.decode(M.encode(M.Update((), attrs, tuple(nlri)), ctx), ctx)
    assert isinstance(got, M.Update)
    assert got.nlri == tuple(nlri)


@LOADED
@given(
    st.lists(prefixes(2), min_size=1, max_size=20),
    st.booleans(),
    contexts(),
)
def test_mp_reach_ipv6_round_trip(nlri: list[Prefix], link_local: bool, ctx: CodecContext) -> None:
    hops = ["2001:db8::1", "fe80::1"] if link_local else ["2001:db8::1"]
    if ctx.has_add_path(2, 1):
        nlri = [p._replace(path_id=7) for p in nlri]
    mp = A.MpReachNlri.build(2, 1, hops, nlri)
    attrs = (A.Origin(0), A.AsPath.sequence(64512, 4200000000), mp)
    got = M.decode(M.encode(M.Update((), attrs, ()), ctx), ctx)
    assert isinstance(got, M.Update) and got.problems == ()
    reach = got.mp_reach
    assert reach is not None and reach.nlri == tuple(nlri)
    assert [str(a) for a in reach.next_hop_addresses()] == hops


def test_ipv4_nlri_with_ipv6_next_hop_rfc8950() -> None:
    mp = A.MpReachNlri.build(1, 1, ["2001:db8::1"], [Prefix.parse("203.0.113.0/24")])
    got = M.decode(M.encode(M.Update((), (A.Origin(0), A.AsPath(), mp), ())))
    assert isinstance(got, M.Update) and got.problems == ()
    assert got.mp_reach == mp
    assert got.mp_reach.next_hop_addresses() == (ipaddress.IPv6Address("2001:db8::1"),)


@LOADED
@given(st.lists(prefixes(2), max_size=20))
def test_mp_unreach_round_trip(withdrawn: list[Prefix]) -> None:
    msg = M.Update((), (A.MpUnreachNlri(2, 1, tuple(withdrawn)),), ())
    got = M.decode(M.encode(msg))
    assert got == msg
    assert isinstance(got, M.Update)
    assert got.end_of_rib() == ((2, 1) if not withdrawn else None)


def test_two_octet_session_uses_as_trans_and_as4_path() -> None:
    ctx = CodecContext(four_octet_as=False)
    attrs = (
        A.Origin(0),
        A.AsPath.sequence(64512, 4200000001),
        A.NextHop(ipaddress.IPv4Address("198.51.100.11")),
        A.Aggregator(4200000001, ipaddress.IPv4Address("198.51.100.11")),
    )
    msg = M.Update((), attrs, (Prefix.parse("203.0.113.0/24"),))
    got = M.decode(M.encode(msg, ctx), ctx)
    assert isinstance(got, M.Update)
    as_path = got.attribute(A.AS_PATH)
    assert as_path == A.AsPath.sequence(64512, A.AS_TRANS)
    assert got.attribute(A.AS4_PATH) == A.As4Path(A.AsPath.sequence(64512, 4200000001).segments)
    assert got.attribute(A.AGGREGATOR) == A.Aggregator(
        A.AS_TRANS, ipaddress.IPv4Address("198.51.100.11")
    )
    assert got.attribute(A.AS4_AGGREGATOR) == A.As4Aggregator(
        4200000001, ipaddress.IPv4Address("198.51.100.11")
    )
    assert A.effective_as_path(got.attributes) == A.AsPath.sequence(64512, 4200000001)


@LOADED
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=100))
def test_notification_round_trip(code: int, subcode: int, data: bytes) -> None:
    msg = M.Notification(code, subcode, data)
    assert M.decode(M.encode(msg)) == msg


@LOADED
@given(u16, u8, st.sampled_from([0, 1, 2, 7]))
def test_route_refresh_round_trip(afi: int, safi: int, subtype: int) -> None:
    msg = M.RouteRefresh(afi, safi, subtype)
    assert M.decode(M.encode(msg)) == msg


def test_keepalive() -> None:
    assert M.encode(M.Keepalive()) == b"\xff" * 16 + b"\x00\x13\x04"
    assert M.decode(M.KEEPALIVE_BYTES) == M.Keepalive()


def test_shutdown_communication_and_hard_reset() -> None:
    note = M.Notification.cease(2, "maintenance: rebooting rack 4 ✓")
    assert M.decode(M.encode(note)) == note
    assert note.shutdown_message == "maintenance: rebooting rack 4 ✓"
    hard = note.hard_reset()
    assert (hard.code, hard.subcode) == (6, 9)
    assert hard.inner == note
    assert hard.shutdown_message == "maintenance: rebooting rack 4 ✓"
    long = M.Notification.cease(2, "é" * 300)
    assert long.data[0] <= 255 and long.shutdown_message == "é" * 127


def test_end_of_rib_markers() -> None:
    v4 = M.decode(M.end_of_rib(1, 1))
    v6 = M.decode(M.end_of_rib(2, 1))
    assert isinstance(v4, M.Update) and v4.end_of_rib() == (1, 1)
    assert isinstance(v6, M.Update) and v6.end_of_rib() == (2, 1)
    assert len(M.end_of_rib(1, 1)) == 23


def test_fast_paths_match_the_dataclass_encoder() -> None:
    attrs = (
        A.Origin(0),
        A.AsPath.sequence(64512),
        A.NextHop(ipaddress.IPv4Address("198.51.100.11")),
        A.Communities.parse("no-export", "64512:7"),
    )
    nlri = tuple(Prefix.parse(f"198.18.{i}.0/24") for i in range(10))
    block = A.encode_attributes(attrs)
    fast = M.encode_update_raw(b"", block, encode_prefixes(nlri))
    assert fast == M.encode(M.Update((), attrs, nlri))
    mp = A.encode_mp_reach(2, 1, ipaddress.IPv6Address("2001:db8::1").packed, b"\x00")
    assert mp == A.encode_attribute(
        A.MpReachNlri(2, 1, ipaddress.IPv6Address("2001:db8::1").packed, (Prefix.parse("::/0"),))
    )


def test_extended_length_attribute() -> None:
    comms = A.Communities(tuple(range(100)))  # 400 octets: needs Extended Length
    wire = A.encode_attribute(comms)
    assert wire[0] & A.FLAG_EXTENDED_LENGTH and len(wire) == 404
    assert A.decode_attributes(wire).attributes == (comms,)


def test_update_too_big_for_context_is_refused() -> None:
    nlri = tuple(Prefix.parse(f"198.18.{i // 256}.{i % 256}/32") for i in range(1000))
    msg = M.Update(
        (), (A.Origin(0), A.AsPath(), A.NextHop(ipaddress.IPv4Address("192.0.2.1"))), nlri
    )
    with pytest.raises(ValueError):
        M.encode(msg, CodecContext())
    assert len(M.encode(msg, CodecContext(extended_message=True))) > 4096


@LOADED
@given(st.lists(prefixes(1), max_size=50))
def test_count_prefixes_agrees_with_decode(nlri: list[Prefix]) -> None:
    wire = encode_prefixes(nlri)
    assert count_prefixes(wire, 1) == len(decode_prefixes(wire, 1)) == len(nlri)


def test_host_bits_beyond_prefix_length_are_cleared() -> None:
    (p,) = decode_prefixes(bytes([25, 10, 1, 2, 0xFF]), 1)
    assert str(p) == "10.1.2.128/25"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("no-export", 0xFFFFFF01),
        ("no-advertise", 0xFFFFFF02),
        ("no-export-subconfed", 0xFFFFFF03),
        ("no-peer", 0xFFFFFF04),
        ("blackhole", 0xFFFF029A),
        ("graceful-shutdown", 0xFFFF0000),
        ("accept-own", 0xFFFF0001),
        ("llgr-stale", 0xFFFF0006),
        ("no-llgr", 0xFFFF0007),
        ("64512:100", (64512 << 16) | 100),
    ],
)
def test_community_names(text: str, value: int) -> None:
    assert A.parse_community(text) == value
    assert A.format_community(value) == text


@pytest.mark.parametrize("bad", ["65536:1", "1:65536", "foo", "1:2:3"])
def test_bad_community_text(bad: str) -> None:
    with pytest.raises(ValueError):
        A.parse_community(bad)


def test_large_community_text() -> None:
    assert A.parse_large_community("4200000000:1:2") == (4200000000, 1, 2)
    with pytest.raises(ValueError):
        A.parse_large_community("1:2")


def test_iter_messages_splits_stream_and_keeps_partial_tail() -> None:
    one = M.encode(M.Keepalive())
    two = M.encode(M.RouteRefresh(1, 1))
    buf = bytearray(one + two + two[:7])
    assert list(M.iter_messages(buf)) == [one, two]
    assert bytes(buf) == two[:7]
    buf += two[7:]
    assert list(M.iter_messages(buf)) == [two]
    assert buf == bytearray()


def test_iter_messages_honours_negotiated_maximum() -> None:
    nlri = tuple(Prefix.parse(f"198.18.{i // 256}.{i % 256}/32") for i in range(1000))
    big = M.encode(
        M.Update(
            (), (A.Origin(0), A.AsPath(), A.NextHop(ipaddress.IPv4Address("192.0.2.1"))), nlri
        ),
        CodecContext(extended_message=True),
    )
    assert list(M.iter_messages(bytearray(big), 65535)) == [big]
    with pytest.raises(BGPError) as err:
        list(M.iter_messages(bytearray(big), 4096))
    assert (err.value.code, err.value.subcode) == (1, 2)
    assert err.value.data == len(big).to_bytes(2, "big")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from([M.Keepalive(), M.RouteRefresh(2, 1), M.Notification(6, 2)]), max_size=10
    ),
    st.integers(1, 40),
)
def test_iter_messages_any_chunking(msgs: list[M.Message], chunk: int) -> None:
    wire = b"".join(M.encode(m) for m in msgs)
    buf = bytearray()
    got: list[M.Message] = []
    for i in range(0, len(wire), chunk):
        buf += wire[i : i + chunk]
        got.extend(M.decode(raw) for raw in M.iter_messages(buf))
    assert got == msgs and not buf


def test_attribute_cache_reuses_blocks_but_respects_nlri_and_context() -> None:
    cache = M.AttributeCache(max_entries=2)
    block = A.encode_attributes((A.Origin(0), A.AsPath.sequence(64500)))  # no NEXT_HOP
    with_nlri = M.encode_update_raw(b"", block, Prefix.parse("203.0.113.0/24").encode())
    mp = A.encode_mp_reach(2, 1, bytes(15) + b"\x01", Prefix.parse("2001:db8::/32").encode())
    without_nlri = M.encode_update_raw(b"", block + mp, b"")
    for _ in range(3):
        got = M.decode(with_nlri, CTX4, cache)
        assert isinstance(got, M.Update) and got.treat_as_withdraw  # NEXT_HOP missing
        got = M.decode(without_nlri, CTX4, cache)
        assert isinstance(got, M.Update) and got.problems == ()
    assert (cache.hits, cache.misses) == (4, 2)
    two_octet = CodecContext(four_octet_as=False)
    got = M.decode(with_nlri, two_octet, cache)  # a new context invalidates the cache
    assert isinstance(got, M.Update)
    assert got.problems[0].subcode == 11  # 4-octet AS_PATH read as 2-octet: malformed
    for i in range(5):
        M.decode(
            M.encode_update_raw(b"", A.encode_attributes((A.MultiExitDisc(i),)), b""), CTX4, cache
        )
    assert len(cache._entries) <= 2


@LOADED
@given(
    st.sampled_from([(1, 128), (2, 128), (1, 133), (25, 70), (1, 4), (16388, 71)]),
    st.binary(max_size=40),
    st.binary(min_size=1, max_size=200),
)
def test_foreign_family_mp_attributes_round_trip(
    family: tuple[int, int], next_hop: bytes, raw: bytes
) -> None:
    lengths = {(1, 128): 12, (2, 128): 24}
    if family in lengths:
        next_hop = bytes(lengths[family])
    reach = A.MpReachNlri(family[0], family[1], next_hop, (), raw)
    unreach = A.MpUnreachNlri(family[0], family[1], (), raw)
    base = (A.Origin(0), A.AsPath.sequence(64500))
    for attrs in ((*base, reach), (unreach,)):
        decoded = A.decode_attributes(A.encode_attributes(attrs))
        assert decoded.attributes == attrs and decoded.problems == ()


def test_open_with_many_capabilities_uses_extended_optional_parameters() -> None:
    caps = tuple(C.UnknownCapability(200 + i, bytes(40)) for i in range(8))  # 336 octets
    msg = M.Open(64512, 90, ipaddress.IPv4Address("198.51.100.11"), caps)
    wire = M.encode(msg)
    assert wire[28] == 255 and wire[29] == 255  # RFC 9072 marker
    assert M.decode(wire) == msg
