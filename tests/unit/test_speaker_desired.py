"""The speaker's pure function: every reason string and every option of MetalLB's speaker."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.packing import RouteAttrs
from l2 import election
from metallb_py.config import Config, parse
from metallb_py.speaker import desired as d
from metallb_py.speaker.desired import Desired, Inputs, Options, desired_state
from tests.lab.config_objects import bgpadv, l2adv, obj, peer, pool

NODES = ("node-a", "node-b", "node-c")


def config(*objs: dict[str, Any]) -> Config:
    cfg, problems = parse(list(objs))
    assert not [p for p in problems if p.is_error], [p.line() for p in problems]
    return cfg


def node(
    name: str,
    labels: dict[str, str] | None = None,
    *,
    unavailable: bool = False,
    ready: bool = True,
) -> dict[str, Any]:
    conds = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unavailable:
        conds.append({"type": "NetworkUnavailable", "status": "True"})
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "status": {"conditions": conds},
    }


def svc(
    name: str,
    *ips: str,
    local: bool = False,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    type_: str = "LoadBalancer",
    lb_class: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "externalTrafficPolicy": "Local" if local else "Cluster"}
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    return {
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def eps(*nodes: str, ready: bool | None = True, serving: bool | None = None) -> list[Any]:
    endpoints = []
    for i, n in enumerate(nodes):
        cond: dict[str, Any] = {}
        if ready is not None:
            cond["ready"] = ready
        if serving is not None:
            cond["serving"] = serving
        endpoints.append({"addresses": [f"10.0.0.{i + 1}"], "nodeName": n, "conditions": cond})
    return [{"kind": "EndpointSlice", "endpoints": endpoints}]


def run(
    cfg: Config | None,
    services: list[dict[str, Any]],
    endpoints: dict[str, list[Any]] | None = None,
    *,
    me: str = "node-a",
    nodes: list[dict[str, Any]] | None = None,
    members: frozenset[str] | None = None,
    options: Options = Options(),
    previous: Desired | None = None,
    local_interfaces: frozenset[str] | None = None,
    memo: d.Memo | None = None,
) -> Desired:
    nodes = nodes if nodes is not None else [node(n) for n in NODES]
    return desired_state(
        Inputs(
            config=cfg,
            services={d.service_key(s): s for s in services},
            endpoint_slices={f"default/{k}": v for k, v in (endpoints or {}).items()},
            nodes={n["metadata"]["name"]: n for n in nodes},
            node=me,
            members=members,
            options=options,
            previous=previous,
            local_interfaces=local_interfaces,
            memo=memo,
        )
    )


L2 = config(pool("l2", "198.51.100.200-198.51.100.250"), l2adv("all"))
BGP = config(
    pool("bgp", "203.0.113.0/24"),
    peer("r1", peerAddress="198.51.100.1", peerASN=64501),
    bgpadv("all"),
)
EVERYWHERE = eps("node-a", "node-b", "node-c")


def owner_of(ip: str, nodes: tuple[str, ...] = NODES) -> str:
    w = election.winner(nodes, ip)
    assert w is not None
    return w


# ---- the pipeline before the protocols ------------------------------------------------------


def test_no_config_means_nothing_yet() -> None:
    out = run(None, [svc("a", "198.51.100.200")], {"a": EVERYWHERE})
    assert not out.config_loaded and not out.services


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        (svc("a"), d.NO_IP_ALLOCATED),
        (svc("a", "198.51.100.200", type_="ClusterIP"), d.NOT_LOAD_BALANCER),
        (svc("a", "198.51.100.200", lb_class="other"), d.NOT_LOAD_BALANCER),
        (svc("a", "not-an-ip"), d.INVALID_IP),
        (svc("a", "192.0.2.77"), d.IP_NOT_ALLOWED),
    ],
)
def test_withdraw_reasons_before_the_protocols(service: dict[str, Any], reason: str) -> None:
    out = run(L2, [service], {"a": EVERYWHERE})
    sd = out.services["default/a"]
    assert sd.bgp == sd.layer2 == d.Decision.withdraw(reason)
    assert not out.l2 and not out.routes


def test_lb_class_option_selects_the_class() -> None:
    out = run(
        L2,
        [svc("a", "198.51.100.200", lb_class="mine")],
        {"a": EVERYWHERE},
        me=owner_of("198.51.100.200"),
        options=Options(lb_class="mine"),
    )
    assert out.services["default/a"].layer2.announce


def test_avoid_buggy_ips_makes_a_dot_zero_address_not_allowed() -> None:
    cfg = config(pool("p", "198.51.100.0/24", avoidBuggyIPs=True), l2adv("all"))
    out = run(cfg, [svc("a", "198.51.100.0")], {"a": EVERYWHERE})
    assert out.services["default/a"].layer2.reason == d.IP_NOT_ALLOWED


# ---- layer 2 ----------------------------------------------------------------------------------


def test_layer2_exactly_the_elected_node_announces() -> None:
    ip = "198.51.100.200"
    winner = owner_of(ip)
    announcing = []
    for me in NODES:
        out = run(L2, [svc("a", ip)], {"a": EVERYWHERE}, me=me)
        sd = out.services["default/a"]
        assert sd.l2_owner == winner
        assert sd.bgp.reason == d.NOT_OWNER  # no BGP advertisement for this pool
        if sd.layer2.announce:
            announcing.append(me)
            assert out.l2 == {ip: None}
        else:
            assert sd.layer2.reason == d.NOT_OWNER and not out.l2
    assert announcing == [winner]


def test_layer2_election_matches_metallb_vectors() -> None:
    # TestSortL2Candidates: nodes a,b,c with 10.0.0.1 -> node-b first.
    assert election.rank(["node-a", "node-b", "node-c"], "10.0.0.1")[0] == "node-b"
    cfg = config(pool("p", "10.0.0.0/24"), l2adv("all"))
    out = run(cfg, [svc("a", "10.0.0.1")], {"a": EVERYWHERE}, me="node-b")
    assert out.services["default/a"].layer2.announce


def test_layer2_no_endpoint_that_can_serve_is_not_owner() -> None:
    ip = "198.51.100.200"
    me = owner_of(ip)
    out = run(L2, [svc("a", ip)], {"a": eps("node-a", ready=False)}, me=me)
    assert out.services["default/a"].layer2.reason == d.NOT_OWNER
    # Not ready but serving (terminating) still counts; ready unset counts too.
    for slices in (eps("node-a", ready=False, serving=True), eps("node-b", ready=None)):
        out = run(L2, [svc("a", ip)], {"a": slices}, me=me)
        assert out.services["default/a"].layer2.announce


def test_layer2_no_matching_advertisement() -> None:
    cfg = config(
        pool("p", "198.51.100.200-198.51.100.250"),
        l2adv("only-b", nodeSelectors=[{"matchLabels": {"kubernetes.io/hostname": "node-b"}}]),
    )
    out = run(cfg, [svc("a", "198.51.100.200")], {"a": EVERYWHERE}, me="node-a")
    assert out.services["default/a"].layer2.reason == d.NO_MATCHING_ADVERTISEMENT
    out = run(cfg, [svc("a", "198.51.100.200")], {"a": EVERYWHERE}, me="node-b")
    assert out.services["default/a"].layer2.announce  # the only candidate


def test_layer2_service_selectors_and_shared_ip() -> None:
    cfg = config(
        pool("p", "198.51.100.200-198.51.100.250"),
        l2adv("web", serviceSelectors=[{"matchLabels": {"app": "web"}}]),
    )
    ip = "198.51.100.200"
    me = owner_of(ip)
    other = run(cfg, [svc("a", ip, labels={"app": "db"})], {"a": EVERYWHERE}, me=me)
    assert other.services["default/a"].layer2.reason == d.NO_MATCHING_ADVERTISEMENT
    web = run(cfg, [svc("a", ip, labels={"app": "web"})], {"a": EVERYWHERE}, me=me)
    assert web.services["default/a"].layer2.announce
    shared = svc("a", ip, labels={"app": "web"}, annotations={"metallb.io/allow-shared-ip": "k"})
    out = run(cfg, [shared], {"a": EVERYWHERE}, me=me)
    assert out.services["default/a"].layer2.reason == d.SHARED_IP_WITH_SERVICE_SELECTOR


@pytest.mark.parametrize(
    ("mine", "reason", "options"),
    [
        (node("node-a", unavailable=True), d.NODE_NETWORK_UNAVAILABLE, Options()),
        (node("node-a", {d.EXCLUDE_LABEL: ""}), d.NODE_EXCLUDED, Options()),
        (node("node-a", ready=False), d.NODE_NOT_READY, Options(l2_require_node_ready=True)),
    ],
)
def test_layer2_own_node_disqualified(mine: dict[str, Any], reason: str, options: Options) -> None:
    # An IP node-a would win among all three nodes.
    ip = next(f"198.51.100.{i}" for i in range(200, 250) if owner_of(f"198.51.100.{i}") == "node-a")
    nodes = [mine, node("node-b"), node("node-c")]
    out = run(L2, [svc("a", ip)], {"a": EVERYWHERE}, nodes=nodes, options=options)
    sd = out.services["default/a"]
    assert sd.layer2.reason == reason
    assert sd.l2_owner == owner_of(ip, ("node-b", "node-c"))
    # The other nodes agree on the new owner.
    out_b = run(
        L2, [svc("a", ip)], {"a": EVERYWHERE}, nodes=nodes, me=sd.l2_owner or "", options=options
    )
    assert out_b.services["default/a"].layer2.announce


def test_layer2_not_ready_is_ignored_by_default_and_ignore_exclude_lb() -> None:
    ip = next(f"198.51.100.{i}" for i in range(200, 250) if owner_of(f"198.51.100.{i}") == "node-a")
    nodes = [node("node-a", ready=False), node("node-b"), node("node-c")]
    assert (
        run(L2, [svc("a", ip)], {"a": EVERYWHERE}, nodes=nodes)
        .services["default/a"]
        .layer2.announce
    )
    nodes = [node("node-a", {d.EXCLUDE_LABEL: ""}), node("node-b"), node("node-c")]
    out = run(
        L2, [svc("a", ip)], {"a": EVERYWHERE}, nodes=nodes, options=Options(ignore_exclude_lb=True)
    )
    assert out.services["default/a"].layer2.announce


def test_layer2_candidates_are_live_members_when_membership_is_on() -> None:
    ip = next(f"198.51.100.{i}" for i in range(200, 250) if owner_of(f"198.51.100.{i}") == "node-a")
    members = frozenset({"node-b", "node-c"})
    out = run(L2, [svc("a", ip)], {"a": EVERYWHERE}, members=members)
    assert out.services["default/a"].layer2.reason == d.NOT_OWNER
    assert out.services["default/a"].l2_owner == owner_of(ip, ("node-b", "node-c"))


def test_layer2_deleted_node_is_never_a_candidate() -> None:
    ip = next(f"198.51.100.{i}" for i in range(200, 250) if owner_of(f"198.51.100.{i}") == "node-c")
    nodes = [node("node-a"), node("node-b")]  # node-c's Node object is gone
    out = run(L2, [svc("a", ip)], {"a": EVERYWHERE}, nodes=nodes)
    assert out.services["default/a"].l2_owner == owner_of(ip, ("node-a", "node-b"))


def test_layer2_local_policy_only_nodes_with_endpoints() -> None:
    ip = "198.51.100.200"
    for holder in NODES:
        out = run(L2, [svc("a", ip, local=True)], {"a": eps(holder)}, me=holder)
        assert out.services["default/a"].layer2.announce
        assert out.services["default/a"].l2_owner == holder
        others = [n for n in NODES if n != holder]
        out = run(L2, [svc("a", ip, local=True)], {"a": eps(holder)}, me=others[0])
        assert out.services["default/a"].layer2.reason == d.NO_LOCAL_ENDPOINTS


def test_layer2_preferred_node_selectors_win_over_the_hash() -> None:
    cfg = config(
        pool("p", "198.51.100.200-198.51.100.250"),
        l2adv(
            "pref",
            preferredNodeSelectors=[
                {"weight": 50, "preference": {"matchLabels": {"edge": "true"}}}
            ],
        ),
    )
    nodes = [node("node-a"), node("node-b"), node("node-c", {"edge": "true"})]
    for i in range(200, 210):
        ip = f"198.51.100.{i}"
        out = run(cfg, [svc("a", ip)], {"a": EVERYWHERE}, nodes=nodes, me="node-c")
        assert out.services["default/a"].layer2.announce


def test_layer2_shared_ip_with_different_local_endpoints_has_one_owner() -> None:
    """MetalLB #968/#558: services sharing an IP are elected over one candidate set."""
    shared = {"metallb.io/allow-shared-ip": "k"}
    found = 0
    for i in range(200, 251):
        ip = f"198.51.100.{i}"
        a = svc("a", ip, local=True, annotations=shared)
        b = svc("b", ip, local=True, annotations=shared)
        endpoints = {"a": eps("node-a", "node-b"), "b": eps("node-b", "node-c")}
        owners = set()
        for me in NODES:
            out = run(L2, [a, b], endpoints, me=me)
            if ip in out.l2:
                owners.add(me)
            assert out.services["default/a"].l2_owner == out.services["default/b"].l2_owner
        assert owners == {"node-b"}  # the only node both services have endpoints on
        # MetalLB elects per service: count the IPs where that would split across nodes.
        wa = election.winner(["node-a", "node-b"], ip)
        wb = election.winner(["node-b", "node-c"], ip)
        found += wa != wb
    assert found, "the vectors include IPs where per-service election would disagree"


def test_layer2_shared_ip_disjoint_endpoints_falls_back_to_union() -> None:
    shared = {"metallb.io/allow-shared-ip": "k"}
    ip = "198.51.100.201"
    a = svc("a", ip, local=True, annotations=shared)
    b = svc("b", ip, local=True, annotations=shared)
    endpoints = {"a": eps("node-a"), "b": eps("node-c")}
    owners = {me for me in NODES if ip in run(L2, [a, b], endpoints, me=me).l2}
    assert owners == {owner_of(ip, ("node-a", "node-c"))}


def test_layer2_interfaces_from_advertisements_and_missing_interfaces() -> None:
    cfg = config(
        pool("p", "198.51.100.200-198.51.100.250"),
        l2adv("eth", interfaces=["eth0"]),
        l2adv("eth1", interfaces=["eth1"]),
    )
    ip = "198.51.100.200"
    me = owner_of(ip)
    out = run(cfg, [svc("a", ip)], {"a": EVERYWHERE}, me=me, local_interfaces=frozenset({"eth0"}))
    sd = out.services["default/a"]
    assert out.l2 == {ip: frozenset({"eth0", "eth1"})}
    assert sd.l2_interfaces == ("eth0", "eth1") and not sd.interfaces_missing
    out = run(cfg, [svc("a", ip)], {"a": EVERYWHERE}, me=me, local_interfaces=frozenset({"lo"}))
    assert out.services["default/a"].interfaces_missing
    # One advertisement without interfaces means every interface.
    cfg2 = config(
        pool("p", "198.51.100.200-198.51.100.250"), l2adv("eth", interfaces=["eth0"]), l2adv("all")
    )
    out = run(cfg2, [svc("a", ip)], {"a": EVERYWHERE}, me=me)
    assert out.l2 == {ip: None} and out.services["default/a"].l2_interfaces == ()


def test_layer2_dual_stack_goes_to_one_node() -> None:
    cfg = config(pool("p", "198.51.100.200-198.51.100.250", "2001:db8:100::200/120"), l2adv("all"))
    ips = ("198.51.100.200", "2001:db8:100::200")
    me = owner_of(ips[0])
    out = run(cfg, [svc("a", *ips)], {"a": EVERYWHERE}, me=me)
    assert out.l2 == {ips[0]: None, ips[1]: None}


# ---- BGP -------------------------------------------------------------------------------------


def test_bgp_every_node_announces_with_cluster_policy() -> None:
    for me in NODES:
        out = run(BGP, [svc("a", "203.0.113.5")], {"a": eps("node-b")}, me=me)
        sd = out.services["default/a"]
        assert sd.bgp.announce and sd.layer2.reason == d.NO_MATCHING_ADVERTISEMENT
        assert out.routes == {"r1": {"203.0.113.5/32": RouteAttrs()}}
        assert sd.bgp_peers == ("r1",)
        assert set(out.peers) == {"r1"}


def test_bgp_no_endpoints_and_local_endpoints() -> None:
    out = run(BGP, [svc("a", "203.0.113.5")], {})
    assert out.services["default/a"].bgp.reason == d.NO_ENDPOINTS and not out.routes
    out = run(BGP, [svc("a", "203.0.113.5", local=True)], {"a": eps("node-b")}, me="node-a")
    assert out.services["default/a"].bgp.reason == d.NO_LOCAL_ENDPOINTS
    out = run(BGP, [svc("a", "203.0.113.5", local=True)], {"a": eps("node-b")}, me="node-b")
    assert out.services["default/a"].bgp.announce
    # An endpoint without addresses serves nothing.
    empty = [{"endpoints": [{"addresses": [], "nodeName": "node-a", "conditions": {}}]}]
    out = run(BGP, [svc("a", "203.0.113.5", local=True)], {"a": empty}, me="node-a")
    assert out.services["default/a"].bgp.reason == d.NO_LOCAL_ENDPOINTS


@pytest.mark.parametrize(
    ("mine", "reason", "options", "announce"),
    [
        (node("node-a", unavailable=True), d.NODE_NETWORK_UNAVAILABLE, Options(), False),
        (node("node-a", {d.EXCLUDE_LABEL: "true"}), d.NODE_EXCLUDED, Options(), False),
        (node("node-a", {d.EXCLUDE_LABEL: "true"}), "", Options(ignore_exclude_lb=True), True),
    ],
)
def test_bgp_node_state(
    mine: dict[str, Any], reason: str, options: Options, announce: bool
) -> None:
    out = run(BGP, [svc("a", "203.0.113.5")], {"a": EVERYWHERE}, nodes=[mine], options=options)
    assert out.services["default/a"].bgp == d.Decision(announce, reason)


def test_bgp_advertisement_node_selectors_not_owner() -> None:
    cfg = config(
        pool("bgp", "203.0.113.0/24"),
        peer("r1", peerAddress="198.51.100.1"),
        bgpadv("b", nodeSelectors=[{"matchLabels": {"kubernetes.io/hostname": "node-b"}}]),
    )
    out = run(cfg, [svc("a", "203.0.113.5")], {"a": EVERYWHERE}, me="node-a")
    assert out.services["default/a"].bgp.reason == d.NOT_OWNER
    out = run(cfg, [svc("a", "203.0.113.5")], {"a": EVERYWHERE}, me="node-b")
    assert out.services["default/a"].bgp.announce


def test_bgp_service_selectors() -> None:
    cfg = config(
        pool("bgp", "203.0.113.0/24"),
        peer("r1", peerAddress="198.51.100.1"),
        bgpadv("web", serviceSelectors=[{"matchLabels": {"app": "web"}}]),
    )
    out = run(cfg, [svc("a", "203.0.113.5", labels={"app": "db"})], {"a": EVERYWHERE})
    assert out.services["default/a"].bgp.reason == d.NO_MATCHING_ADVERTISEMENT
    out = run(cfg, [svc("a", "203.0.113.5", labels={"app": "web"})], {"a": EVERYWHERE})
    assert out.services["default/a"].bgp.announce


def test_bgp_pool_selectors_pick_the_advertisement() -> None:
    cfg = config(
        pool("gold", "203.0.113.0/25", labels={"tier": "gold"}),
        pool("plain", "203.0.113.128/25"),
        peer("r1", peerAddress="198.51.100.1"),
        bgpadv("g", ipAddressPoolSelectors=[{"matchLabels": {"tier": "gold"}}], localPref=200),
    )
    out = run(
        cfg,
        [svc("a", "203.0.113.5"), svc("b", "203.0.113.200")],
        {"a": EVERYWHERE, "b": EVERYWHERE},
    )
    assert out.services["default/a"].bgp.announce
    assert out.services["default/b"].bgp.reason == d.NOT_OWNER


def test_bgp_peer_node_selectors_choose_sessions() -> None:
    cfg = config(
        pool("bgp", "203.0.113.0/24"),
        peer("all", peerAddress="198.51.100.1"),
        peer(
            "rack1",
            peerAddress="198.51.100.2",
            nodeSelectors=[{"matchLabels": {"rack": "1"}}],
        ),
        bgpadv("x"),
    )
    nodes = [node("node-a", {"rack": "1"}), node("node-b")]
    a = run(cfg, [svc("s", "203.0.113.5")], {"s": EVERYWHERE}, nodes=nodes, me="node-a")
    b = run(cfg, [svc("s", "203.0.113.5")], {"s": EVERYWHERE}, nodes=nodes, me="node-b")
    assert set(a.peers) == {"all", "rack1"} and set(b.peers) == {"all"}
    assert set(a.routes) == {"all", "rack1"} and set(b.routes) == {"all"}


def test_bgp_aggregation_localpref_communities_aliases_and_peers() -> None:
    cfg = config(
        pool("bgp", "203.0.113.0/24", "2001:db8:200::/64"),
        peer("r1", peerAddress="198.51.100.1", peerASN=64500),
        peer("r2", peerAddress="198.51.100.2", peerASN=64500),
        obj("Community", "names", {"communities": [{"name": "edge", "value": "64500:300"}]}),
        bgpadv(
            "agg",
            aggregationLength=24,
            aggregationLengthV6=64,
            localPref=150,
            communities=["64500:100", "edge", "large:64500:1:2"],
            peers=["r1"],
        ),
        bgpadv("host", communities=["64500:200"]),
    )
    out = run(cfg, [svc("a", "203.0.113.5", "2001:db8:200::5")], {"a": EVERYWHERE})
    agg = RouteAttrs(((64500 << 16) | 100, (64500 << 16) | 300), ((64500, 1, 2),), 150).normalized()
    host = RouteAttrs(((64500 << 16) | 200,)).normalized()
    assert out.routes["r1"] == {
        "203.0.113.0/24": agg,
        "2001:db8:200::/64": agg,
        "203.0.113.5/32": host,
        "2001:db8:200::5/128": host,
    }
    assert out.routes["r2"] == {"203.0.113.5/32": host, "2001:db8:200::5/128": host}


def test_bgp_two_services_in_one_aggregate_share_the_prefix() -> None:
    cfg = config(
        pool("bgp", "203.0.113.0/24"),
        peer("r1", peerAddress="198.51.100.1"),
        bgpadv("agg", aggregationLength=28, communities=["64500:1"]),
    )
    both = run(
        cfg, [svc("a", "203.0.113.1"), svc("b", "203.0.113.2")], {"a": EVERYWHERE, "b": EVERYWHERE}
    )
    assert list(both.routes["r1"]) == ["203.0.113.0/28"]
    one = run(cfg, [svc("b", "203.0.113.2")], {"b": EVERYWHERE})
    assert list(one.routes["r1"]) == ["203.0.113.0/28"]
    none = run(cfg, [], {})
    assert not none.routes


def test_bgp_conflicting_local_prefs() -> None:
    # The parser rejects the second advertisement; a Config built by hand still gets a verdict.
    base = config(
        pool("bgp", "203.0.113.0/24"),
        peer("r1", peerAddress="198.51.100.1"),
        bgpadv("one", localPref=100),
    )
    two = dataclasses.replace(base.bgp_advertisements[0], name="two", local_pref=200)
    cfg = dataclasses.replace(base, bgp_advertisements=(*base.bgp_advertisements, two))
    out = run(cfg, [svc("a", "203.0.113.5")], {"a": EVERYWHERE})
    assert out.services["default/a"].bgp.reason == d.CONFLICTING_ADVERTISEMENTS


def test_bgp_status_peers_exclude_peers_without_prefixes() -> None:
    cfg = config(
        pool("bgp", "203.0.113.0/24"),
        peer("r1", peerAddress="198.51.100.1"),
        peer("r2", peerAddress="198.51.100.2"),
        bgpadv("only-r2", peers=["r2"]),
    )
    out = run(cfg, [svc("a", "203.0.113.5")], {"a": EVERYWHERE})
    assert out.services["default/a"].bgp_peers == ("r2",)
    assert set(out.peers) == {"r1", "r2"}


def test_both_protocols_for_one_pool() -> None:
    cfg = config(
        pool("p", "203.0.113.0/24"),
        peer("r1", peerAddress="198.51.100.1"),
        bgpadv("b"),
        l2adv("l"),
    )
    ip = "203.0.113.9"
    me = owner_of(ip)
    out = run(cfg, [svc("a", ip)], {"a": EVERYWHERE}, me=me)
    sd = out.services["default/a"]
    assert sd.bgp.announce and sd.layer2.announce


# ---- orphaned allocations ------------------------------------------------------------------


def test_orphaned_allocation_keeps_its_announcement_while_running() -> None:
    ip = "203.0.113.5"
    before = run(BGP, [svc("a", ip)], {"a": EVERYWHERE})
    assert before.services["default/a"].bgp.announce
    shrunk = config(
        pool("bgp", "203.0.113.128/25"),
        peer("r1", peerAddress="198.51.100.1", peerASN=64501),
        bgpadv("all"),
    )
    after = run(shrunk, [svc("a", ip)], {"a": EVERYWHERE}, previous=before)
    sd = after.services["default/a"]
    assert sd.orphaned and sd.bgp.announce
    assert after.routes == before.routes
    # A restarted speaker (no previous state) finds the pool by the allocation annotation.
    ann = {"metallb.io/ip-allocated-from-pool": "bgp"}
    restarted = run(shrunk, [svc("a", ip, annotations=ann)], {"a": EVERYWHERE})
    assert restarted.services["default/a"].orphaned
    assert restarted.services["default/a"].bgp.announce
    # The pool is gone altogether: withdrawn, as MetalLB does.
    gone = config(peer("r1", peerAddress="198.51.100.1"), pool("x", "192.0.2.0/24"), bgpadv("all"))
    out = run(gone, [svc("a", ip, annotations=ann)], {"a": EVERYWHERE})
    assert out.services["default/a"].bgp.reason == d.IP_NOT_ALLOWED
    # A different IP is a new allocation, not an orphan of the old one.
    out = run(shrunk, [svc("a", "203.0.113.6")], {"a": EVERYWHERE}, previous=before)
    assert out.services["default/a"].bgp.reason == d.IP_NOT_ALLOWED


# ---- memoization ---------------------------------------------------------------------------


def test_memo_gives_the_same_answer_as_a_fresh_computation() -> None:
    cfg = config(
        pool("p", "203.0.113.0/24"),
        peer("r1", peerAddress="198.51.100.1"),
        bgpadv("b"),
        l2adv("l"),
    )
    memo = d.Memo()
    services = [svc(f"s{i}", f"203.0.113.{i}", local=i % 2 == 0) for i in range(1, 20)]
    endpoints = {f"s{i}": eps(NODES[i % 3]) for i in range(1, 20)}

    def both(**kw: Any) -> Desired:
        with_memo = run(cfg, services, endpoints, previous=None, **kw, memo=memo)
        assert with_memo == run(cfg, services, endpoints, **kw)
        return with_memo

    both()
    assert memo.misses == 19
    both()
    assert memo.hits == 19  # nothing changed: every service reused
    services[3] = svc("s4", "203.0.113.44", local=True)  # a new object for one service
    endpoints["s5"] = eps("node-a", "node-b")
    both()
    assert memo.misses == 21
    both(nodes=[node("node-a", {d.EXCLUDE_LABEL: ""}), node("node-b"), node("node-c")])
    assert memo.misses == 40  # a node change recomputes everything
    del services[0]
    out = both(nodes=[node("node-a", {d.EXCLUDE_LABEL: ""}), node("node-b"), node("node-c")])
    assert "default/s1" not in out.services and "default/s1" not in memo.entries


_AGG = config(
    pool("bgp", "203.0.113.0/24"),
    peer("r1", peerAddress="198.51.100.1"),
    peer("r2", peerAddress="198.51.100.2"),
    bgpadv("agg", aggregationLength=30, communities=["64500:1"], localPref=150, peers=["r1"]),
    bgpadv(
        "host",
        communities=["64500:2"],
        serviceSelectors=[{"matchLabels": {"tier": "web"}}],
    ),
)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.integers(0, 15),
            st.tuples(st.integers(1, 12), st.booleans(), st.booleans()),
            max_size=16,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_incremental_route_merge_equals_a_fresh_merge(
    steps: list[dict[int, tuple[int, bool, bool]]],
) -> None:
    """Services appear, move, change labels, lose endpoints and vanish, several of them sharing
    one aggregate: the memo's patched merge always equals a merge from scratch."""
    memo = d.Memo()
    objects: dict[tuple[int, int, bool, bool], dict[str, Any]] = {}
    # A large stable population, so that most passes take the incremental path.
    stable = [svc(f"z{i}", f"203.0.113.{100 + i}") for i in range(150)]
    endpoints: dict[str, list[Any]] = {f"z{i}": EVERYWHERE for i in range(150)}
    for step in steps:
        services = list(stable)
        for i, (host, web, ready) in step.items():
            services.append(
                objects.setdefault(
                    (i, host, web, ready),
                    svc(f"s{i}", f"203.0.113.{host}", labels={"tier": "web"} if web else {}),
                )
            )
            endpoints[f"s{i}"] = EVERYWHERE if ready else []
        with_memo = run(_AGG, services, endpoints, memo=memo)
        fresh = run(_AGG, services, endpoints)
        assert with_memo.routes == fresh.routes
    assert memo.incremental_merges == len(steps) - 1


def service_steps(max_steps: int) -> st.SearchStrategy[list[dict[int, Any]]]:
    """Steps of Service changes: index -> None (deleted) or (IP octet, local ETP, labelled)."""
    return st.lists(
        st.dictionaries(
            st.integers(0, 15),
            st.one_of(st.none(), st.tuples(st.integers(1, 12), st.booleans(), st.booleans())),
            max_size=6,
        ),
        min_size=1,
        max_size=max_steps,
    )


@settings(max_examples=25, deadline=None)
@given(
    service_steps(10),
    st.booleans(),
)
def test_hinted_passes_equal_a_fresh_computation(
    steps: list[dict[int, tuple[int, bool, bool] | None]], orphan_pool_edit: bool
) -> None:
    """Each step changes a few services (None deletes one) and tells desired_state which: the
    result always equals computing everything from scratch, including orphaned services, which
    depend on the previous result rather than on their own objects."""
    memo = d.Memo()
    stable = {f"z{i}": svc(f"z{i}", f"203.0.113.{100 + i}") for i in range(150)}
    current: dict[str, dict[str, Any]] = dict(stable)
    endpoints: dict[str, list[Any]] = {f"z{i}": EVERYWHERE for i in range(150)}
    previous_fresh: Desired | None = None
    previous_memo: Desired | None = None
    cfg = _AGG
    for n, step in enumerate(steps):
        changed: set[str] = set()
        for i, value in step.items():
            name = f"s{i}"
            changed.add(f"default/{name}")
            if value is None:
                current.pop(name, None)
                continue
            host, web, ready = value
            current[name] = svc(name, f"203.0.113.{host}", labels={"tier": "web"} if web else {})
            endpoints[name] = EVERYWHERE if ready else []
        if orphan_pool_edit and n == 1:
            # A pool edit that leaves every stable service's IP outside any pool: orphans.
            cfg = config(
                pool("bgp", "203.0.113.0/25"),
                peer("r1", peerAddress="198.51.100.1"),
                peer("r2", peerAddress="198.51.100.2"),
                bgpadv("host", communities=["64500:2"]),
            )
        services = list(current.values())
        fresh = run(cfg, services, endpoints, previous=previous_fresh)
        inputs = Inputs(
            config=cfg,
            services={d.service_key(s): s for s in services},
            endpoint_slices={f"default/{k}": v for k, v in endpoints.items()},
            nodes={n["metadata"]["name"]: n for n in (node(x) for x in NODES)},
            node="node-a",
            previous=previous_memo,
            memo=memo,
            changed=frozenset(changed) if n else None,
        )
        hinted = desired_state(inputs)
        assert hinted == fresh
        assert list(hinted.services) == list(fresh.services)  # logs and events in key order
        previous_fresh, previous_memo = fresh, hinted
    if not orphan_pool_edit:
        assert memo.hinted_passes == len(steps) - 1
