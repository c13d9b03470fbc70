"""Label selectors: matching, and the static "can these two ever select one node" test that the
peer and localPref rules rely on, checked exhaustively against brute force on a small universe."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.selectors import LabelSelector, any_can_meet, parse_selector

KEYS = ["rack", "zone"]
VALUES = ["a", "b", "c"]
# Every label set over KEYS with values in VALUES plus one value no selector names.
UNIVERSE = [
    {k: v for k, v in zip(KEYS, combo, strict=True) if v is not None}
    for combo in itertools.product([None, *VALUES, "other"], repeat=len(KEYS))
]

requirement = st.one_of(
    st.builds(
        lambda k, op, vs: {"key": k, "operator": op, "values": sorted(set(vs))},
        st.sampled_from(KEYS),
        st.sampled_from(["In", "NotIn"]),
        st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
    ),
    st.builds(
        lambda k, op: {"key": k, "operator": op},
        st.sampled_from(KEYS),
        st.sampled_from(["Exists", "DoesNotExist"]),
    ),
)
selector_raw = st.builds(
    lambda labels, exprs: {"matchLabels": labels, "matchExpressions": exprs},
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2),
    st.lists(
        requirement,
        max_size=3,
        unique_by=lambda r: (r["key"], r["operator"], tuple(r.get("values", []))),
    ),
)


def _sel(raw: dict[str, Any]) -> LabelSelector:
    sel, errors = parse_selector(raw, "s")
    assert sel is not None, errors
    return sel


@settings(max_examples=150, deadline=None)
@given(selector_raw, selector_raw)
def test_can_overlap_agrees_with_brute_force(a_raw: dict[str, Any], b_raw: dict[str, Any]) -> None:
    a, b = _sel(a_raw), _sel(b_raw)
    witness = any(a.matches(labels) and b.matches(labels) for labels in UNIVERSE)
    assert a.can_overlap(b) == witness


def test_racks_are_disjoint_and_empty_lists_meet_everything() -> None:
    rack_a = (_sel({"matchLabels": {"rack": "a"}}),)
    rack_b = (_sel({"matchLabels": {"rack": "b"}}),)
    assert not any_can_meet(rack_a, rack_b)
    assert any_can_meet(rack_a, ())
    assert any_can_meet((), ())
    either = (*rack_a, *rack_b)
    assert any_can_meet(either, rack_b)


def test_bad_selectors_are_reported_with_paths() -> None:
    sel, errors = parse_selector(
        {"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["x"]}]}, "spec.s[0]"
    )
    assert sel is None and errors == [
        ("spec.s[0].matchExpressions[0].values", "operator Exists takes no values")
    ]
