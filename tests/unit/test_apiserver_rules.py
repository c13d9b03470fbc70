"""Pure parts of the embedded API server: selectors, patches, Service defaulting, schemas, CEL,
printer columns, RBAC rule matching."""

from __future__ import annotations

from typing import Any

import pytest

from metallb_py.apiserver import patch, schema, table
from metallb_py.apiserver.auth import Attributes, _rule_allows
from metallb_py.apiserver.cel import CelValidator
from metallb_py.apiserver.errors import ApiError
from metallb_py.apiserver.resources import builtin_resources
from metallb_py.apiserver.selectors import (
    match_label_selector,
    parse_field_selector,
    parse_label_selector,
)
from metallb_py.apiserver.services import ServiceAllocator


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web,tier!=db", {"app": "web", "tier": "db"}, False),
        ("app in (web, api)", {"app": "api"}, True),
        ("app notin (web)", {}, True),
        ("app", {"app": ""}, True),
        ("!app", {"app": "x"}, False),
        ("env in (a),!legacy,app", {"env": "a", "app": "1"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    match = parse_label_selector(selector)
    assert match is not None and match(labels) is expected


def test_bad_label_selector_is_a_400() -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector("app in web")
    assert err.value.code == 400


def test_label_selector_object_form() -> None:
    sel = {
        "matchLabels": {"a": "1"},
        "matchExpressions": [
            {"key": "b", "operator": "NotIn", "values": ["x"]},
            {"key": "c", "operator": "Exists"},
        ],
    }
    assert match_label_selector(sel, {"a": "1", "c": ""})
    assert not match_label_selector(sel, {"a": "1", "b": "x", "c": ""})
    assert match_label_selector({}, {})


def test_field_selectors() -> None:
    match = parse_field_selector("spec.nodeName=n1,metadata.name!=p2", "pods", "")
    assert match is not None
    assert match({"metadata": {"name": "p1"}, "spec": {"nodeName": "n1"}})
    assert not match({"metadata": {"name": "p2"}, "spec": {"nodeName": "n1"}})
    events = parse_field_selector("involvedObject.kind=Service", "events", "")
    assert events is not None and events({"involvedObject": {"kind": "Service"}})
    with pytest.raises(ApiError):
        parse_field_selector("spec.nodeName=x", "services", "")


def test_merge_and_json_patch() -> None:
    doc = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert patch.merge_patch(doc, {"a": {"b": None, "d": 3}, "l": [3]}) == {
        "a": {"c": 2, "d": 3},
        "l": [3],
    }
    assert doc == {"a": {"b": 1, "c": 2}, "l": [1, 2]}, "the target is not mutated"
    ops = [
        {"op": "add", "path": "/l/-", "value": 3},
        {"op": "remove", "path": "/a/b"},
        {"op": "replace", "path": "/a/c", "value": 9},
        {"op": "test", "path": "/l/0", "value": 1},
        {"op": "copy", "from": "/a", "path": "/z"},
    ]
    assert patch.json_patch(doc, ops) == {"a": {"c": 9}, "l": [1, 2, 3], "z": {"c": 9}}
    with pytest.raises(ApiError):
        patch.json_patch(doc, [{"op": "test", "path": "/l/0", "value": 5}])


def test_strategic_merge_by_key_with_kubectl_directives() -> None:
    svc = {
        "metadata": {"finalizers": ["a"]},
        "spec": {
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
            "selector": {"app": "x"},
        },
    }
    p = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "$setElementOrder/ports": [{"port": 8443}, {"port": 80}],
            "ports": [{"name": "https", "port": 8443}, {"$patch": "delete", "port": 443}],
            "selector": {"$patch": "replace", "tier": "y"},
        },
    }
    out = patch.strategic_merge(svc, p, "Service")
    assert out["spec"]["ports"] == [{"name": "https", "port": 8443}, {"name": "http", "port": 80}]
    assert out["spec"]["selector"] == {"tier": "y"}
    assert out["metadata"]["finalizers"] == ["a", "b"]
    pod = {
        "spec": {
            "containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]}],
            "tolerations": [{"key": "t"}],
        }
    }
    out = patch.strategic_merge(
        pod,
        {
            "spec": {
                "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}],
                "tolerations": [{"key": "u"}],
            }
        },
        "Pod",
    )
    assert out["spec"]["containers"][0]["env"] == [
        {"name": "X", "value": "1"},
        {"name": "Y", "value": "2"},
    ]
    assert out["spec"]["tolerations"] == [{"key": "u"}], "lists without a merge key are atomic"


def svc(**spec: Any) -> dict[str, Any]:
    return {"spec": {"ports": [{"port": 80}], **spec}}


def test_service_defaults_and_allocation() -> None:
    alloc = ServiceAllocator(["10.96.0.0/28", "fd00::/120"])
    a = svc(type="LoadBalancer")
    assert alloc.prepare(a, None) == []
    spec = a["spec"]
    assert spec["clusterIP"] == "10.96.0.1" and spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack" and spec["ports"][0]["targetPort"] == 80
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
    assert spec["externalTrafficPolicy"] == "Cluster" and spec["allocateLoadBalancerNodePorts"]
    b = svc(ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv6"])
    assert alloc.prepare(b, None) == []
    assert b["spec"]["ipFamilies"] == ["IPv6", "IPv4"] and ":" in b["spec"]["clusterIPs"][0]
    taken = svc(clusterIP="10.96.0.1")
    errs = alloc.prepare(taken, None)
    assert errs and "already allocated" in str(errs[0])
    outside = svc(clusterIP="192.0.2.1")
    assert "not in the valid range" in str(alloc.prepare(outside, None)[0])
    headless = svc(clusterIP="None")
    assert alloc.prepare(headless, None) == [] and headless["spec"]["clusterIPs"] == ["None"]
    # immutability on update
    changed = {"spec": {**a["spec"], "clusterIP": "10.96.0.9"}}
    assert "field is immutable" in str(alloc.prepare(changed, a)[0])
    # the range runs out: a clear error, not a crash
    for _ in range(20):
        alloc.prepare(svc(), None)
    errs = alloc.prepare(svc(), None)
    assert errs and "range is full" in str(errs[0])
    only4 = ServiceAllocator(["10.96.0.0/24"])
    errs = only4.prepare(svc(ipFamilyPolicy="RequireDualStack"), None)
    assert "not configured for dual-stack" in str(errs[0])


def test_service_adopt_and_release_book_ips_and_node_ports() -> None:
    alloc = ServiceAllocator(["10.96.0.0/28", "fd00::/120"])
    stored = {
        "spec": {
            "clusterIPs": ["10.96.0.5", "fd00::5"],
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}],
            "healthCheckNodePort": 31000,
        }
    }
    alloc.adopt(stored)
    assert alloc.node_ports == {30080, 31000}
    errs = alloc.prepare(svc(clusterIP="10.96.0.5"), None)
    assert errs and "already allocated" in str(errs[0])
    alloc.adopt({"spec": {"clusterIPs": ["None"]}})  # headless: nothing to book
    alloc.release(stored)
    assert alloc.node_ports == set()
    assert alloc.prepare(svc(clusterIP="10.96.0.5"), None) == []


def test_service_update_changes_families_only_by_policy() -> None:
    alloc = ServiceAllocator(["10.96.0.0/28", "fd00::/120"])
    a = svc()
    assert alloc.prepare(a, None) == [] and a["spec"]["clusterIPs"] == ["10.96.0.1"]
    grown = {"spec": {**a["spec"], "ipFamilyPolicy": "PreferDualStack", "ipFamilies": []}}
    grown["spec"].pop("clusterIPs")
    assert alloc.prepare(grown, a) == []
    assert grown["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    assert grown["spec"]["clusterIPs"] == ["10.96.0.1", "fd00::1"]
    shrunk = {"spec": {**grown["spec"], "ipFamilyPolicy": "SingleStack"}}
    assert alloc.prepare(shrunk, grown) == [] and shrunk["spec"]["clusterIPs"] == ["10.96.0.1"]
    again = svc(clusterIPs=["fd00::1"])  # the dropped address was released
    assert alloc.prepare(again, None) == [] and again["spec"]["ipFamilies"] == ["IPv6"]


def test_allocated_addresses_are_written_and_read_as_ipaddress_does() -> None:
    import ipaddress

    from metallb_py.apiserver.services import IPAllocator

    for cidr in ("10.96.0.0/22", "fd00:0:0:1::/118"):
        net = ipaddress.ip_network(cidr)
        a = IPAllocator(net)
        got = [a.allocate() for _ in range(net.num_addresses - 2)]
        assert got == [str(net.network_address + n) for n in range(1, net.num_addresses - 1)]
        assert a.allocate() is None or net.version == 6  # IPv4: the range is full
        for ip in got[:50]:
            a.release(ip.upper())  # any spelling of the address frees it
            assert a.reserve(str(ipaddress.ip_address(ip).exploded))
        for bad in ("10.96.4.1", "fd00::1", "nope", "10.96.0.01", ""):
            assert not a.reserve(bad)


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.6"]}, "spec.clusterIPs", "first"),
        ({"clusterIPs": ["nope"]}, "spec.clusterIPs[0]", "valid IP address"),
        ({"clusterIPs": ["fd00::5"], "ipFamilies": ["IPv4"]}, "spec.ipFamilies", "must match"),
        ({"ipFamilyPolicy": "Both"}, "spec.ipFamilyPolicy", "SingleStack"),
        (
            {"clusterIPs": ["10.96.0.5", "fd00::5"], "ipFamilyPolicy": "SingleStack"},
            "spec.clusterIPs",
            "single IP",
        ),
    ],
)
def test_service_cluster_ip_requests_are_checked(
    spec: dict[str, Any], field: str, words: str
) -> None:
    alloc = ServiceAllocator(["10.96.0.0/28", "fd00::/120"])
    (err,) = alloc.prepare(svc(**spec), None)
    assert err.field == field and words in str(err)
    assert alloc.prepare(svc(clusterIP="10.96.0.5"), None) == []  # nothing was kept reserved


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                "cidrs": {
                    "type": "array",
                    "items": {"type": "string", "format": "cidr"},
                    "maxItems": 2,
                },
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "port": {"x-kubernetes-int-or-string": True},
            },
        },
    },
}


def check(obj: dict[str, Any]) -> tuple[dict[str, Any], schema.Outcome]:
    out = schema.Outcome()
    return schema.walk(obj, SCHEMA, out), out


def test_schema_prunes_defaults_and_validates() -> None:
    obj, out = check(
        {
            "apiVersion": "x/v1",
            "kind": "K",
            "metadata": {"name": "n"},
            "spec": {"size": 3, "extra": 1, "free": {"any": {"thing": 1}}, "port": "http"},
        }
    )
    assert out.errors == [] and out.unknown == ["spec.extra"]
    assert obj["spec"] == {"size": 3, "mode": "a", "free": {"any": {"thing": 1}}, "port": "http"}
    _, out = check({"spec": {"size": 0, "mode": "c", "cidrs": ["10.0.0.0/8", "x", "y"]}})
    text = [str(e) for e in out.errors]
    assert (
        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
        in (text)
    )
    assert 'spec.mode: Unsupported value: "c": supported values: "a", "b"' in text
    assert any(t.startswith("spec.cidrs: Too many") for t in text)
    assert any("must be of type cidr" in t for t in text)
    _, out = check({"spec": {"size": "3"}})
    assert 'spec.size in body must be of type integer: "string"' in str(out.errors[0])
    _, out = check({"spec": {}})
    assert str(out.errors[0]) == "spec.size: Required value"


def test_cel_rules_with_old_self_and_k8s_functions() -> None:
    s = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {
                        "rule": "self.addresses.all(a, isCIDR(a) && cidr(a).prefixLength() >= 8)",
                        "message": "addresses must be CIDRs of /8 or longer",
                    },
                    {"rule": "self.name == oldSelf.name", "message": "name is immutable"},
                ],
                "properties": {
                    "addresses": {"type": "array", "items": {"type": "string"}},
                    "name": {"type": "string"},
                },
            }
        },
    }
    cel = CelValidator()
    assert cel.validate(s, {"spec": {"addresses": ["10.0.0.0/8"], "name": "a"}}, None) == []
    errs = cel.validate(s, {"spec": {"addresses": ["10.0.0.0/4"], "name": "a"}}, None)
    assert [str(e) for e in errs] == [
        'spec: Invalid value: "object": addresses must be CIDRs of /8 or longer'
    ]
    errs = cel.validate(
        s, {"spec": {"addresses": [], "name": "b"}}, {"spec": {"addresses": [], "name": "a"}}
    )
    assert [e.detail for e in errs] == ["name is immutable"]


def test_printer_columns_and_ages() -> None:
    assert table.human_duration(5) == "5s"
    assert table.human_duration(150) == "2m30s"
    assert table.human_duration(3 * 3600 + 60) == "3h1m"
    assert table.human_duration(3 * 86400) == "3d"
    obj = {
        "status": {
            "conditions": [{"type": "A", "status": "x"}, {"type": "Ready", "status": "True"}]
        },
        "spec": {"list": [{"n": 1}, {"n": 2}]},
    }
    assert table.jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert table.jsonpath(obj, ".spec.list[1].n") == [2]
    assert table.jsonpath(obj, ".spec.missing") == []


def test_rbac_rules() -> None:
    rule = {
        "apiGroups": [""],
        "resources": ["services", "services/status"],
        "verbs": ["get", "patch"],
        "resourceNames": ["web"],
    }
    a = Attributes("patch", "", "services", "status", "default", "web")
    assert _rule_allows(rule, a)
    assert not _rule_allows(rule, Attributes("delete", "", "services", "", "default", "web"))
    assert not _rule_allows(rule, Attributes("get", "", "services", "", "default", "other"))
    assert not _rule_allows(rule, Attributes("get", "apps", "services", "", "default", "web"))
    star = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    assert _rule_allows(star, a)


def test_events_api_and_core_events_convert_both_ways() -> None:
    new = next(r for r in builtin_resources() if r.group == "events.k8s.io")
    assert new.to_storage is not None and new.from_storage is not None
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e", "namespace": "d"},
        "regarding": {"kind": "Service", "name": "web"},
        "note": "assigned 192.0.2.1",
        "reason": "IPAllocated",
        "deprecatedCount": 2,
    }
    stored = new.to_storage(event)
    assert stored == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e", "namespace": "d"},
        "involvedObject": {"kind": "Service", "name": "web"},
        "message": "assigned 192.0.2.1",
        "reason": "IPAllocated",
        "count": 2,
    }
    assert new.from_storage(stored) == event
