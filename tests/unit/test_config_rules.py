"""Every rule, table-driven: at least one valid and one invalid case each (docs/configuration.md
lists the same rules). A valid case must parse with no error at all; an invalid case must report
the rule, naming the object and the field."""

from __future__ import annotations

from typing import Any

import pytest

from metallb_py.config import RULES, parse
from metallb_py.config.deletion import deletion_problems
from tests.lab.config_objects import (
    NS,
    bfd,
    bgpadv,
    community,
    legacy_pool,
    obj,
    peer,
    pool,
    secret,
)

Case = tuple[str, list[dict[str, Any]], str | None]
# (rule, resources, expected field path of the problem or None for a valid case)

RACK_A = [{"matchLabels": {"rack": "a"}}]
RACK_B = [{"matchLabels": {"rack": "b"}}]

CASES: list[Case] = [
    ("object-shape", [pool("p", "192.0.2.0/24")], None),
    (
        "object-shape",
        [{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {}}],
        "-",
    ),
    ("unknown-kind", [pool("p", "192.0.2.0/24")], None),
    ("unknown-kind", [obj("IPAdressPool", "p", {"addresses": ["192.0.2.0/24"]})], "kind"),
    ("api-version", [peer("p", version="v1beta1")], None),
    (
        "api-version",
        [obj("IPAddressPool", "p", {"addresses": ["192.0.2.0/24"]}, version="v1beta2")],
        "apiVersion",
    ),
    ("namespace", [pool("p", "192.0.2.0/24")], None),
    (
        "namespace",
        [{**pool("p", "192.0.2.0/24"), "metadata": {"name": "p", "namespace": "default"}}],
        "metadata.namespace",
    ),
    ("duplicate-object", [pool("p", "192.0.2.0/24"), pool("q", "198.51.100.0/24")], None),
    (
        "duplicate-object",
        [pool("p", "192.0.2.0/24"), pool("p", "198.51.100.0/24")],
        "metadata.name",
    ),
    ("schema", [pool("p", "192.0.2.0/24", autoAssign=False)], None),
    ("schema", [pool("p", "192.0.2.0/24", autoAssign="no")], "spec.autoAssign"),
    ("schema", [pool("p", "192.0.2.0/24", autoassign=False)], "spec.autoassign"),
    ("schema", [obj("IPAddressPool", "p", {})], "spec.addresses"),
    (
        "schema",
        [obj("Community", "c", {"communities": [{"name": "x"}]})],
        "spec.communities[0].value",
    ),
    ("aggregation-length", [bgpadv("a", aggregationLength=33)], "spec.aggregationLength"),
    (
        "legacy-protocol",
        [obj("AddressPool", "p", {"addresses": ["192.0.2.0/24"]})],
        "spec.protocol",
    ),
    ("legacy-protocol", [legacy_pool("p", "ospf", "192.0.2.0/24")], "spec.protocol"),
    # pools
    (
        "pool-address",
        [
            pool(
                "p",
                "192.0.2.0/24",
                "2001:db8::/120",
                "198.51.100.1-198.51.100.9",
                "203.0.113.7",
                "2001:db8:1::5/128",
            )
        ],
        None,
    ),
    ("pool-address", [pool("p", "192.0.2.0/33")], "spec.addresses[0]"),
    ("pool-address", [pool("p", "192.0.2.9-192.0.2.1")], "spec.addresses[0]"),
    ("pool-address", [pool("p", "192.0.2.1-2001:db8::1")], "spec.addresses[0]"),
    ("pool-address", [pool("p", "banana")], "spec.addresses[0]"),
    (
        "pool-duplicate-name",
        [pool("p", "192.0.2.0/24"), legacy_pool("q", "layer2", "198.51.100.0/24")],
        None,
    ),
    (
        "pool-duplicate-name",
        [pool("p", "192.0.2.0/24"), legacy_pool("p", "layer2", "198.51.100.0/24")],
        "metadata.name",
    ),
    ("pool-overlap", [pool("a", "192.0.2.0/25"), pool("b", "192.0.2.128/25")], None),
    (
        "pool-overlap",
        [pool("a", "192.0.2.0/24"), pool("b", "192.0.2.128-192.0.2.130")],
        "spec.addresses[0]",
    ),
    ("pool-overlap", [pool("a", "192.0.2.0/24", "192.0.2.7")], "spec.addresses[1]"),
    (
        "pool-overlap",
        [pool("a", "192.0.2.0/24"), legacy_pool("b", "bgp", "192.0.2.5/32")],
        "spec.addresses[0]",
    ),
    (
        "pool-overlap",
        [pool("a", "2001:db8::/64"), pool("b", "2001:db8::ff-2001:db8::1:0")],
        "spec.addresses[0]",
    ),
    (
        "pool-namespaces",
        [pool("p", "192.0.2.0/24", serviceAllocation={"priority": 1, "namespaces": ["a", "b"]})],
        None,
    ),
    (
        "pool-namespaces",
        [pool("p", "192.0.2.0/24", serviceAllocation={"namespaces": ["a", "a"]})],
        "spec.serviceAllocation.namespaces[1]",
    ),
    (
        "pool-namespaces",
        [pool("p", "192.0.2.0/24", serviceAllocation={"namespaces": ["Bad_NS"]})],
        "spec.serviceAllocation.namespaces[0]",
    ),
    (
        "selector",
        [
            pool(
                "p",
                "192.0.2.0/24",
                serviceAllocation={
                    "serviceSelectors": [
                        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]}
                    ]
                },
            )
        ],
        None,
    ),
    (
        "selector",
        [
            pool(
                "p",
                "192.0.2.0/24",
                serviceAllocation={
                    "serviceSelectors": [
                        {"matchLabels": {"app": "x"}},
                        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]},
                    ]
                },
            )
        ],
        "spec.serviceAllocation.serviceSelectors[1]",
    ),
    (
        "selector",
        [
            pool(
                "p",
                "192.0.2.0/24",
                serviceAllocation={
                    "namespaceSelectors": [
                        {
                            "matchExpressions": [
                                {"key": "app", "operator": "Equals", "values": ["x"]}
                            ]
                        }
                    ]
                },
            )
        ],
        "spec.serviceAllocation.namespaceSelectors[0].matchExpressions[0].operator",
    ),
    (
        "selector",
        [peer("p", nodeSelectors=[{"matchExpressions": [{"key": "rack", "operator": "In"}]}])],
        "spec.nodeSelectors[0].matchExpressions[0].values",
    ),
    (
        "selector",
        [peer("p", nodeSelectors=[{"matchLabels": {"bad key!": "x"}}])],
        "spec.nodeSelectors[0].matchLabels[bad key!]",
    ),
    (
        "legacy-protocol",
        [legacy_pool("p", "bgp", "192.0.2.0/24", bgpAdvertisements=[{"aggregationLength": 32}])],
        None,
    ),
    (
        "legacy-protocol",
        [legacy_pool("p", "layer2", "192.0.2.0/24", bgpAdvertisements=[{"aggregationLength": 32}])],
        "spec.bgpAdvertisements",
    ),
    (
        "legacy-duplicate-advertisement",
        [
            legacy_pool(
                "p",
                "bgp",
                "192.0.2.0/24",
                bgpAdvertisements=[{"localPref": 1}, {"localPref": 1, "aggregationLength": 30}],
            )
        ],
        None,
    ),
    (
        "legacy-duplicate-advertisement",
        [
            legacy_pool(
                "p", "bgp", "192.0.2.0/24", bgpAdvertisements=[{"localPref": 1}, {"localPref": 1}]
            )
        ],
        "spec.bgpAdvertisements[1]",
    ),
    # peers
    ("peer-asn", [peer("p", peerASN=None, dynamicASN="external")], None),
    ("peer-asn", [peer("p", myASN=0)], "spec.myASN"),
    ("peer-asn", [peer("p", peerASN=None)], "spec.peerASN"),
    ("peer-asn", [peer("p", dynamicASN="internal")], "spec.dynamicASN"),
    ("peer-address", [peer("p", peerAddress=None, interface="eth0")], None),
    ("peer-address", [peer("p", peerAddress="192.0.2.300")], "spec.peerAddress"),
    ("peer-address", [peer("p", interface="eth0")], "spec.interface"),
    ("peer-address", [peer("p", peerAddress=None)], "spec.peerAddress"),
    ("peer-address", [peer("p", sourceAddress="2001:db8::1")], "spec.sourceAddress"),
    ("peer-router-id", [peer("p", routerID="192.0.2.10")], None),
    ("peer-router-id", [peer("p", routerID="2001:db8::1")], "spec.routerID"),
    (
        "peer-hold-time",
        [peer("p", holdTime="0s"), peer("q", peerAddress="192.0.2.2", holdTime="3s")],
        None,
    ),
    ("peer-hold-time", [peer("p", holdTime="2s")], "spec.holdTime"),
    ("peer-hold-time", [peer("p", holdTime="ninety")], "spec.holdTime"),
    ("peer-keepalive", [peer("p", holdTime="90s", keepaliveTime="90s")], None),
    ("peer-keepalive", [peer("p", holdTime="30s", keepaliveTime="31s")], "spec.keepaliveTime"),
    (
        "peer-v1beta1-keepalive",
        [peer("p", version="v1beta1", holdTime="90s", keepaliveTime="30s")],
        None,
    ),
    (
        "peer-v1beta1-keepalive",
        [peer("p", version="v1beta1", keepaliveTime="30s")],
        "spec.keepaliveTime",
    ),
    (
        "peer-v1beta1-keepalive",
        [peer("p", version="v1beta1", holdTime="90s", keepaliveTime="90s")],
        "spec.keepaliveTime",
    ),
    ("peer-connect-time", [peer("p", connectTime="10s")], None),
    ("peer-connect-time", [peer("p", connectTime="1500ms")], "spec.connectTime"),
    ("peer-connect-time", [peer("p", connectTime="70000s")], "spec.connectTime"),
    ("peer-ebgp-multihop", [peer("p", ebgpMultiHop=True)], None),
    ("peer-ebgp-multihop", [peer("p", peerASN=64500, ebgpMultiHop=True)], "spec.ebgpMultiHop"),
    (
        "peer-ebgp-multihop",
        [peer("p", peerASN=None, dynamicASN="internal", ebgpMultiHop=True)],
        "spec.ebgpMultiHop",
    ),
    ("peer-password", [peer("p", passwordSecret={"name": "s"}), secret("s")], None),
    (
        "peer-password",
        [peer("p", password="x", passwordSecret={"name": "s"}), secret("s")],
        "spec.passwordSecret",
    ),
    (
        "peer-password",
        [peer("p", passwordSecret={"name": "s"}), secret("s", stype="Opaque")],
        "spec.passwordSecret.name",
    ),
    (
        "peer-password",
        [peer("p", passwordSecret={"name": "s"}), secret("s", password=None)],
        "spec.passwordSecret.name",
    ),
    ("peer-password", [peer("p", passwordSecret={"name": "missing"})], "spec.passwordSecret.name"),
    ("peer-bfd-profile", [peer("p", bfdProfile="fast"), bfd("fast")], None),
    ("peer-bfd-profile", [peer("p", bfdProfile="fast")], "spec.bfdProfile"),
    (
        "peer-my-asn",
        [
            peer("b", myASN=64600, nodeSelectors=RACK_A),
            peer("c", myASN=64500, peerAddress="192.0.2.3", nodeSelectors=RACK_B),
        ],
        None,
    ),
    (
        "peer-my-asn",
        [peer("a", myASN=64500), peer("b", myASN=64600, peerAddress="192.0.2.2")],
        "spec.myASN",
    ),
    (
        "peer-my-asn",
        [
            peer("a", myASN=64500, nodeSelectors=RACK_A),
            peer(
                "b",
                myASN=64600,
                peerAddress="192.0.2.2",
                nodeSelectors=[{"matchExpressions": [{"key": "rack", "operator": "Exists"}]}],
            ),
        ],
        "spec.myASN",
    ),
    (
        "peer-duplicate",
        [peer("tor-a", nodeSelectors=RACK_A), peer("tor-b", nodeSelectors=RACK_B)],
        None,
    ),
    ("peer-duplicate", [peer("a"), peer("b", peerASN=64999)], "spec.peerAddress"),
    ("peer-duplicate", [peer("a", nodeSelectors=RACK_A), peer("b")], "spec.peerAddress"),
    # bfd
    (
        "bfd-range",
        [
            bfd(
                "b",
                receiveInterval=10,
                transmitInterval=60000,
                detectMultiplier=2,
                echoInterval=10,
                minimumTtl=254,
            )
        ],
        None,
    ),
    ("bfd-range", [bfd("b", receiveInterval=9)], "spec.receiveInterval"),
    ("bfd-range", [bfd("b", transmitInterval=60001)], "spec.transmitInterval"),
    ("bfd-range", [bfd("b", detectMultiplier=1)], "spec.detectMultiplier"),
    ("bfd-range", [bfd("b", detectMultiplier=256)], "spec.detectMultiplier"),
    ("bfd-range", [bfd("b", minimumTtl=0)], "spec.minimumTtl"),
    ("bfd-range", [bfd("b", minimumTtl=255)], "spec.minimumTtl"),
    (
        "bfd-echo-ipv6",
        [
            pool("v6", "2001:db8::/120"),
            bfd("echo", echoMode=True),
            peer("p", bfdProfile="echo"),
            bgpadv("a", ipAddressPools=["v6"], peers=["other"]),
            peer("other", peerAddress="192.0.2.9"),
        ],
        None,
    ),
    (
        "bfd-echo-ipv6",
        [
            pool("v6", "2001:db8::/120"),
            bfd("echo", echoMode=True),
            peer("p", bfdProfile="echo"),
            bgpadv("a", ipAddressPools=["v6"]),
        ],
        "spec.peers",
    ),
    # communities
    (
        "community-syntax",
        [community("c", noexport="65535:65281", big="large:4200000000:1:2")],
        None,
    ),
    ("community-syntax", [community("c", bad="65536:1")], "spec.communities[0].value"),
    ("community-syntax", [community("c", bad="big:1:2:3")], "spec.communities[0].value"),
    ("community-syntax", [bgpadv("a", communities=["1:2:3"])], "spec.communities[0]"),
    (
        "community-syntax",
        [bgpadv("a", communities=["large:1:2:4294967296"])],
        "spec.communities[0]",
    ),
    ("community-duplicate-alias", [community("c1", x="1:1"), community("c2", y="1:1")], None),
    (
        "community-duplicate-alias",
        [community("c1", x="1:1"), community("c2", x="1:2")],
        "spec.communities[0].name",
    ),
    (
        "community-alias",
        [community("c", noexport="65535:65281"), bgpadv("a", communities=["noexport"])],
        None,
    ),
    ("community-alias", [bgpadv("a", communities=["noexport"])], "spec.communities[0]"),
    # advertisements
    ("advertisement-duplicate", [bgpadv("a", peers=["x", "y"], ipAddressPools=["p", "q"])], None),
    ("advertisement-duplicate", [bgpadv("a", peers=["x", "x"])], "spec.peers[1]"),
    ("advertisement-duplicate", [bgpadv("a", communities=["1:1", "1:1"])], "spec.communities[1]"),
    (
        "advertisement-duplicate",
        [obj("L2Advertisement", "a", {"ipAddressPools": ["p", "p"]})],
        "spec.ipAddressPools[1]",
    ),
    (
        "advertisement-duplicate",
        [obj("L2Advertisement", "a", {"interfaces": ["eth0", "eth0"]})],
        "spec.interfaces[1]",
    ),
    (
        "aggregation-length",
        [
            pool("p", "192.0.2.0/24", "2001:db8::/64"),
            bgpadv("a", aggregationLength=24, aggregationLengthV6=64),
        ],
        None,
    ),
    (
        "aggregation-length",
        [pool("p", "192.0.2.0/24"), bgpadv("a", aggregationLength=16)],
        "spec.aggregationLength",
    ),
    (
        "aggregation-length",
        [pool("p", "192.0.2.0/26"), bgpadv("a", aggregationLength=24)],
        "spec.aggregationLength",
    ),
    (
        "aggregation-length",
        [pool("p", "2001:db8::/64"), bgpadv("a", aggregationLengthV6=48)],
        "spec.aggregationLengthV6",
    ),
    # IPv4 aggregation is not checked against IPv6 entries (MetalLB's legacy quirk fixed).
    (
        "aggregation-length",
        [legacy_pool("p", "bgp", "2001:db8::/120", bgpAdvertisements=[{"aggregationLength": 24}])],
        None,
    ),
    (
        "aggregation-length",
        [legacy_pool("p", "bgp", "192.0.2.0/26", bgpAdvertisements=[{"aggregationLength": 24}])],
        "spec.bgpAdvertisements",
    ),
    (
        "aggregation-service-selectors",
        [bgpadv("a", serviceSelectors=[{"matchLabels": {"a": "b"}}])],
        None,
    ),
    (
        "aggregation-service-selectors",
        [bgpadv("a", aggregationLength=24, serviceSelectors=[{"matchLabels": {"a": "b"}}])],
        "spec.serviceSelectors",
    ),
    (
        "local-preference",
        [pool("p", "192.0.2.0/24"), bgpadv("a", localPref=100), bgpadv("b", localPref=100)],
        None,
    ),
    (
        "local-preference",
        [
            pool("p", "192.0.2.0/24"),
            bgpadv("a", localPref=100, peers=["x"]),
            bgpadv("b", localPref=200, peers=["y"]),
        ],
        None,
    ),
    (
        "local-preference",
        [
            pool("p", "192.0.2.0/24"),
            bgpadv("a", localPref=100, nodeSelectors=RACK_A),
            bgpadv("b", localPref=200, nodeSelectors=RACK_B),
        ],
        None,
    ),
    (
        "local-preference",
        [
            pool("p", "192.0.2.0/24"),
            bgpadv("a", localPref=100, aggregationLength=24),
            bgpadv("b", localPref=200),
        ],
        None,
    ),
    (
        "local-preference",
        [pool("p", "192.0.2.0/24"), bgpadv("a", localPref=100), bgpadv("b", localPref=200)],
        "spec.localPref",
    ),
    (
        "local-preference",
        [
            pool("p", "192.0.2.0/24"),
            bgpadv("a", localPref=100, peers=["x"]),
            bgpadv("b", localPref=200),
        ],
        "spec.localPref",
    ),
    # operator resource
    (
        "metallb-resource",
        [
            obj(
                "MetalLB",
                "metallb",
                {"bgpBackend": "frr-k8s", "frrk8sConfig": {"alwaysBlock": ["192.0.2.0/24"]}},
            )
        ],
        None,
    ),
    ("metallb-resource", [obj("MetalLB", "metallb", {"bgpBackend": "bird"})], "spec.bgpBackend"),
    (
        "metallb-resource",
        [obj("MetalLB", "metallb", {"frrk8sConfig": {"alwaysBlock": ["nope"]}})],
        "spec.frrk8sConfig.alwaysBlock[0]",
    ),
    (
        "metallb-resource",
        [
            obj(
                "MetalLB",
                "metallb",
                {
                    "speakerTolerations": [
                        {"key": "k", "tolerationSeconds": 5, "effect": "NoSchedule"}
                    ]
                },
            )
        ],
        "spec.speakerTolerations[0]",
    ),
]

WARNING_RULES = {"deprecated", "pool-in-use", "peer-in-use", "advertisement-reference"}
DELETE_RULES = {"bfd-profile-in-use", "community-in-use", "pool-in-use", "peer-in-use"}


def _ids(case: Case) -> str:
    return f"{case[0]}-{'valid' if case[2] is None else 'invalid'}"


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_rule(case: Case) -> None:
    rule, resources, path = case
    _, problems = parse(resources)
    errors = [p for p in problems if p.is_error]
    if path is None:
        assert errors == [], "\n".join(p.line() for p in errors)
        return
    hits = [p for p in errors if p.rule == rule]
    assert hits, f"expected rule {rule}; got:\n" + "\n".join(p.line() for p in problems)
    assert path in {p.path for p in hits}, "\n".join(p.line() for p in hits)
    for p in hits:
        assert p.ref.namespace in (NS, "default") and p.ref.kind and p.ref.name
        assert p.message


def test_every_rule_has_a_valid_and_an_invalid_case() -> None:
    covered_valid = {c[0] for c in CASES if c[2] is None}
    covered_invalid = {c[0] for c in CASES if c[2] is not None}
    special = WARNING_RULES | DELETE_RULES
    missing = [
        r for r in RULES if r not in special and not (r in covered_valid and r in covered_invalid)
    ]
    assert missing == []


# ---- warnings ----------------------------------------------------------------------------------


def _warnings(resources: list[dict[str, Any]]) -> list[str]:
    _, problems = parse(resources)
    assert [p for p in problems if p.is_error] == []
    return [f"{p.rule}:{p.path}" for p in problems if p.severity == "warning"]


def test_deprecated_warnings() -> None:
    assert _warnings([pool("p", "192.0.2.0/24")]) == []
    legacy = legacy_pool("p", "layer2", "192.0.2.0/24", version="v1alpha1")
    assert "deprecated:apiVersion" in _warnings([legacy])
    assert "deprecated:apiVersion" in _warnings([peer("p", version="v1beta1")])
    assert "deprecated:spec.disableMP" in _warnings([peer("p", disableMP=True)])
    annotated = pool("p", "192.0.2.0/24")
    annotated["metadata"]["annotations"] = {"metallb.universe.tf/foo": "x"}
    assert "deprecated:metadata.annotations[metallb.universe.tf/foo]" in _warnings([annotated])


def test_disable_mp_is_no_bypass() -> None:
    """MetalLB's webhook skipped every check for disableMP peers; here they are still validated."""
    _, problems = parse([peer("p", disableMP=True, holdTime="1s")])
    assert any(p.rule == "peer-hold-time" and p.is_error for p in problems)


def test_advertisement_reference_warnings() -> None:
    assert _warnings([pool("p", "192.0.2.0/24"), bgpadv("a", ipAddressPools=["p"])]) == []
    assert "advertisement-reference:spec.ipAddressPools[0]" in _warnings(
        [bgpadv("a", ipAddressPools=["nope"])]
    )
    assert "advertisement-reference:spec.peers[0]" in _warnings([bgpadv("a", peers=["nope"])])


def test_lenient_references_warn_instead_of_failing() -> None:
    resources = [
        peer("p", bfdProfile="later", passwordSecret={"name": "later"}),
        bgpadv("a", communities=["later"]),
    ]
    _, strict = parse(resources)
    assert {p.rule for p in strict if p.is_error} == {
        "peer-bfd-profile",
        "peer-password",
        "community-alias",
    }
    config, lenient = parse(resources, lenient_references=True)
    assert [p for p in lenient if p.is_error] == []
    assert {p.rule for p in lenient} >= {"peer-bfd-profile", "peer-password", "community-alias"}
    assert config.peer("p") is not None


# ---- deletes -----------------------------------------------------------------------------------


def _service(name: str, ip: str, pool_name: str | None = None) -> dict[str, Any]:
    ann = {"metallb.io/ip-allocated-from-pool": pool_name} if pool_name else {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": ann},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }


@pytest.mark.parametrize(
    ("victim", "others", "rule", "severity"),
    [
        (bfd("fast"), [peer("p")], None, None),
        (bfd("fast"), [peer("p", bfdProfile="fast")], "bfd-profile-in-use", "error"),
        (community("c", x="1:1"), [bgpadv("a", communities=["y"])], None, None),
        (community("c", x="1:1"), [bgpadv("a", communities=["x"])], "community-in-use", "error"),
        (pool("p", "192.0.2.0/24"), [_service("s", "198.51.100.1")], None, None),
        (pool("p", "192.0.2.0/24"), [_service("s", "192.0.2.7")], "pool-in-use", "warning"),
        (pool("p", "192.0.2.0/24"), [_service("s", "198.51.100.1", "p")], "pool-in-use", "warning"),
        (
            legacy_pool("p", "bgp", "192.0.2.0/24"),
            [_service("s", "192.0.2.7")],
            "pool-in-use",
            "warning",
        ),
        (peer("p"), [bgpadv("a")], None, None),
        (peer("p"), [bgpadv("a", peers=["p"])], "peer-in-use", "warning"),
    ],
)
def test_delete_rules(
    victim: dict[str, Any], others: list[dict[str, Any]], rule: str | None, severity: str | None
) -> None:
    problems = deletion_problems(victim, others)
    if rule is None:
        assert problems == []
    else:
        assert [(p.rule, p.severity) for p in problems] == [(rule, severity)]
        assert victim["metadata"]["name"] in problems[0].message
