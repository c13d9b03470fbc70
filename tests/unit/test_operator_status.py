"""The MetalLB resource's status rules: four conditions in MetalLB's order, readiness of the
controller Deployment and speaker DaemonSet, lastTransitionTime kept while a status holds,
no-op detection, the single-instance name rule; plus the webhook's decisions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from metallb_py.operator import status as st
from metallb_py.operator.apply import FINALIZER, OWNER_LABEL, decorate, memberlist_secret
from metallb_py.operator.webhook import review

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def _types(conds: list[dict[str, Any]]) -> list[str]:
    return [c["type"] for c in conds]


def _by_type(conds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conds}


def test_available_sets_available_and_upgradeable() -> None:
    conds = st.build_conditions(st.State.available(), 3, now=T0)
    assert _types(conds) == ["Available", "Upgradeable", "Progressing", "Degraded"]
    by = _by_type(conds)
    assert by["Available"]["status"] == by["Upgradeable"]["status"] == "True"
    assert by["Progressing"]["status"] == by["Degraded"]["status"] == "False"
    for c in conds:
        assert c["observedGeneration"] == 3 and c["lastTransitionTime"] == T0
        assert c["reason"] == c["type"] and c["message"] == ""
        assert set(c) == {
            "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"
        }  # fmt: skip


def test_progressing_and_degraded_carry_reason_and_message() -> None:
    prog = _by_type(
        st.build_conditions(st.State.progressing("MetalLB speaker daemonset not ready"), 1, now=T0)
    )
    assert prog["Progressing"] == {
        "type": "Progressing",
        "status": "True",
        "reason": "Progressing",
        "message": "MetalLB speaker daemonset not ready",
        "lastTransitionTime": T0,
        "observedGeneration": 1,
    }
    assert prog["Available"]["status"] == prog["Upgradeable"]["status"] == "False"
    deg = _by_type(st.build_conditions(st.State.degraded(st.REASON_INTERNAL, "boom"), 1, now=T0))
    assert (deg["Degraded"]["status"], deg["Degraded"]["reason"]) == ("True", "InternalError")
    assert deg["Degraded"]["message"] == "boom"


def test_last_transition_time_kept_unless_status_flips() -> None:
    first = st.build_conditions(st.State.progressing("x"), 1, now=T0)
    # Same state later: identical conditions, so nothing to write.
    again = st.build_conditions(st.State.progressing("x"), 1, first, now=T1)
    assert again == first
    assert not st.status_changed({"status": {"conditions": first}}, again)
    # Another message with the same statuses: times kept, but the status changed.
    other = st.build_conditions(st.State.progressing("y"), 1, first, now=T1)
    assert all(c["lastTransitionTime"] == T0 for c in other)
    assert st.status_changed({"status": {"conditions": first}}, other)
    # Available: Available/Upgradeable/Progressing flip, Degraded stays False.
    avail = _by_type(st.build_conditions(st.State.available(), 2, first, now=T1))
    assert avail["Available"]["lastTransitionTime"] == T1
    assert avail["Upgradeable"]["lastTransitionTime"] == T1
    assert avail["Progressing"]["lastTransitionTime"] == T1
    assert avail["Degraded"]["lastTransitionTime"] == T0
    assert avail["Degraded"]["observedGeneration"] == 2


def test_status_changed_on_empty_and_generation() -> None:
    conds = st.build_conditions(st.State.available(), 1, now=T0)
    assert st.status_changed(None, conds)
    assert st.status_changed({"status": {}}, conds)
    newer = st.build_conditions(st.State.available(), 2, conds, now=T1)
    assert st.status_changed({"status": {"conditions": conds}}, newer)


def _deployment(
    replicas: int | None, ready: int, updated: int, gen: int = 2, seen: int = 2
) -> dict[str, Any]:
    spec = {} if replicas is None else {"replicas": replicas}
    return {
        "metadata": {"generation": gen},
        "spec": spec,
        "status": {"observedGeneration": seen, "readyReplicas": ready, "updatedReplicas": updated},
    }


def test_deployment_readiness() -> None:
    assert st.deployment_ready(_deployment(2, 2, 2))
    assert not st.deployment_ready(_deployment(2, 1, 2))
    assert not st.deployment_ready(_deployment(2, 2, 1))
    assert not st.deployment_ready(_deployment(2, 2, 2, gen=3, seen=2))
    # spec.replicas unset means one replica.
    assert st.deployment_ready(_deployment(None, 1, 1))
    assert not st.deployment_ready(_deployment(None, 0, 0))
    assert not st.deployment_ready({"metadata": {"generation": 1}, "spec": {}})  # no status yet
    assert not st.deployment_ready(None)


def _daemonset(
    desired: int, current: int, ready: int, updated: int, seen: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": seen,
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": current,
            "numberReady": ready,
            "updatedNumberScheduled": updated,
        },
    }


@pytest.mark.parametrize(
    ("ds", "ready"),
    [
        (_daemonset(3, 3, 3, 3), True),
        (_daemonset(0, 0, 0, 0), True),
        (_daemonset(3, 2, 3, 3), False),
        (_daemonset(3, 3, 2, 3), False),
        (_daemonset(3, 3, 3, 2), False),
        (_daemonset(3, 3, 3, 3, seen=0), False),
        (None, False),
    ],
)
def test_daemonset_readiness(ds: dict[str, Any] | None, ready: bool) -> None:
    assert st.daemonset_ready(ds) is ready


def test_readiness_names_what_is_not_ready() -> None:
    good_dep, good_ds = _deployment(1, 1, 1), _daemonset(2, 2, 2, 2)
    assert st.readiness(good_dep, good_ds) == st.State.available()
    assert st.readiness(_deployment(1, 0, 1), good_ds).message == (
        "MetalLB controller deployment not ready"
    )
    assert st.readiness(good_dep, _daemonset(2, 2, 1, 2)).message == (
        "MetalLB speaker daemonset not ready"
    )


def test_only_the_instance_named_metallb_is_reconciled() -> None:
    assert st.name_problem("metallb") is None
    wrong = st.name_problem("other")
    assert wrong == st.State.degraded(
        "IncorrectMetalLBResourceName", "Incorrect MetalLB resource name: other"
    )


def test_decorate_owns_namespaced_and_labels_cluster_scoped() -> None:
    instance = {"metadata": {"name": "metallb", "namespace": "ns", "uid": "u1"}}
    dep = decorate(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "controller"}},
        instance,
        "ns",
    )
    assert dep["metadata"]["namespace"] == "ns"
    assert dep["metadata"]["labels"][OWNER_LABEL] == "metallb"
    assert dep["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "MetalLB",
            "name": "metallb",
            "uid": "u1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    crole = decorate(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "x"},
        },
        instance,
        "ns",
    )
    assert "ownerReferences" not in crole["metadata"] and "namespace" not in crole["metadata"]
    assert crole["metadata"]["labels"][OWNER_LABEL] == "metallb"
    assert FINALIZER.startswith("metallb.io/")


def test_memberlist_secret_shape() -> None:
    import base64

    secret = memberlist_secret({"metadata": {"name": "metallb", "uid": "u"}}, "ns")
    value = base64.b64decode(secret["data"]["secretkey"]).decode()
    assert len(value) == 22 and not value.endswith("=")
    assert len(base64.b64decode(value + "==")) == 16
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u"


def _review(spec: dict[str, Any], op: str = "CREATE") -> dict[str, Any]:
    obj = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "MetalLB",
        "metadata": {"name": "metallb", "namespace": "metallb-system"},
        "spec": spec,
    }
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "abc", "operation": op, "object": obj}}  # fmt: skip
    return review(json.loads(json.dumps(body)))["response"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {
                "controllerTolerations": [
                    {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}
                ]
            },
            "ControllerToleration effect must be NoExecute when tolerationSeconds is set",
        ),
        (
            {
                "speakerConfig": {
                    "affinity": {
                        "nodeAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0}]
                        }
                    }
                }
            },
            "SpeakerConfig NodeAffinity set with invalid weight for preferred scheduling term",
        ),
        (
            {
                "controllerConfig": {
                    "affinity": {
                        "podAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 101}]
                        }
                    }
                }
            },
            "ControllerConfig PodAffinity set with invalid weight for preferred scheduling term",
        ),
        (
            {"bgpBackend": "bird"},
            "invalid BGP Backend, must be one of native, frr, frr-k8s, frr-k8s-external",
        ),
        (
            {"frrk8sConfig": {"alwaysBlock": ["10.0.0.0/33"]}},
            "invalid CIDR 10.0.0.0/33 in AlwaysBlock",
        ),
        ({"logLevel": "loud"}, "unsupported value 'loud'"),
    ],
)
def test_webhook_denies_with_metallb_messages(spec: dict[str, Any], message: str) -> None:
    resp = _review(spec)
    assert resp["allowed"] is False and resp["uid"] == "abc"
    assert resp["status"]["code"] == 403 and resp["status"]["reason"] == "Forbidden"
    assert message in resp["status"]["message"]


def test_webhook_frrk8s_external_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRRK8S_EXTERNAL_NAMESPACE", raising=False)
    resp = _review({"bgpBackend": "frr-k8s-external"})
    assert resp["status"]["message"] == (
        "bgp backend: frrk8s external and no default or user provided namespace"
    )
    assert _review({"bgpBackend": "frr-k8s-external", "frrk8sConfig": {"namespace": "f"}})[
        "allowed"
    ]
    monkeypatch.setenv("FRRK8S_EXTERNAL_NAMESPACE", "frr-k8s-system")
    assert _review({"bgpBackend": "frr-k8s-external"})["allowed"]


def test_webhook_allows_good_and_rejects_garbage() -> None:
    good = {"logLevel": "debug", "nodeSelector": {"a": "b"}, "bgpBackend": "frr"}
    assert _review(good)["allowed"] is True
    assert _review(good, "UPDATE")["allowed"] is True
    assert _review({"bgpBackend": "x"}, "DELETE")["allowed"] is True
    bad = review({"kind": "nonsense"})["response"]
    assert bad["allowed"] is False and bad["status"]["code"] == 400


def test_webhook_lets_metadata_updates_and_deletion_through() -> None:
    bad = {"bgpBackend": "bird"}
    obj: dict[str, Any] = {"apiVersion": "metallb.io/v1beta1", "kind": "MetalLB",
           "metadata": {"name": "metallb", "namespace": "ns"}, "spec": bad}  # fmt: skip
    with_finalizer = {**obj, "metadata": {**obj["metadata"], "finalizers": ["x"]}}
    req = {"uid": "u", "operation": "UPDATE", "object": with_finalizer, "oldObject": obj}
    assert review({"request": req})["response"]["allowed"] is True
    deleting = {**obj, "metadata": {**obj["metadata"], "deletionTimestamp": T0}}
    old = {**obj, "spec": {}}
    req = {"uid": "u", "operation": "UPDATE", "object": deleting, "oldObject": old}
    assert review({"request": req})["response"]["allowed"] is True
    req = {"uid": "u", "operation": "UPDATE", "object": obj, "oldObject": old}
    assert review({"request": req})["response"]["allowed"] is False
