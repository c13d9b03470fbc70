"""What the operator deploys: spec fields land where MetalLB's operator puts them, the speaker can
really answer ARP (uid 0 with exactly its capabilities), every object is a well-formed Kubernetes
object, the operator's RBAC covers what it renders, and the checked-in manifests are generated."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from metallb_py.apiserver.auth import Attributes, _rule_allows
from metallb_py.operator import manifests
from metallb_py.operator.env import OperatorEnv
from metallb_py.operator.render import render

ROOT = Path(__file__).resolve().parents[2]
ENV = OperatorEnv("metallb-system")

FULL_SPEC: dict[str, Any] = {
    "logLevel": "debug",
    "loadBalancerClass": "example.com/lb",
    "nodeSelector": {"role": "edge"},
    "speakerTolerations": [{"key": "edge", "operator": "Exists", "effect": "NoExecute"}],
    "controllerNodeSelector": {"role": "infra"},
    "controllerTolerations": [{"key": "infra", "operator": "Equal", "value": "yes"}],
    "controllerConfig": {
        "priorityClassName": "system-cluster-critical",
        "runtimeClassName": "",
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "a", "operator": "Exists"}]}
                    ]
                }
            }
        },
        "annotations": {"example.com/c": "1"},
        "resources": {"limits": {"cpu": "1"}},
    },
    "speakerConfig": {
        "priorityClassName": "system-node-critical",
        "runtimeClassName": "kata",
        "annotations": {"example.com/s": "2"},
        "resources": {"requests": {"memory": "32Mi"}},
    },
    "bgpBackend": "frr-k8s",
    "image": "ignored:1",
    "frrk8sConfig": {"alwaysBlock": ["10.0.0.0/8"]},
}


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _pod(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = _one(objs, kind, name)["spec"]["template"]["spec"]
    return spec


# -- the speaker ---------------------------------------------------------------------------------
def test_speaker_runs_as_root_with_exactly_its_capabilities() -> None:
    pod = _pod(render(None, ENV), "DaemonSet", "speaker")
    assert pod["hostNetwork"] is True
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["runAsUser"] == 0
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sorted(sc["capabilities"]["add"]) == ["NET_ADMIN", "NET_BIND_SERVICE", "NET_RAW"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert "runAsUser" not in pod.get("securityContext", {})


def test_speaker_memberlist_wiring() -> None:
    env = OperatorEnv("ns1", memberlist_port=7000)
    pod = _pod(render(None, env), "DaemonSet", "speaker")
    (c,) = pod["containers"]
    by_name = {e["name"]: e for e in c["env"]}
    assert by_name["METALLB_ML_BIND_ADDR"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert by_name["METALLB_ML_LABELS"]["value"] == "app=metallb,component=speaker"
    assert by_name["METALLB_ML_SECRET_KEY_PATH"]["value"] == "/etc/ml_secret_key"
    assert by_name["METALLB_ML_BIND_PORT"]["value"] == "7000"
    ports = {p["name"]: (p["containerPort"], p["protocol"]) for p in c["ports"] if "protocol" in p}
    assert ports == {"memberlist-tcp": (7000, "TCP"), "memberlist-udp": (7000, "UDP")}
    (vol,) = pod["volumes"]
    assert vol["secret"]["secretName"] == "memberlist" and vol["secret"]["optional"] is True
    assert c["volumeMounts"][0] == {
        "name": vol["name"],
        "mountPath": "/etc/ml_secret_key",
        "readOnly": True,
    }
    objs = render(None, env)
    ctl = _pod(objs, "Deployment", "controller")["containers"][0]
    ctl_env = {e["name"]: e.get("value") for e in ctl["env"]}
    assert ctl_env["METALLB_ML_SECRET_NAME"] == "memberlist"
    assert ctl_env["METALLB_DEPLOYMENT"] == "controller"
    role = _one(objs, "Role", "controller")
    secret_rules = [r for r in role["rules"] if r["resources"] == ["secrets"]]
    assert {v for r in secret_rules for v in r["verbs"]} == {"create", "get"}


# -- spec fields -------------------------------------------------------------------------------
def test_defaults() -> None:
    objs = render(None, ENV)
    spk = _pod(objs, "DaemonSet", "speaker")
    ctl = _pod(objs, "Deployment", "controller")
    assert spk["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert [t["key"] for t in spk["tolerations"]] == [
        "node-role.kubernetes.io/master",
        "node-role.kubernetes.io/control-plane",
    ]
    assert "tolerations" not in ctl
    assert ctl["containers"][0]["args"] == [
        "controller",
        "--log-level=info",
        "--metrics-port=7472",
        "--leader-election",
    ]
    assert spk["containers"][0]["args"] == ["speaker", "--log-level=info", "--metrics-port=7473"]
    assert render({}, ENV) == objs


def test_spec_fields_land_where_specified() -> None:
    objs = render(FULL_SPEC, ENV)
    spk = _pod(objs, "DaemonSet", "speaker")
    ctl = _pod(objs, "Deployment", "controller")
    hook = _pod(objs, "Deployment", "webhook-server")
    assert spk["nodeSelector"] == {"role": "edge", "kubernetes.io/os": "linux"}
    assert ctl["nodeSelector"] == {"role": "infra", "kubernetes.io/os": "linux"}
    assert spk["tolerations"][2:] == FULL_SPEC["speakerTolerations"]
    assert len(spk["tolerations"]) == 3
    assert spk["tolerations"][0]["key"] == "node-role.kubernetes.io/master"
    assert ctl["tolerations"] == FULL_SPEC["controllerTolerations"]
    for pod in (spk, ctl):
        args = pod["containers"][0]["args"]
        assert "--log-level=debug" in args and "--lb-class=example.com/lb" in args
    assert "--log-level=debug" in hook["containers"][0]["args"]
    assert ctl["priorityClassName"] == "system-cluster-critical"
    assert "runtimeClassName" not in ctl  # empty: not set
    assert spk["priorityClassName"] == "system-node-critical"
    assert spk["runtimeClassName"] == "kata"
    assert ctl["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    assert spk["containers"][0]["resources"] == {"requests": {"memory": "32Mi"}}
    # The speaker keeps no affinity of ours; the controller's is replaced wholesale.
    assert ctl["affinity"] == FULL_SPEC["controllerConfig"]["affinity"]
    assert "affinity" not in spk


def test_annotations_go_on_the_pod_template_only() -> None:
    objs = render(FULL_SPEC, ENV)
    for kind, name, key in (
        ("Deployment", "controller", "example.com/c"),
        ("DaemonSet", "speaker", "example.com/s"),
    ):
        obj = _one(objs, kind, name)
        assert key not in (obj["metadata"].get("annotations") or {})
        template = obj["spec"]["template"]["metadata"]["annotations"]
        assert template[key] and template["prometheus.io/scrape"] == "true"
    # Neither leaks to the other component.
    assert (
        "example.com/s"
        not in _one(objs, "Deployment", "controller")["spec"]["template"]["metadata"]["annotations"]
    )


def test_backend_image_and_frrk8s_change_nothing() -> None:
    base = {k: v for k, v in FULL_SPEC.items() if k not in ("bgpBackend", "image", "frrk8sConfig")}
    assert render(FULL_SPEC, ENV) == render(base, ENV)
    for backend in ("native", "frr", "frr-k8s", "frr-k8s-external"):
        assert render({**base, "bgpBackend": backend}, ENV) == render(base, ENV)


def test_render_is_deterministic_complete_and_unowned() -> None:
    a, b = render(FULL_SPEC, ENV), render(FULL_SPEC, ENV)
    assert json.dumps(a) == json.dumps(b)
    a[0]["metadata"]["name"] = "changed"  # no shared structure between calls
    assert render(FULL_SPEC, ENV)[0]["metadata"]["name"] != "changed"
    for obj in b:
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]
        assert "ownerReferences" not in obj["metadata"]
        assert obj["kind"] != "Secret"
    kinds = [o["kind"] for o in b]
    # Identities before the workloads that use them.
    assert kinds.index("ServiceAccount") < kinds.index("Deployment")
    assert max(i for i, k in enumerate(kinds) if k == "RoleBinding") < kinds.index("DaemonSet")


def test_unknown_log_level_is_refused() -> None:
    with pytest.raises(ValueError, match="logLevel"):
        render({"logLevel": "verbose"}, ENV)


def test_network_policies_and_monitors() -> None:
    kinds = {o["kind"] for o in render(None, ENV)}
    assert "NetworkPolicy" in kinds and "PodMonitor" not in kinds
    off = OperatorEnv("x", network_policies=False)
    assert "NetworkPolicy" not in {o["kind"] for o in render(None, off)}
    pods = [o for o in render(None, OperatorEnv("x", deploy_pod_monitors=True))]
    assert [o["metadata"]["name"] for o in pods if o["kind"] == "PodMonitor"] == [
        "controller-monitor",
        "speaker-monitor",
    ]
    svcs = render(None, OperatorEnv("x", deploy_service_monitors=True))
    assert len([o for o in svcs if o["kind"] == "ServiceMonitor"]) == 2
    for obj in render(None, OperatorEnv("other")):
        assert obj["metadata"].get("namespace", "other") == "other"


# -- the environment ------------------------------------------------------------------------------
def test_env_defaults_and_values() -> None:
    env = OperatorEnv.from_environ({"OPERATOR_NAMESPACE": "ns"})
    assert env == OperatorEnv("ns")
    env = OperatorEnv.from_environ(
        {
            "OPERATOR_NAMESPACE": "ns",
            "CONTROLLER_IMAGE": "c:1",
            "SPEAKER_IMAGE": "s:1",
            "MEMBER_LIST_BIND_PORT": "7000",
            "METRICS_PORT": "9000",
            "DEPLOY_PODMONITORS": "true",
            "DISABLE_NETWORK_POLICIES": "true",
            "FRR_METRICS_PORT": "7473",
        }
    )
    assert env == OperatorEnv(
        "ns",
        controller_image="c:1",
        speaker_image="s:1",
        memberlist_port=7000,
        controller_metrics_port=9000,
        speaker_metrics_port=9000,
        deploy_pod_monitors=True,
        network_policies=False,
    )
    objs = render(None, env)
    assert _pod(objs, "DaemonSet", "speaker")["containers"][0]["image"] == "s:1"
    assert _pod(objs, "Deployment", "controller")["containers"][0]["image"] == "c:1"
    # Only the literal "true" turns a flag on, as in MetalLB.
    assert not OperatorEnv.from_environ(
        {"OPERATOR_NAMESPACE": "ns", "DEPLOY_PODMONITORS": "True"}
    ).deploy_pod_monitors


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "OPERATOR_NAMESPACE is required"),
        ({"OPERATOR_NAMESPACE": "n", "MEMBER_LIST_BIND_PORT": "x"}, "not an integer"),
        ({"OPERATOR_NAMESPACE": "n", "METRICS_PORT": "70000"}, "not a port"),
        (
            {
                "OPERATOR_NAMESPACE": "n",
                "DEPLOY_SERVICEMONITORS": "true",
                "DEPLOY_PODMONITORS": "true",
            },
            "mutually exclusive",
        ),
    ],
)
def test_env_errors_are_one_line(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        OperatorEnv.from_environ(environ)
    assert "\n" not in str(info.value)


# -- well-formed objects ------------------------------------------------------------------------
_MODELS = {
    "Deployment": "V1Deployment",
    "DaemonSet": "V1DaemonSet",
    "ServiceAccount": "V1ServiceAccount",
    "Service": "V1Service",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "ClusterRole": "V1ClusterRole",
    "ClusterRoleBinding": "V1ClusterRoleBinding",
    "ValidatingWebhookConfiguration": "V1ValidatingWebhookConfiguration",
    "NetworkPolicy": "V1NetworkPolicy",
    "Namespace": "V1Namespace",
}


def _unknown_fields(value: Any, type_name: str, path: str) -> list[str]:
    """Fields the Kubernetes OpenAPI types (as kubernetes_asyncio encodes them) do not have,
    and values of the wrong JSON type: what a strict server would reject."""
    if type_name == "object":
        return []
    if type_name in ("str", "int", "bool"):
        py = {"str": str, "int": int, "bool": bool}[type_name]
        ok = isinstance(value, py) and not (py is int and isinstance(value, bool))
        return [] if ok else [f"{path}: {value!r} is not {type_name}"]
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [e for i, v in enumerate(value) for e in _unknown_fields(v, m[1], f"{path}[{i}]")]
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            return [f"{path}: not a map"]
        return [e for k, v in value.items() for e in _unknown_fields(v, m[1], f"{path}.{k}")]
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        return [f"{path}: not an object"]
    by_json = {j: attr for attr, j in model.attribute_map.items()}
    errors = []
    for key, v in value.items():
        if key not in by_json:
            errors.append(f"{path}.{key}: unknown field")
        else:
            errors.extend(_unknown_fields(v, model.openapi_types[by_json[key]], f"{path}.{key}"))
    return errors


def _deserialize(obj: dict[str, Any]) -> Any:
    """kubernetes_asyncio's own decoding, whose models check required fields and enums. An
    ApiClient without __init__: decoding needs no connection pool (nor an event loop)."""
    api = object.__new__(k8s.ApiClient)
    return api._ApiClient__deserialize(obj, _MODELS[obj["kind"]])  # type: ignore[attr-defined]


def _all_variants() -> list[dict[str, Any]]:
    return [
        *render(None, ENV),
        *render(FULL_SPEC, OperatorEnv("x", deploy_pod_monitors=True)),
        *render(FULL_SPEC, OperatorEnv("x", deploy_service_monitors=True)),
        manifests.namespace_object(),
        *manifests.operator_rbac(),
        manifests.operator_deployment(),
        manifests.operator_service(),
        manifests.operator_webhook_configuration(),
    ]


def test_every_object_is_a_well_formed_kubernetes_object() -> None:
    for obj in _all_variants():
        if obj["kind"] not in _MODELS:  # Prometheus Operator kinds: no model here
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert _unknown_fields(obj, _MODELS[obj["kind"]], where) == []
        assert _deserialize(obj) is not None


# -- the operator's RBAC -----------------------------------------------------------------------
def _allows(rules: list[dict[str, Any]], verb: str, group: str, resource: str, name: str) -> bool:
    resource, _, sub = resource.partition("/")
    attrs = Attributes(verb, group, resource, sub, "ns", name)
    return any(_rule_allows(r, attrs) for r in rules)


def test_operator_can_manage_everything_it_renders() -> None:
    cluster, local = manifests.operator_rules("metallb-system")
    objs = [
        *render(FULL_SPEC, OperatorEnv("metallb-system", deploy_pod_monitors=True)),
        *render(FULL_SPEC, OperatorEnv("metallb-system", deploy_service_monitors=True)),
    ]
    for obj in objs:
        group, plural, namespaced = manifests.KINDS[obj["kind"]]
        rules = local + cluster if namespaced else cluster
        name = obj["metadata"]["name"]
        for verb in ("get", "update", "patch", "delete"):
            assert _allows(rules, verb, group, plural, name), (verb, obj["kind"], name)
        for verb in ("create", "list", "watch"):
            assert _allows(rules, verb, group, plural, ""), (verb, obj["kind"])
    for verb, resource in (
        ("watch", "metallbs"),
        ("update", "metallbs/status"),
        ("update", "metallbs/finalizers"),
    ):
        assert _allows(local, verb, "metallb.io", resource, "metallb")
    for verb in ("get", "create", "update", "delete"):
        assert _allows(local, verb, "", "secrets", "memberlist")
        assert _allows(local, verb, "coordination.k8s.io", "leases", "x")
    assert _allows(
        cluster,
        "patch",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "metallb-operator-webhook-configuration",
    )
    # Nothing cluster-wide beyond what it manages and grants.
    assert not _allows(cluster, "get", "", "secrets", "x")
    assert not _allows(cluster, "delete", "rbac.authorization.k8s.io", "clusterroles", "admin")


def _atoms(rule: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    names = rule.get("resourceNames") or [""]
    return [
        (verb, group, resource, name)
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for name in names
    ]


def test_operator_holds_every_permission_it_grants() -> None:
    """RBAC refuses to create a role granting what the creator does not hold."""
    cluster, local = manifests.operator_rules("metallb-system")
    for obj in render(FULL_SPEC, ENV):
        if obj["kind"] in ("ClusterRole", "Role"):
            held = cluster if obj["kind"] == "ClusterRole" else cluster + local
            for granted in obj["rules"]:
                for verb, group, resource, name in _atoms(granted):
                    assert _allows(held, verb, group, resource, name), (obj["kind"], granted)


# -- generated files -----------------------------------------------------------------------------
def test_checked_in_files_are_generated() -> None:
    bad = [str(p.relative_to(ROOT)) for p in manifests.stale(ROOT / "manifests", ROOT / "bundle")]
    assert not bad, f"out of date: {bad}; run `{manifests.COMMAND}` to regenerate"


def test_plain_manifests_are_render_of_the_defaults() -> None:
    import yaml

    docs: list[Any] = []
    for name in manifests.components(None, ENV):
        docs.extend(yaml.safe_load_all((ROOT / "manifests" / name).read_text()))
    assert docs == render(None, ENV)
    for name in manifests.manifest_files():
        assert (ROOT / "manifests" / name).read_text().startswith(manifests.HEADER)


def test_cluster_scoped_names_do_not_depend_on_the_namespace() -> None:
    """The operator's RBAC names them; it must fit wherever the operator is installed."""

    def names(ns: str) -> list[str]:
        objs = render(None, OperatorEnv(ns))
        return [o["metadata"]["name"] for o in objs if "namespace" not in o["metadata"]]

    assert names("metallb-system") == names("elsewhere")
    assert manifests.operator_rules("elsewhere")[0] == manifests.operator_rules("metallb-system")[0]
