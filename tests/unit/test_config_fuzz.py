"""Arbitrary input never crashes the parser: every malformed object becomes a problem.

A short run in the normal suite; METALLB_FUZZ=long (`make fuzz`) runs many more examples. The
hostile inputs of issue 16 (alias bombs, 3 000 duplicates, deep nesting, huge integers, a
mistyped password) are the corpus every run starts from.
"""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metallb_py.config import parse
from metallb_py.config.problems import MAX_LINES_TOTAL
from metallb_py.config.schemas import KINDS
from metallb_py.config.validate_cli import validate

LONG = os.environ.get("METALLB_FUZZ") == "long"
if LONG:  # the long run outlasts the suite's per-test timeout
    pytestmark = pytest.mark.timeout(3600)

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


@settings(
    max_examples=5000 if LONG else 60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(resource(), max_size=6))
def test_parse_never_raises(resources: list[Any]) -> None:
    config, problems = parse(resources)
    for p in problems:
        assert p.line()
    # Whatever survived is internally consistent.
    names = [p.name for p in config.pools]
    assert names == sorted(names) and len(set(names)) == len(names)


# -- YAML text, through `config validate` ----------------------------------------------------------

SECRET = "fuzz-secret-9f3a"
HEAD = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\n"


def _laughs(levels: int, key: str) -> str:
    out = f'  {key}0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels + 1):
        out += f"  {key}{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return out


CORPUS = [
    # issue 16 item 9: alias bombs in labels and in addresses
    HEAD.replace("  name: p\n", "  name: p\n  labels:\n") + _laughs(7, "  l") + "spec: {}\n",
    HEAD + "spec:\n" + _laughs(9, "x") + "  addresses: *a9\n",
    # item 10: duplicates
    HEAD + "spec:\n  addresses:\n" + "  - 192.0.2.1/32\n" * 3000,
    # item 11: depth and integers
    HEAD + "spec:\n  addresses: " + "[" * 3000 + "]" * 3000 + "\n",
    HEAD + "spec:\n  addresses: " + "[" * 80 + "]" * 80 + "\n",
    HEAD.replace("IPAddressPool", "BFDProfile") + "spec:\n  receiveInterval: " + "9" * 5000,
    # item 13: a mistyped password
    "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\n"
    f"spec: {{myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, password: [{SECRET}]}}\n",
    # recursive aliases, merge keys, odd documents
    "a: &a [*a]\n",
    "a: &a {b: *a}\n",
    HEAD + "spec: &s\n  addresses: [192.0.2.0/24]\n  <<: *s\n",
    "--- 1\n--- [\n",
    "kind: List\nitems: *x\n",
]

FRAGMENTS = [
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "\n  ",
    "\n- ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: ",
    "addresses",
    "192.0.2.1/32",
    "labels",
    "password",
    "9" * 120,
    "---\n",
    "'",
    "!!binary ",
]


@st.composite
def yaml_text(draw: Any) -> str:
    body = "".join(draw(st.lists(st.sampled_from(FRAGMENTS), max_size=40)))
    where = draw(st.sampled_from(["spec:\n  addresses: ", "spec:\n  ", "  labels: ", ""]))
    return HEAD + where + body


@settings(
    max_examples=3000 if LONG else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(yaml_text())
@example(CORPUS[0])
@example(CORPUS[1])
@example(CORPUS[2])
@example(CORPUS[3])
@example(CORPUS[4])
@example(CORPUS[5])
@example(CORPUS[6])
@example(CORPUS[7])
@example(CORPUS[8])
@example(CORPUS[9])
@example(CORPUS[10])
@example(CORPUS[11])
def test_validate_never_crashes_leaks_or_floods(text: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = validate(["-"], io.StringIO(text), out, err)
    assert code in (0, 1, 2)
    shown = out.getvalue() + err.getvalue()
    assert "internal error" not in shown and "Traceback" not in shown
    assert SECRET not in shown
    assert len(out.getvalue().splitlines()) <= MAX_LINES_TOTAL + 1
    assert len(shown) < 200_000
