"""UPDATE packing, checked by decoding every UPDATE with the codec."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.attributes import (
    AS4_PATH,
    AS_PATH,
    COMMUNITIES,
    LARGE_COMMUNITY,
    LOCAL_PREF,
    MULTI_EXIT_DISC,
    NEXT_HOP,
    AsPath,
)
from bgp.context import AFI_IPV4, AFI_IPV6, CodecContext
from bgp.messages import Update, decode
from bgp.nlri import Prefix
from bgp.packing import (
    DEFAULT_ATTRS,
    Packer,
    PrefixError,
    RouteAttrs,
    SessionEncoding,
    group_by_attrs,
    key_to_network,
    key_to_str,
    prefix_key,
)

CTX = CodecContext()
NH4 = ipaddress.IPv4Address("198.51.100.11").packed
NH6 = ipaddress.IPv6Address("2001:db8:100::11").packed
LL6 = ipaddress.IPv6Address("fe80::11").packed


def enc(ibgp: bool = False, ctx: CodecContext = CTX, **kw: object) -> SessionEncoding:
    return SessionEncoding(64512, ibgp, ctx, NH4, NH6, **kw)  # type: ignore[arg-type]


def decode_all(msgs: list[tuple[bytes, int]], ctx: CodecContext = CTX) -> list[Update]:
    out = []
    for wire, count in msgs:
        assert len(wire) <= ctx.max_message_size
        upd = decode(wire, ctx)
        assert isinstance(upd, Update) and not upd.problems
        n = len(upd.nlri) + len(upd.withdrawn)
        if upd.mp_reach:
            n += len(upd.mp_reach.nlri)
        if upd.mp_unreach:
            n += len(upd.mp_unreach.withdrawn)
        assert n == count
        out.append(upd)
    return out


def announced(upd: Update) -> list[Prefix]:
    return list(upd.nlri) + (list(upd.mp_reach.nlri) if upd.mp_reach else [])


def as_prefix(afi: int, key: bytes) -> Prefix:
    return Prefix.from_network(key_to_network(afi, key))


def test_prefix_key_forms() -> None:
    assert prefix_key("203.0.113.7") == (AFI_IPV4, b"\x20\xcb\x00\x71\x07")
    assert prefix_key("203.0.113.0/24") == (AFI_IPV4, b"\x18\xcb\x00\x71")
    assert prefix_key("0.0.0.0/0") == (AFI_IPV4, b"\x00")
    afi, key = prefix_key("2001:db8:200::/64")
    assert afi == AFI_IPV6 and key_to_str(afi, key) == "2001:db8:200::/64"
    for bad in ("203.0.113.1/24", "203.0.113.0/33", "x", "2001:db8::/129", "1.2.3.4/"):
        with pytest.raises(PrefixError):
            prefix_key(bad)


def test_ebgp_ipv4_attributes_and_no_local_pref() -> None:
    attrs = RouteAttrs((65000 << 16 | 1,), ((1, 2, 3),), local_pref=300, med=7)
    keys = [prefix_key(f"203.0.113.{i}")[1] for i in range(4)]
    (upd,) = decode_all(list(Packer(enc()).announce(AFI_IPV4, [(attrs, keys)])))
    assert upd.attribute(LOCAL_PREF) is None, "LOCAL_PREF must never go to an eBGP peer"
    assert upd.attribute(AS_PATH) == AsPath.sequence(64512)
    assert str(upd.attribute(NEXT_HOP).address) == "198.51.100.11"  # type: ignore[union-attr]
    assert upd.attribute(MULTI_EXIT_DISC).value == 7  # type: ignore[union-attr]
    assert upd.attribute(COMMUNITIES).values == (65000 << 16 | 1,)  # type: ignore[union-attr]
    assert upd.attribute(LARGE_COMMUNITY).values == ((1, 2, 3),)  # type: ignore[union-attr]
    assert [str(p) for p in upd.nlri] == [f"203.0.113.{i}/32" for i in range(4)]
    codes = [a.type_code for a in upd.attributes]
    assert codes == sorted(codes)


def test_ibgp_local_pref_default_and_explicit_and_empty_as_path() -> None:
    p = Packer(enc(ibgp=True))
    k = [prefix_key("203.0.113.1")[1]]
    (u1,) = decode_all(list(p.announce(AFI_IPV4, [(DEFAULT_ATTRS, k)])))
    (u2,) = decode_all(list(p.announce(AFI_IPV4, [(RouteAttrs(local_pref=250), k)])))
    assert u1.attribute(LOCAL_PREF).value == 100  # type: ignore[union-attr]
    assert u2.attribute(LOCAL_PREF).value == 250  # type: ignore[union-attr]
    assert u1.attribute(AS_PATH) == AsPath()


def test_ipv6_mp_reach_with_global_and_link_local_next_hop() -> None:
    e = SessionEncoding(64512, False, CTX, NH4, NH6 + LL6)
    keys = [prefix_key(f"2001:db8:200::{i:x}")[1] for i in range(3)]
    (upd,) = decode_all(list(Packer(e).announce(AFI_IPV6, [(DEFAULT_ATTRS, keys)])))
    mp = upd.mp_reach
    assert mp is not None and mp.afi == AFI_IPV6
    assert [str(a) for a in mp.next_hop_addresses()] == ["2001:db8:100::11", "fe80::11"]
    assert len(mp.nlri) == 3 and not upd.nlri and upd.attribute(NEXT_HOP) is None
    codes = [a.type_code for a in upd.attributes]
    assert codes == sorted(codes)


def test_ipv4_over_ipv6_next_hop_rfc8950() -> None:
    e = SessionEncoding(64512, False, CTX, None, NH6, v4_over_v6=True)
    p = Packer(e)
    assert p.can_send(AFI_IPV4)
    (upd,) = decode_all(
        list(p.announce(AFI_IPV4, [(DEFAULT_ATTRS, [prefix_key("203.0.113.9")[1]])]))
    )
    assert upd.mp_reach is not None and upd.mp_reach.afi == AFI_IPV4
    assert str(upd.mp_reach.nlri[0]) == "203.0.113.9/32"


def test_no_next_hop_for_family_is_reported() -> None:
    p = Packer(SessionEncoding(64512, False, CTX, None, NH6))
    assert not p.can_send(AFI_IPV4) and p.can_send(AFI_IPV6)


def test_two_octet_peer_gets_as_trans_and_as4_path() -> None:
    ctx2 = CodecContext(four_octet_as=False)
    e = SessionEncoding(4200000001, False, ctx2, NH4, None)
    (upd,) = decode_all(
        list(Packer(e).announce(AFI_IPV4, [(DEFAULT_ATTRS, [prefix_key("203.0.113.1")[1]])])), ctx2
    )
    assert upd.attribute(AS_PATH) == AsPath.sequence(23456)  # AS_TRANS
    assert upd.attribute(AS4_PATH).segments == AsPath.sequence(4200000001).segments  # type: ignore[union-attr]


@pytest.mark.parametrize("extended", [False, True])
def test_100k_host_routes_fill_updates_to_the_limit(extended: bool) -> None:
    ctx = CodecContext(extended_message=extended)
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    keys = [b"\x20" + (base + i).to_bytes(4, "big") for i in range(100_000)]
    msgs = list(Packer(enc(ctx=ctx)).announce(AFI_IPV4, [(DEFAULT_ATTRS, keys)]))
    sizes = [len(m) for m, _ in msgs]
    assert max(sizes) <= ctx.max_message_size
    assert min(sizes[:-1]) > ctx.max_message_size - 5, "every UPDATE but the last is full"
    assert sum(c for _, c in msgs) == 100_000
    ups = decode_all(msgs[:3] + msgs[-1:], ctx)
    assert str(ups[0].nlri[0]) == "198.18.0.0/32"


def test_withdrawals_batched_ipv4_and_ipv6() -> None:
    p = Packer(enc())
    k4 = [prefix_key(f"198.18.{i >> 8}.{i & 255}")[1] for i in range(2000)]
    msgs = list(p.withdraw(AFI_IPV4, k4))
    assert len(msgs) == 3  # 2000 x 5 octets over ~4073-octet fields
    ups = decode_all(msgs)
    assert sum(len(u.withdrawn) for u in ups) == 2000 and not any(u.attributes for u in ups)
    k6 = [prefix_key(f"2001:db8:200::{i:x}")[1] for i in range(500)]
    ups6 = decode_all(list(p.withdraw(AFI_IPV6, k6)))
    got = [str(x) for u in ups6 for x in u.mp_unreach.withdrawn]  # type: ignore[union-attr]
    assert got == [str(ipaddress.ip_network(f"2001:db8:200::{i:x}/128")) for i in range(500)]


def test_end_of_rib_markers() -> None:
    v4 = decode(Packer.end_of_rib(AFI_IPV4), CTX)
    v6 = decode(Packer.end_of_rib(AFI_IPV6), CTX)
    assert isinstance(v4, Update) and v4.end_of_rib() == (1, 1)
    assert isinstance(v6, Update) and v6.end_of_rib() == (2, 1)


def test_attribute_blocks_are_encoded_once_per_set() -> None:
    p = Packer(enc())
    a = RouteAttrs((1, 2))
    assert p.blocks(AFI_IPV4, a) is p.blocks(AFI_IPV4, RouteAttrs((1, 2)))


def test_group_by_attrs_keeps_order() -> None:
    a, b = RouteAttrs((1,)), RouteAttrs((2,))
    groups = group_by_attrs([(b"\x01", a), (b"\x02", b), (b"\x03", a)])
    assert groups == [(a, [b"\x01", b"\x03"]), (b, [b"\x02"])]


attr_sets = st.builds(
    RouteAttrs,
    communities=st.lists(st.integers(0, 2**32 - 1), max_size=80).map(tuple),
    large_communities=st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 9), st.integers(0, 9)), max_size=30
    ).map(tuple),
    local_pref=st.none() | st.integers(0, 2**32 - 1),
    med=st.none() | st.integers(0, 2**32 - 1),
).map(RouteAttrs.normalized)
v4_prefixes = st.builds(
    lambda a, n: ipaddress.ip_network((a, n), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6_prefixes = st.builds(
    lambda a, n: ipaddress.ip_network((a, n), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(v4_prefixes | v6_prefixes, attr_sets), max_size=400),
    ibgp=st.booleans(),
    extended=st.booleans(),
    four=st.booleans(),
)
def test_every_prefix_exactly_once_with_its_attributes(
    data: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, RouteAttrs]],
    ibgp: bool,
    extended: bool,
    four: bool,
) -> None:
    ctx = CodecContext(four_octet_as=four, extended_message=extended)
    routes: dict[tuple[int, bytes], RouteAttrs] = {}
    for net, attrs in data:
        afi = AFI_IPV4 if net.version == 4 else AFI_IPV6
        routes[
            (afi, bytes((net.prefixlen,)) + net.network_address.packed[: (net.prefixlen + 7) >> 3])
        ] = attrs
    p = Packer(enc(ibgp=ibgp, ctx=ctx))
    seen: Counter[tuple[int, bytes]] = Counter()
    for afi in (AFI_IPV4, AFI_IPV6):
        groups = group_by_attrs((k, a) for (f, k), a in routes.items() if f == afi)
        for upd in decode_all(list(p.announce(afi, groups)), ctx):
            lp = upd.attribute(LOCAL_PREF)
            comm = upd.attribute(COMMUNITIES)
            large = upd.attribute(LARGE_COMMUNITY)
            for pfx in announced(upd):
                key = (afi, bytes((pfx.length,)) + pfx.addr[: (pfx.length + 7) >> 3])
                seen[key] += 1
                want = routes[key]
                assert (comm.values if comm else ()) == want.communities  # type: ignore[union-attr]
                assert (large.values if large else ()) == want.large_communities  # type: ignore[union-attr]
                if ibgp:
                    assert lp.value == (want.local_pref if want.local_pref is not None else 100)  # type: ignore[union-attr]
                else:
                    assert lp is None
    assert set(seen) == set(routes) and all(v == 1 for v in seen.values())
