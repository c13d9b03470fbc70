"""Hostile input to the configuration parser and what it must never print (issue 16, items 9-11
and 13): each test reproduces an attack that used to hang, exhaust memory, crash or leak, and
checks the bounded answer that replaced it."""

from __future__ import annotations

import base64
import io
import json
import resource
import time
from pathlib import Path
from typing import Any

import pytest

from metallb_py.config import parse
from metallb_py.config.problems import (
    MAX_LINES_PER_OBJECT,
    MAX_LINES_TOTAL,
    MAX_QUOTED,
    ObjectRef,
    Problem,
    bounded_lines,
)
from metallb_py.config.validate_cli import validate
from webhooks import admission
from webhooks.paths import BY_PATH

ROOT = Path(__file__).resolve().parents[2]
NS = "metallb-system"
SECRET = "S3cr3t-md5-key-4242"


def laughs(levels: int, indent: str) -> str:
    out = f'{indent}l0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels + 1):
        out += f"{indent}l{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return out


def run_validate(text: str) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    code = validate(["-"], io.StringIO(text), out, err)
    return code, out.getvalue(), err.getvalue(), time.monotonic() - start


def pool_doc(addresses: str, extra: str = "") -> str:
    return (
        f"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\n{extra}"
        f"spec:\n  addresses: {addresses}\n"
    )


# -- item 9: alias bombs -------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [7, 9])
def test_alias_bomb_in_labels_is_refused_not_expanded(levels: int) -> None:
    text = pool_doc("[192.0.2.0/24]", "  labels:\n" + laughs(levels, "    "))
    code, out, err, took = run_validate(text)
    assert code == 2 and out == ""
    assert "refused: IPAddressPool 'p': metadata.labels.l" in err
    assert "excessive aliasing" in err
    assert took < 2 and len(err) < 1000


def test_alias_bomb_in_addresses_is_refused_and_never_printed() -> None:
    spec_bomb = laughs(8, "  ").replace("l", "x").replace('"xox"', '"lol"')
    text = (
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\nspec:\n"
        + spec_bomb
        + "  addresses: *a8\n"
    )
    assert len(text) < 1000
    code, out, err, _ = run_validate(text)
    assert code == 2 and len(out) + len(err) < 1000


def test_a_small_aliased_value_within_the_budget_is_quoted_briefly() -> None:
    """Below the alias budget the parser still sees a nested list where a string belongs: the
    problem quotes it in at most MAX_QUOTED characters."""
    spec = laughs(4, "  ").replace("l", "x").replace('"xox"', '"lol"')
    text = (
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\nspec:\n"
        + spec
        + "  addresses: *a4\n"
    )
    code, out, _, _ = run_validate(text)
    assert code == 1
    lines = out.splitlines()
    assert lines and all(len(line) < 400 for line in lines)
    assert "spec.addresses[0]: must be a string, not array [[" in out


# -- item 10: duplicates reported pairwise -------------------------------------------------------


def test_three_thousand_duplicate_addresses() -> None:
    text = pool_doc("\n" + "".join("  - 192.0.2.1/32\n" for _ in range(3000)))
    assert len(text) < 60_000
    code, out, err, took = run_validate(text)
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == MAX_LINES_PER_OBJECT + 1
    assert lines[-1].endswith(
        f"... and {2999 - MAX_LINES_PER_OBJECT} more problem(s) of this object"
    )
    assert "2999 error(s)" in err  # each duplicate once, naming the first
    assert "overlaps with '192.0.2.1/32' (spec.addresses[0]) in the same pool" in lines[0]
    assert took < 10


def test_overlaps_each_entry_once_whatever_the_order() -> None:
    entries = ["192.0.2.0/24", "192.0.2.7", "198.51.100.0/24", "192.0.2.8-192.0.2.9", "10.0.0.1"]
    res = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p"},
        "spec": {"addresses": entries},
    }
    _, problems = parse([res])
    paths = sorted(p.path for p in problems)
    assert paths == ["spec.addresses[1]", "spec.addresses[3]"]


def test_many_objects_are_bounded_in_total() -> None:
    docs = "".join(
        "---\n" + pool_doc("[192.0.2.1, 192.0.2.1, 192.0.2.1]").replace("name: p", f"name: p{i}")
        for i in range(300)
    )
    code, out, err, _ = run_validate(docs)
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == MAX_LINES_TOTAL + 1 and lines[-1].startswith("... and ")
    assert "error(s)" in err


def test_bounded_lines_keeps_errors_and_order() -> None:
    ref = ObjectRef("IPAddressPool", NS, "p")
    probs = [Problem(ref, f"f{i}", "w", "r", "warning") for i in range(30)]
    probs.append(Problem(ref, "z", "the error", "r"))
    lines = bounded_lines(probs, per_object=5)
    assert len(lines) == 6 and any("the error" in line for line in lines)
    assert lines[-1].endswith("... and 26 more problem(s) of this object")


def test_pairwise_peers_and_advertisements_are_not_quadratic() -> None:
    peers = [
        {
            "apiVersion": "metallb.io/v1beta2",
            "kind": "BGPPeer",
            "metadata": {"name": f"x{i}"},
            "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"},
        }
        for i in range(3000)
    ]
    start = time.monotonic()
    _, problems = parse(peers)
    assert time.monotonic() - start < 10
    assert len(problems) == 2999


# -- item 11: depth and huge integers ------------------------------------------------------------


def test_deep_nesting_in_yaml_is_a_line_naming_object_and_field() -> None:
    code, _, err, _ = run_validate(pool_doc("[" * 3000 + "]" * 3000))
    assert code == 2 and "internal error" not in err
    assert "IPAddressPool 'p': spec.addresses[0][0]" in err and "nested deeper than" in err


def test_nesting_between_the_limits_is_a_problem_of_the_object() -> None:
    code, out, err, _ = run_validate(pool_doc("[" * 80 + "]" * 80))
    assert code == 1 and "internal error" not in err
    assert "IPAddressPool/metallb-system/p: spec.addresses[0][0]" in out
    assert "nested deeper than 64 levels (rule object-shape)" in out


def test_deep_json_object_from_the_webhook_or_api() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    res = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p"},
        "spec": {"addresses": deep},
    }
    _, problems = parse([res])
    assert [p.rule for p in problems] == ["object-shape"]
    hook = BY_PATH["/validate-metallb-io-v1beta1-ipaddresspool"]
    review = {"request": {"uid": "u", "operation": "CREATE", "namespace": NS, "object": res}}
    resp = admission.review(hook, review, [], NS)["response"]
    assert not resp["allowed"] and "nested deeper than" in resp["status"]["message"]


def test_huge_integers() -> None:
    text = (
        "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata:\n  name: b\n"
        "spec:\n  receiveInterval: " + "9" * 5000 + "\n"
    )
    code, _, err, _ = run_validate(text)
    assert code == 2 and "internal error" not in err
    assert "BFDProfile 'b': spec.receiveInterval: integer of 5000 characters" in err
    # Built in Python (not from YAML or JSON, which refuse them): still a bounded problem line.
    res = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BFDProfile",
        "metadata": {"name": "b", "labels": {"a": 10**5000}},
        "spec": {"receiveInterval": 10**5000},
    }
    _, problems = parse([res])
    assert problems and all(len(p.line()) < 500 for p in problems)


def test_long_names_and_values_are_cut() -> None:
    res = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "n" * 100_000},
        "spec": {"addresses": ["x" * 100_000], "y" * 100_000: 1},
    }
    _, problems = parse([res])
    assert problems and all(len(p.line()) < 3 * MAX_QUOTED + 600 for p in problems)


# -- item 13: secrets ----------------------------------------------------------------------------


def peer_yaml(password: str) -> str:
    return (
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: r\n"
        f"spec:\n  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n{password}\n"
    )


@pytest.mark.parametrize(
    "field",
    [
        f"  password: [{SECRET}]",
        f"  password: {{k: {SECRET}}}",
        "  password: 12345678901234",
        f"  password: {SECRET}\n  passwordSecret: {{name: s}}",
    ],
)
def test_config_validate_never_echoes_a_password(field: str) -> None:
    secret = "12345678901234" if "1234" in field else SECRET
    code, out, err, _ = run_validate(peer_yaml(field))
    assert code == 1
    assert secret not in out + err
    assert "spec.password" in out


def test_reprs_hide_secrets() -> None:
    from bgp.speak_cli import parse_args
    from bgp.speaker import PeerConfig
    from bgp.transport import SocketOptions
    from metallb_py.apiserver import tls
    from metallb_py.apiserver.main import Secrets
    from metallb_py.config.model import Peer

    pem = tls.Pem(b"cert", SECRET.encode())
    things: list[object] = [
        Peer("p", 64500, password=SECRET),
        PeerConfig("192.0.2.1", 64500, password=SECRET),
        SocketOptions(password=SECRET),
        pem,
        Secrets(SECRET.encode(), SECRET, pem),
        parse_args(["--local-as", "1", "--peer", "2@192.0.2.1", "--password", SECRET]),
    ]
    for thing in things:
        assert SECRET not in repr(thing) and SECRET not in str(thing)


def test_webhook_review_with_a_password_secret_shows_no_secret() -> None:
    peer: dict[str, Any] = {
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": {"name": "r", "namespace": NS},
        "spec": {
            "myASN": 64500,
            "peerASN": 64501,
            "peerAddress": "192.0.2.1",
            "passwordSecret": {"name": "s"},
            "password": SECRET,
        },
    }
    bad_type: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": NS},
        "type": "Opaque",
        "data": {"password": base64.b64encode(SECRET.encode()).decode()},
    }
    hook = BY_PATH["/validate-metallb-io-v1beta2-bgppeer"]
    review = {"request": {"uid": "u", "operation": "CREATE", "namespace": NS, "object": peer}}
    result = json.dumps(admission.review(hook, review, [bad_type], NS))
    assert '"allowed": false' in result and SECRET not in result
    del peer["spec"]["password"]
    bad_type["type"] = "kubernetes.io/basic-auth"
    bad_type["data"] = {"password": SECRET + "!!"}  # not base64
    result = json.dumps(admission.review(hook, review, [bad_type], NS))
    assert "not valid base64" in result and SECRET not in result
    config, problems = parse([peer, {**bad_type, "stringData": {"password": SECRET}}])
    assert config.peers[0].password == SECRET
    assert SECRET not in repr(config) + repr(problems)


def test_validate_stays_small_in_memory() -> None:
    """The 3 000-duplicate file once took 2.2 GB; now a few MB over the interpreter."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run_validate(pool_doc("\n" + "".join("  - 192.0.2.1/32\n" for _ in range(3000))))
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 200_000
