"""The shared bounded YAML loader: alias bombs, recursion, depth and long integers are refused
cheaply, with the line, the object and the field; ordinary YAML (aliases included) still loads."""

from __future__ import annotations

import time

import pytest
import yaml

from metallb_py import yamlsafe
from metallb_py.config.legacy_configmap import GoYamlLoader


def laughs(levels: int, indent: str = "  ") -> str:
    """`levels` lists of nine aliases of the previous one: 9**(levels+1) strings once expanded."""
    out = f'{indent}l0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels + 1):
        out += f"{indent}l{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return out


BOMB = (
    "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\n  labels:\n"
    + laughs(9, "    ")
    + "spec:\n  addresses: [192.0.2.0/24]\n"
)


def test_alias_bomb_refused_fast_naming_object_and_field() -> None:
    assert len(BOMB) < 1000
    start = time.monotonic()
    with pytest.raises(yamlsafe.YAMLLimitError) as info:
        yamlsafe.load_all(BOMB)
    assert time.monotonic() - start < 1.0
    err = info.value
    assert err.problem is not None
    assert err.problem.startswith("IPAddressPool 'p': metadata.labels.l")
    assert "excessive aliasing" in err.problem
    assert err.problem_mark is not None and err.problem_mark.line >= 5


def test_the_node_budget_is_for_the_whole_stream() -> None:
    doc = "a: &a [" + ",".join(["x"] * 1000) + "]\nb: [" + ",".join(["*a"] * 400) + "]\n"
    assert len(yamlsafe.load_all(doc)) == 1  # about 400 000 nodes: fine once
    with pytest.raises(yamlsafe.YAMLLimitError, match="excessive aliasing"):
        yamlsafe.load_all("---\n".join([doc] * 3))


@pytest.mark.parametrize("text", ["a: &a [*a]", "a: &a {b: *a}", "- &x [1, [*x]]"])
def test_recursive_aliases(text: str) -> None:
    with pytest.raises(yamlsafe.YAMLLimitError, match="recursive alias"):
        yamlsafe.load(text)


def test_depth_and_long_integers() -> None:
    deep = "kind: X\nmetadata: {name: n}\nspec:\n  f: " + "[" * 3000 + "]" * 3000 + "\n"
    with pytest.raises(yamlsafe.YAMLLimitError) as info:
        yamlsafe.load(deep)
    assert info.value.problem is not None
    assert info.value.problem.startswith("X 'n': spec.f[0][0]")
    assert "nested deeper than 100 levels" in info.value.problem
    assert yamlsafe.load("a: " + "[" * 90 + "]" * 90) is not None
    with pytest.raises(yamlsafe.YAMLLimitError, match=r"spec.i: integer of 5000 characters"):
        yamlsafe.load("spec:\n  i: " + "9" * 5000)
    assert yamlsafe.load("i: " + "9" * 30) == {"i": int("9" * 30)}
    assert yamlsafe.load("s: '" + "9" * 5000 + "'") == {"s": "9" * 5000}


def test_size_limit() -> None:
    with pytest.raises(yamlsafe.YAMLLimitError, match="over the limit"):
        yamlsafe.load("a: " + "x" * yamlsafe.MAX_BYTES)
    assert yamlsafe.load("a: 1", max_bytes=10) == {"a": 1}


def test_ordinary_yaml_and_another_base_loader() -> None:
    assert yamlsafe.load_all("a: &x {b: 1}\nc: *x\n---\n\n---\n- 1\n") == [
        {"a": {"b": 1}, "c": {"b": 1}},
        None,
        [1],
    ]
    assert yamlsafe.load("base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n") == {
        "base": {"x": 1},
        "m": {"x": 1, "y": 2},
    }
    assert yamlsafe.load_all("c: 64500:100", base=GoYamlLoader) == [{"c": "64500:100"}]
    with pytest.raises(yamlsafe.YAMLLimitError):
        yamlsafe.load_all(BOMB, base=GoYamlLoader)
    with pytest.raises(yaml.YAMLError):
        yamlsafe.load("a: [")


def test_one_long_string_aliased_many_times() -> None:
    """Few nodes, but gigabytes once expanded: refused on characters."""
    doc = 's0: &s0 "' + "x" * 1_000_000 + '"\n'
    for i in range(1, 6):
        doc += f"s{i}: &s{i} [" + ",".join([f"*s{i - 1}"] * 10) + "]\n"
    with pytest.raises(yamlsafe.YAMLLimitError, match="characters"):
        yamlsafe.load(doc)
    assert len(yamlsafe.load('a: &a "' + "x" * 1000 + '"\nb: [*a, *a, *a]\n')["b"]) == 3
