"""Hypothesis strategies for BGP codec values (shared by the codec, FSM and fuzz tests)."""

from __future__ import annotations

import ipaddress
from typing import cast

from hypothesis import strategies as st

from bgp import attributes as A
from bgp import capabilities as C
from bgp import messages as M
from bgp.context import CodecContext
from bgp.nlri import Prefix

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
asn4 = st.integers(1, 0xFFFFFFFF)
ipv4 = st.builds(ipaddress.IPv4Address, st.integers(1, 0xDFFFFFFF))
router_id = st.builds(ipaddress.IPv4Address, st.integers(1, 0xFFFFFFFF))


@st.composite
def prefixes(draw: st.DrawFn, afi: int = 1, path_id: bool = False) -> Prefix:
    width = 4 if afi == 1 else 16
    length = draw(st.integers(0, width * 8))
    value = draw(st.integers(0, (1 << (width * 8)) - 1))
    mask = ((1 << length) - 1) << (width * 8 - length) if length else 0
    pid = draw(u32) if path_id else None
    return Prefix((value & mask).to_bytes(width, "big"), length, pid)


def contexts() -> st.SearchStrategy[CodecContext]:
    return st.builds(
        CodecContext,
        four_octet_as=st.booleans(),
        add_path=st.frozensets(st.sampled_from([(1, 1), (2, 1)])),
        extended_message=st.just(True),
    )


capabilities = st.one_of(
    st.builds(C.Multiprotocol, u16, u8),
    st.just(C.RouteRefresh()),
    st.just(C.EnhancedRouteRefresh()),
    st.just(C.ExtendedMessage()),
    st.builds(C.FourOctetAS, u32),
    st.builds(C.ExtendedNextHop, st.lists(st.tuples(u16, u16, u16), max_size=5).map(tuple)),
    st.builds(
        C.GracefulRestart,
        restart_time=st.integers(0, 4095),
        restart_state=st.booleans(),
        notification=st.booleans(),
        families=st.lists(
            st.builds(C.GracefulRestartFamily, u16, u8, st.booleans()), max_size=4
        ).map(tuple),
    ),
    st.builds(
        C.AddPath,
        st.lists(st.tuples(u16, u8, st.integers(1, 3)), max_size=4).map(tuple),
    ),
    st.builds(
        C.UnknownCapability,
        st.integers(0, 255).filter(lambda c: c not in (1, 2, 5, 6, 64, 65, 69, 70)),
        st.binary(max_size=20),
    ),
)


@st.composite
def opens(draw: st.DrawFn) -> M.Open:
    """An OPEN whose AS agrees with its four-octet AS capability, when it has one."""
    caps = draw(
        st.lists(capabilities.filter(lambda c: not isinstance(c, C.FourOctetAS)), max_size=6)
    )
    if draw(st.booleans()):
        asn = draw(asn4)
        caps.insert(draw(st.integers(0, len(caps))), C.FourOctetAS(asn))
    else:
        asn = draw(st.integers(1, 0xFFFF))
    return M.Open(
        asn=asn,
        hold_time=draw(st.one_of(st.just(0), st.integers(3, 0xFFFF))),
        router_id=draw(router_id),
        capabilities=tuple(caps),
    )


segments = st.builds(
    A.AsPathSegment,
    st.sampled_from([1, 2, 3, 4]),
    st.lists(asn4, min_size=1, max_size=8).map(tuple),
)


def attribute_sets(afi_nlri: bool = True) -> st.SearchStrategy[tuple[A.Attribute, ...]]:
    """A well-formed set of distinct attributes (4-octet AS encoding)."""
    optional = st.fixed_dictionaries(
        {},
        optional={
            "med": st.builds(A.MultiExitDisc, u32),
            "lp": st.builds(A.LocalPref, u32),
            "atomic": st.just(A.AtomicAggregate()),
            "agg": st.builds(A.Aggregator, asn4, ipv4),
            "comm": st.builds(A.Communities, st.lists(u32, min_size=1, max_size=8).map(tuple)),
            "ext": st.builds(
                A.ExtendedCommunities,
                st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=4).map(tuple),
            ),
            "large": st.builds(
                A.LargeCommunities,
                st.lists(st.tuples(u32, u32, u32), min_size=1, max_size=4).map(tuple),
            ),
            "orig": st.builds(A.OriginatorId, ipv4),
            "as4path": st.builds(
                A.As4Path,
                st.lists(
                    st.builds(
                        A.AsPathSegment,
                        st.sampled_from([1, 2]),
                        st.lists(asn4, min_size=1, max_size=8).map(tuple),
                    ),
                    max_size=3,
                ).map(tuple),
            ),
            "as4agg": st.builds(A.As4Aggregator, asn4, ipv4),
            "cluster": st.builds(A.ClusterList, st.lists(ipv4, min_size=1, max_size=4).map(tuple)),
            "unknown": st.builds(
                A.UnknownAttribute,
                st.integers(100, 250),
                st.binary(max_size=300),
                st.sampled_from([0xC0, 0xE0, 0x80]),
            ),
        },
    )
    base = st.tuples(
        st.builds(A.Origin, st.integers(0, 2)),
        st.builds(A.AsPath, st.lists(segments, max_size=3).map(tuple)),
        st.builds(A.NextHop, ipv4),
    )
    return st.tuples(base, optional).map(
        lambda t: t[0] + tuple(cast(list[A.Attribute], list(t[1].values())))
    )
