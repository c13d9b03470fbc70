"""IntervalSet against a plain Python set, and the address helpers."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.allocator.addresses import count_buggy, format_ip, parse_ip
from metallb_py.allocator.intervals import IntervalSet
from metallb_py.config.addresses import parse_entry
from metallb_py.controller.convert import blocks

ops = st.lists(st.tuples(st.sampled_from(["add", "discard"]), st.integers(0, 60)), max_size=80)


@settings(max_examples=200, deadline=None)
@given(ranges=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10)), max_size=5), ops=ops)
def test_interval_set_behaves_like_a_set(ranges: list[tuple[int, int]], ops: list) -> None:
    spans = [(s, s + n) for s, n in ranges]
    model = {x for s, e in spans for x in range(s, e + 1)}
    iset = IntervalSet(spans)
    for op, x in ops:
        if op == "add":
            assert iset.add(x) == (x not in model)
            model.add(x)
        else:
            assert iset.discard(x) == (x in model)
            model.discard(x)
        assert iset.size == len(model)
        assert iset.first() == (min(model) if model else None)
    assert {x for s, e in iset.intervals() for x in range(s, e + 1)} == model
    assert all(x in iset for x in model)
    # Adjacent intervals are always merged: no two intervals touch.
    ivs = list(iset.intervals())
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(ivs))


@settings(max_examples=100, deadline=None)
@given(
    ranges=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10)), max_size=5),
    taken=st.sets(st.integers(0, 70)),
)
def test_from_ranges_minus(ranges: list[tuple[int, int]], taken: set[int]) -> None:
    spans = [(s, s + n) for s, n in ranges]
    model = {x for s, e in spans for x in range(s, e + 1)} - taken
    iset = IntervalSet.from_ranges_minus(spans, sorted(taken))
    assert {x for s, e in iset.intervals() for x in range(s, e + 1)} == model
    assert iset.size == len(model)


def test_huge_ranges_cost_one_interval() -> None:
    iset = IntervalSet([(0, 2**64 - 1)])
    for x in range(1000):
        assert iset.discard(x)
    assert iset.interval_count() == 1
    assert iset.first() == 1000
    iset.add(500)
    assert iset.interval_count() == 2


def test_parsed_entries_become_blocks_in_written_order() -> None:
    entries = ("10.0.0.5/24", "10.0.0.1 - 10.0.0.3", "2001:db8::1")
    assert blocks(parse_entry(e) for e in entries) == (
        (4, int(ipaddress.ip_address("10.0.0.0")), 0x0A0000FF),
        (4, 0x0A000001, 0x0A000003),
        (6, 0x20010DB8 << 96 | 1, 0x20010DB8 << 96 | 1),
    )


def test_format_ip_matches_ipaddress() -> None:
    for text in ("0.0.0.0", "198.51.100.255", "2001:db8::", "2001:db8::1:0:0:1", "::1", "::"):
        assert format_ip(parse_ip(text)) == str(ipaddress.ip_address(text))


@given(st.integers(0, 2**32 - 1), st.integers(0, 5000))
def test_count_buggy(first: int, span: int) -> None:
    last = min(first + span, 2**32 - 1)
    assert count_buggy(first, last) == sum(1 for x in range(first, last + 1) if x % 256 in (0, 255))
