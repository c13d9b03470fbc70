"""The desired Service status: ingress, pool annotation, orphan condition; no write if unchanged."""

from __future__ import annotations

from metallb_py.allocator import PoolSpec
from metallb_py.config import parse
from metallb_py.controller.convert import pool_specs
from metallb_py.controller.reconciler import quote_ips
from metallb_py.controller.service_status import (
    ORPHAN_CONDITION,
    current_ips,
    desired_service,
)

ANN = "metallb.io/ip-allocated-from-pool"


def svc(ips: list[str] = (), ann: dict | None = None, conditions: list | None = None) -> dict:  # type: ignore[assignment]
    status: dict = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]} if ips else {}}
    if conditions:
        status["conditions"] = conditions
    return {
        "metadata": {
            "name": "s",
            "namespace": "d",
            "resourceVersion": "7",
            "annotations": ann or {},
        },
        "spec": {"type": "LoadBalancer"},
        "status": status,
    }


def test_new_allocation_sets_ingress_and_pool_annotation() -> None:
    out = desired_service(svc(), ["192.0.2.1", "2001:db8::1"], "a")
    assert out is not None
    assert current_ips(out) == ["192.0.2.1", "2001:db8::1"]
    assert out["metadata"]["annotations"][ANN] == "a"
    assert out["metadata"]["resourceVersion"] == "7"  # the version it was computed from


def test_nothing_to_write_when_status_already_matches() -> None:
    assert desired_service(svc(["192.0.2.1"], {ANN: "a"}), ["192.0.2.1"], "a") is None


def test_clearing_removes_ingress_and_annotation() -> None:
    out = desired_service(svc(["192.0.2.1"], {ANN: "a", "keep": "x"}), [], None)
    assert out is not None
    assert current_ips(out) == [] and out["metadata"]["annotations"] == {"keep": "x"}


def test_orphan_condition_added_once_and_removed_when_resolved() -> None:
    out = desired_service(svc(["192.0.2.1"], {ANN: "a"}), ["192.0.2.1"], orphan_reason="gone")
    assert out is not None
    (cond,) = out["status"]["conditions"]
    assert (cond["type"], cond["status"]) == (ORPHAN_CONDITION, "True")
    assert out["metadata"]["annotations"][ANN] == "a"  # untouched for orphans
    assert desired_service(out, ["192.0.2.1"], orphan_reason="gone") is None
    healed = desired_service(out, ["192.0.2.1"], "a")
    assert healed is not None and "conditions" not in healed["status"]


def test_quote_ips_matches_go_percent_q_of_a_slice() -> None:
    assert quote_ips(["192.168.10.0", "fc00::"]) == '["192.168.10.0" "fc00::"]'


def test_parsed_config_converts_to_allocator_pools() -> None:
    config, problems = parse(
        [
            {
                "apiVersion": "metallb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {"name": "p", "namespace": "metallb-system"},
                "spec": {
                    "addresses": ["192.0.2.0/28", "198.51.100.1-198.51.100.5"],
                    "avoidBuggyIPs": True,
                    "serviceAllocation": {"priority": 3, "namespaces": ["prod"]},
                },
            }
        ]
    )
    assert not [p for p in problems if p.is_error]
    (spec,) = pool_specs(config)
    assert isinstance(spec, PoolSpec)
    assert spec.addresses == ((4, 0xC0000200, 0xC000020F), (4, 0xC6336401, 0xC6336405))
    assert (spec.avoid_buggy_ips, spec.service_allocation, spec.priority) == (True, True, 3)
    assert spec.namespaces == frozenset({"prod"})
