"""The documented differences from MetalLB's rules (docs/configuration.md), pinned."""

from __future__ import annotations

from typing import Any

from metallb_py.config import parse


def peer(name: str, router_id: str, **spec: Any) -> dict[str, Any]:
    body = {"myASN": 64500, "peerASN": 64501, "routerID": router_id, **spec}
    return {
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": body,
    }


def test_peers_sharing_nodes_may_have_different_router_ids() -> None:
    config, problems = parse(
        [
            peer("a", "192.0.2.11", peerAddress="192.0.2.1"),
            peer("b", "192.0.2.12", peerAddress="192.0.2.2"),
        ]
    )
    assert problems == []
    assert {str(p.router_id) for p in config.peers} == {"192.0.2.11", "192.0.2.12"}


def test_password_secret_in_another_namespace_is_refused() -> None:
    _, problems = parse(
        [
            peer(
                "a",
                "192.0.2.11",
                peerAddress="192.0.2.1",
                passwordSecret={"name": "s", "namespace": "other"},
            )
        ],
        lenient_references=True,
    )
    errors = [p.line() for p in problems if p.is_error]
    assert errors == [
        "BGPPeer/metallb-system/a: spec.passwordSecret.namespace: the Secret must be in the "
        "metallb-system namespace (rule peer-password)"
    ]


def test_a_single_pool_address_is_a_host_route() -> None:
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "one", "namespace": "metallb-system"},
        "spec": {"addresses": ["203.0.113.7", "2001:db8::7"]},
    }
    config, problems = parse([pool])
    assert problems == []
    (ranges,) = [p.ranges for p in config.pools]
    assert [(str(r.first), str(r.last)) for r in ranges] == [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::7", "2001:db8::7"),
    ]
