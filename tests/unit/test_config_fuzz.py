"""Arbitrary input never crashes the parser: every malformed object becomes a problem."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_py.config import parse
from metallb_py.config.schemas import KINDS

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "192.0.2.0/24",
            "192.0.2.1-192.0.2.9",
            "2001:db8::/64",
            "1:2",
            "large:1:2:3",
            "90s",
            "In",
            "x",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)


def _spec_keys(kind: str) -> list[str]:
    k = KINDS[kind]
    spec = k.storage.spec or {}
    return sorted(spec.get("properties", {})) or ["x"]


@st.composite
def resource(draw: Any) -> Any:
    kind = draw(st.sampled_from(sorted(KINDS)))
    keys = _spec_keys(kind)
    spec = draw(st.dictionaries(st.sampled_from(keys), values, max_size=5))
    version = draw(st.sampled_from([v.name for v in KINDS[kind].versions] + ["v9"]))
    obj = {
        "apiVersion": f"metallb.io/{version}",
        "kind": kind,
        "metadata": {"name": draw(st.text(min_size=1, max_size=5))},
        "spec": spec,
    }
    return draw(st.one_of(st.just(obj), values))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(resource(), max_size=6))
def test_parse_never_raises(resources: list[Any]) -> None:
    config, problems = parse(resources)
    for p in problems:
        assert p.line()
    # Whatever survived is internally consistent.
    names = [p.name for p in config.pools]
    assert names == sorted(names) and len(set(names)) == len(names)
