"""The controller's informer transforms keep every field the controller reads, and its status
write (a merge patch computed from the trimmed object) changes exactly what a write computed from
the full object would, leaving everything the cache dropped as the server has it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.allocator.service import request_from_service, uses_legacy_annotations
from metallb_py.apiserver.patch import merge_patch
from metallb_py.controller import ingest
from metallb_py.controller.metrics import layer2_expected
from metallb_py.controller.reconciler import created
from metallb_py.controller.service_status import (
    current_ips,
    desired_service,
    orphan_condition,
)
from metallb_py.kube.rest import SERVICES
from metallb_py.kube.status import StatusWriter, merge_diff, status_patch

JUNK_META = {
    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
    "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u"}],
}
OTHER_CONDITION = {"type": "example.com/Probed", "status": "True", "reason": "Ok"}
ORPHANED = {
    "type": "metallb-py.io/AddressOrphaned",
    "status": "True",
    "reason": "NotAllowedByConfig",
    "message": "old",
    "lastTransitionTime": "2026-12-06T00:00:00Z",
}


@st.composite
def full_service(draw: st.DrawFn) -> dict[str, Any]:
    anns = {
        "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 200 + "}",
        "example.com/owner": "team-a",
    }
    for key, values in (
        ("metallb.io/allow-shared-ip", ["k", "j"]),
        ("metallb.universe.tf/allow-shared-ip", ["k"]),
        ("metallb.io/address-pool", ["a", "b"]),
        ("metallb.io/loadBalancerIPs", ["192.0.2.7", "192.0.2.7,2001:db8::7", "bad"]),
        ("metallb.io/ip-allocated-from-pool", ["a", "b"]),
        ("metallb.universe.tf/address-pool", ["a"]),
        ("metallb-py.io/reallocate", ["true", "no"]),
    ):
        if draw(st.booleans()):
            anns[key] = draw(st.sampled_from(values))
    policy = draw(st.sampled_from(["Cluster", "Local", None]))
    spec: dict[str, Any] = {
        "type": draw(st.sampled_from(["LoadBalancer", "LoadBalancer", "ClusterIP", "NodePort"])),
        "ports": [
            {
                "name": "p",
                "port": draw(st.sampled_from([80, 443, 53])),
                "targetPort": 8080,
                "nodePort": 31000,
                "protocol": draw(st.sampled_from(["TCP", "UDP", None])),
            }
            for _ in range(draw(st.integers(0, 3)))
        ],
        "selector": draw(st.sampled_from([{}, {"app": "x"}, {"app": "y", "tier": "web"}])),
        "sessionAffinity": "ClientIP",
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
    }
    if policy is not None:
        spec["externalTrafficPolicy"] = policy
    ips = draw(st.sampled_from([None, ["10.96.0.10"], ["10.96.0.10", "fd00::10"], ["None"]]))
    if ips is not None:
        spec["clusterIPs"] = ips
        spec["clusterIP"] = ips[0]
    elif draw(st.booleans()):
        spec["clusterIP"] = "10.96.0.11"
    for key, values in (
        ("loadBalancerClass", ["", "other"]),
        ("loadBalancerIP", ["192.0.2.9", "2001:db8::9"]),
        ("ipFamilyPolicy", ["SingleStack", "PreferDualStack", "RequireDualStack"]),
    ):
        if draw(st.booleans()):
            spec[key] = draw(st.sampled_from(values))
    ingress: list[dict[str, Any]] = [
        {"ip": ip, "ipMode": "VIP"}
        for ip in draw(st.sampled_from([[], ["192.0.2.1"], ["192.0.2.1", "2001:db8::1"]]))
    ]
    if draw(st.booleans()):
        ingress.append({"hostname": "lb.example", "ports": [{"port": 80, "protocol": "TCP"}]})
    status: dict[str, Any] = {"loadBalancer": {"ingress": ingress} if ingress else {}}
    conditions = [c for c in (OTHER_CONDITION, ORPHANED) if draw(st.booleans())]
    if conditions:
        status["conditions"] = conditions
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": "s",
            "namespace": draw(st.sampled_from(["default", "web"])),
            "uid": "uid-1",
            "resourceVersion": "17",
            "creationTimestamp": "2026-12-06T00:00:00Z",
            "generation": draw(st.integers(1, 5)),
            "labels": draw(st.sampled_from([{}, {"tier": "web"}, {"tier": "db", "app": "x"}])),
            "annotations": anns,
            **JUNK_META,
        },
        "spec": spec,
        "status": status,
    }


@settings(max_examples=300, deadline=None)
@given(full_service(), st.sampled_from([{}, {"team": "a"}]))
def test_trimmed_service_reads_like_the_full_one(full: dict[str, Any], ns_labels: Any) -> None:
    slim = ingest.service(copy.deepcopy(full))
    assert request_from_service(slim, ns_labels) == request_from_service(full, ns_labels)
    assert current_ips(slim) == current_ips(full)
    assert orphan_condition(slim) == orphan_condition(full)
    assert created(slim) == created(full)
    assert uses_legacy_annotations(slim) == uses_legacy_annotations(full)
    for key in ("type", "loadBalancerClass"):
        assert slim["spec"].get(key) == full["spec"].get(key)
    for key in ("kind", "apiVersion"):
        assert slim[key] == full[key]
    for key in ("name", "namespace", "uid", "resourceVersion", "generation"):
        assert slim["metadata"][key] == full["metadata"][key]
    assert slim["metadata"].get("labels", {}) == full["metadata"]["labels"]
    assert "managedFields" not in slim["metadata"]
    assert "example.com/owner" not in slim["metadata"].get("annotations", {})


@settings(max_examples=300, deadline=None)
@given(
    full_service(),
    st.sampled_from([[], ["192.0.2.1"], ["192.0.2.3"], ["192.0.2.1", "2001:db8::1"]]),
    st.sampled_from([None, "a", "c", "keep"]),
    st.sampled_from([None, "gone"]),
)
def test_status_patch_from_the_trimmed_cache_equals_a_full_write(
    full: dict[str, Any], ips: list[str], pool: str | None, orphan: str | None
) -> None:
    """Applying the patch to the stored object gives the status and annotations a write of the
    full object would give, and changes nothing else."""
    now = "2026-12-06T01:00:00Z"
    pool_arg: Any = {"pool": pool} if pool != "keep" else {}
    slim = ingest.service(copy.deepcopy(full))
    want = desired_service(full, ips, orphan_reason=orphan, now=now, **pool_arg)
    got = desired_service(slim, ips, orphan_reason=orphan, now=now, **pool_arg)
    assert (want is None) == (got is None)
    if want is None or got is None:
        return
    patch = status_patch(slim, got)
    assert set(patch) <= {"metadata", "status"}
    assert patch["metadata"]["resourceVersion"] == "17"
    assert set(patch["metadata"]) <= {"resourceVersion", "annotations"}
    stored = merge_patch(copy.deepcopy(full), patch)
    assert stored["metadata"].get("annotations") == want["metadata"].get("annotations")
    assert current_ips(stored) == list(ips)
    assert stored["status"].get("conditions") == want["status"].get("conditions")
    for key in ("spec", "kind", "apiVersion"):
        assert stored[key] == full[key]
    untouched = {k: v for k, v in full["metadata"].items() if k != "annotations"}
    assert {k: v for k, v in stored["metadata"].items() if k != "annotations"} == untouched
    if current_ips(full) == list(ips):
        assert stored["status"]["loadBalancer"] == full["status"]["loadBalancer"]  # ipMode kept


def test_merge_diff_nulls_removed_keys_and_replaces_lists() -> None:
    old = {"a": 1, "b": {"c": [1, 2], "d": 2}, "e": "x"}
    new = {"a": 1, "b": {"c": [1]}, "f": {}}
    assert merge_diff(old, new) == {"b": {"c": [1], "d": None}, "e": None, "f": {}}
    assert merge_diff(old, old) == {}


def test_selector_kept_only_where_the_sharing_rule_reads_it() -> None:
    svc: dict[str, Any] = {
        "metadata": {"name": "s"},
        "spec": {"selector": {"app": "x"}, "ports": []},
    }
    assert "selector" not in ingest.service(svc)["spec"]
    svc["spec"]["externalTrafficPolicy"] = "Local"
    assert ingest.service(svc)["spec"]["selector"] == {"app": "x"}


def test_identical_port_lists_are_shared() -> None:
    def svc(name: str) -> dict[str, Any]:
        ports = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
        return {"metadata": {"name": name}, "spec": {"ports": ports}}

    a, b = ingest.service(svc("a")), ingest.service(svc("b"))
    assert a["spec"]["ports"] == ({"protocol": "TCP", "port": 80},)
    assert a["spec"]["ports"] is b["spec"]["ports"]


def test_namespace_keeps_labels_and_envelope() -> None:
    ns = {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": "web",
            "uid": "u",
            "resourceVersion": "5",
            "creationTimestamp": "2026-12-06T00:00:00Z",
            "labels": {"kubernetes.io/metadata.name": "web", "team": "a"},
            "annotations": {"openshift.io/sa.scc.uid-range": "1000/10000"},
            **JUNK_META,
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
    assert ingest.namespace(ns) == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": "web",
            "uid": "u",
            "resourceVersion": "5",
            "creationTimestamp": "2026-12-06T00:00:00Z",
            "labels": {"kubernetes.io/metadata.name": "web", "team": "a"},
        },
    }


def test_layer2_metric_reads_labels_from_the_trimmed_service() -> None:
    full = {"metadata": {"name": "s", "namespace": "d", "labels": {"tier": "web"}}, "spec": {}}
    slim = ingest.service(full)

    class View:
        key, pool, ips = "d/s", "p", ("192.0.2.1",)

    class Ad:
        @staticmethod
        def selects_service(labels: Any) -> bool:
            return bool(labels.get("tier") == "web")

    class Cfg:
        @staticmethod
        def l2_advertisements_for(pool: str) -> list[Any]:
            return [Ad()]

    rows = layer2_expected([View()], Cfg(), {"d/s": slim}.get)  # type: ignore[arg-type, list-item]
    assert rows == [("d/s", "192.0.2.1", "p")]


async def test_patch_status_refuses_a_write_without_resource_version() -> None:
    writer = StatusWriter(rest=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resourceVersion"):
        await writer.patch_status(SERVICES, "d", "s", {"metadata": {"name": "s"}})
