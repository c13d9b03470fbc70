"""Properties of the parser: non-overlapping ranges always parse, any overlap is always found,
parsing is deterministic, and run-time conflicts are resolved by age, the rest still applying."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.config import ConfigHolder, parse
from tests.lab.config_objects import bgpadv, peer, pool

BASE4 = int(ipaddress.IPv4Address("198.18.0.0"))  # a /15 of room
BASE6 = int(ipaddress.IPv6Address("2001:db8::"))


def _text(value: int, family: int) -> str:
    return str(ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value))


def _entry(lo: int, hi: int, family: int, style: int) -> str:
    """Write [lo, hi] as a range, or as a CIDR / single address when it is exactly one."""
    nets = list(
        ipaddress.summarize_address_range(
            ipaddress.ip_address(_text(lo, family)), ipaddress.ip_address(_text(hi, family))
        )
    )
    if style == 1 and len(nets) == 1:
        return str(nets[0])
    if style == 2 and lo == hi:
        return _text(lo, family)
    return f"{_text(lo, family)}-{_text(hi, family)}"


@st.composite
def disjoint_ranges(draw: Any) -> list[tuple[int, int, int]]:
    """Sorted cut points give disjoint [lo, hi] intervals; each gets a family."""
    n = draw(st.integers(1, 12))
    out = []
    for family, base in ((4, BASE4), (6, BASE6)):
        cuts = sorted(
            draw(st.lists(st.integers(0, 1 << 16), min_size=2 * n, max_size=2 * n, unique=True))
        )
        for i in range(0, len(cuts) - 1, 2):
            out.append((base + cuts[i], base + cuts[i + 1], family))
    return out


@settings(max_examples=100, deadline=None)
@given(disjoint_ranges(), st.integers(1, 5), st.randoms(use_true_random=False))
def test_any_set_of_non_overlapping_ranges_parses(
    ranges: list[tuple[int, int, int]], pools: int, rnd: random.Random
) -> None:
    groups: dict[int, list[str]] = {}
    for lo, hi, fam in ranges:
        groups.setdefault(rnd.randrange(pools), []).append(_entry(lo, hi, fam, rnd.randrange(3)))
    resources = [pool(f"pool-{k}", *entries) for k, entries in groups.items()]
    config, problems = parse(resources)
    assert [p for p in problems if p.is_error] == []
    assert len(config.pools) == len(groups)
    covered = sum(r.size for p in config.pools for r in p.ranges)
    assert covered == sum(hi - lo + 1 for lo, hi, _ in ranges)


@settings(max_examples=100, deadline=None)
@given(disjoint_ranges(), st.data())
def test_any_overlap_is_found(ranges: list[tuple[int, int, int]], data: Any) -> None:
    lo, hi, fam = data.draw(st.sampled_from(ranges))
    a = data.draw(st.integers(lo, hi))
    b = data.draw(st.integers(a, a + 1000))
    intruder = _entry(a, b, fam, data.draw(st.integers(0, 2)))
    resources = [
        pool("a-existing", *(_entry(x, y, f, 0) for x, y, f in ranges)),
        pool("z-new", intruder),
    ]
    config, problems = parse(resources)
    overlap = [p for p in problems if p.rule == "pool-overlap"]
    assert overlap and all(p.ref.name == "z-new" for p in overlap)
    assert [p.name for p in config.pools] == ["a-existing"]


def test_parse_is_deterministic_whatever_the_input_order() -> None:
    resources = [
        pool("b", "192.0.2.0/24"),
        pool("a", "192.0.2.128/25"),
        peer("p2", peerAddress="192.0.2.2"),
        peer("p1", myASN=64999),
        bgpadv("ad", localPref=5),
        bgpadv("ad2", localPref=6),
    ]
    first = parse(resources)
    for seed in range(5):
        shuffled = resources[:]
        random.Random(seed).shuffle(shuffled)
        assert parse(shuffled) == first
    config, _ = first
    assert [p.name for p in config.pools] == ["a"]  # same age: name decides


def test_older_object_wins_a_conflict_and_the_rest_applies() -> None:
    old = pool("zz-old", "192.0.2.0/24", creationTimestamp="2024-01-01T00:00:00Z")
    new = pool("aa-new", "192.0.2.0/25", creationTimestamp="2025-01-01T00:00:00Z")
    other = pool("other", "198.51.100.0/24", creationTimestamp="2025-01-01T00:00:00Z")
    config, problems = parse([new, old, other])
    assert [p.name for p in config.pools] == ["other", "zz-old"]
    (problem,) = [p for p in problems if p.is_error]
    assert problem.ref.name == "aa-new" and problem.rule == "pool-overlap"
    assert [r.name for r in problem.related] == ["zz-old"]


def test_peer_conflicts_resolved_by_age_and_disjoint_racks_coexist() -> None:
    rack = lambda r: [{"matchLabels": {"rack": r}}]  # noqa: E731
    resources = [
        peer("tor-a", nodeSelectors=rack("a"), creationTimestamp="2024-01-01T00:00:00Z"),
        peer("tor-b", nodeSelectors=rack("b"), creationTimestamp="2024-01-01T00:00:00Z"),
        peer(
            "late", myASN=65000, peerAddress="192.0.2.50", creationTimestamp="2025-01-01T00:00:00Z"
        ),
    ]
    config, problems = parse(resources)
    assert [p.name for p in config.peers] == ["tor-a", "tor-b"]
    assert {(p.ref.name, p.rule) for p in problems} == {("late", "peer-my-asn")}


def test_v1beta1_peer_without_timers_gets_the_90s_default() -> None:
    config, _ = parse([peer("p", version="v1beta1")])
    p = config.peer("p")
    assert p is not None and (p.hold_time, p.keepalive_time) == (90, 30)
    config, _ = parse([peer("p", holdTime="9s")])
    assert (config.peers[0].hold_time, config.peers[0].keepalive_time) == (9, 3)
    config, _ = parse([peer("p", keepaliveTime="10s")])
    assert (config.peers[0].hold_time, config.peers[0].keepalive_time) == (30, 10)


def test_config_holder_keeps_the_last_good_config_only_when_nothing_parses() -> None:
    holder = ConfigHolder()
    good, _, stale = holder.update([pool("a", "192.0.2.0/24")])
    assert good is not None and not stale
    # One bad object among good ones: not stale, the good ones apply.
    config, problems, stale = holder.update([pool("a", "192.0.2.0/24"), pool("b", "nonsense")])
    assert not stale and config is not None and [p.name for p in config.pools] == ["a"] and problems
    # Everything broken: keep the last good configuration and say it is stale.
    config, problems, stale = holder.update([pool("a", "nonsense")])
    assert stale and config is not None and [p.name for p in config.pools] == ["a"]
    # An empty configuration is a valid one (every pool deleted), not a stale one.
    config, problems, stale = holder.update([])
    assert not stale and config is not None and config.pools == ()


def test_legacy_address_pools_become_pools_and_implicit_advertisements() -> None:
    from tests.lab.config_objects import legacy_pool

    config, problems = parse(
        [
            legacy_pool("l2", "layer2", "192.0.2.0/25", autoAssign=False),
            legacy_pool(
                "bgp",
                "bgp",
                "192.0.2.128/25",
                bgpAdvertisements=[
                    {"localPref": 100, "communities": ["65535:65281"]},
                    {"aggregationLength": 25, "localPref": 100},
                ],
            ),
            legacy_pool("bgp-default", "bgp", "198.51.100.0/24"),
        ]
    )
    assert [p for p in problems if p.is_error] == []
    assert [p.name for p in config.pools] == ["bgp", "bgp-default", "l2"]
    assert config.pool("l2") is not None and config.pool("l2").auto_assign is False  # type: ignore[union-attr]
    assert [
        (a.name, a.pools, a.node_selectors, a.interfaces) for a in config.l2_advertisements
    ] == [("l2", ("l2",), (), ())]
    ads = {a.name: a for a in config.bgp_advertisements}
    assert set(ads) == {"bgp-0", "bgp-1", "bgp-default"}
    assert (
        str(ads["bgp-0"].communities[0]) == "65535:65281" and ads["bgp-1"].aggregation_length == 25
    )
    assert (
        ads["bgp-default"].aggregation_length,
        ads["bgp-default"].aggregation_length_v6,
        ads["bgp-default"].peers,
    ) == (32, 128, ())


def test_config_holder_survives_a_parser_failure(monkeypatch: Any) -> None:
    import metallb_py.config.holder as holder_mod

    holder = ConfigHolder()
    good, _, _ = holder.update([pool("a", "192.0.2.0/24")])

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(holder_mod, "parse", boom)
    config, problems, stale = holder.update([pool("a", "192.0.2.0/24")])
    assert stale and config is good and "the parser failed" in problems[0].message
