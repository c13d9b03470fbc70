"""Allocation rules, one at a time: selection order, families, sharing, avoidBuggyIPs,
serviceAllocation, configuration changes and adoption of existing status."""

from __future__ import annotations

from typing import Any

import pytest

from metallb_py.allocator import (
    Allocator,
    ChangeKind,
    ClearReason,
    LabelSelector,
    Outcome,
    PoolSpec,
    ServiceRequest,
    request_from_service,
)
from metallb_py.config.addresses import parse_entry
from metallb_py.controller.convert import blocks


def service(
    name: str,
    *,
    ns: str = "default",
    ann: dict[str, str] | None = None,
    lb_ip: str | None = None,
    cluster_ips: tuple[str, ...] = ("10.96.0.10",),
    policy: str | None = None,
    ports: tuple[tuple[str, int], ...] = (("TCP", 80),),
    etp: str | None = None,
    selector: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    ns_labels: dict[str, str] | None = None,
) -> ServiceRequest:
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "clusterIP": cluster_ips[0] if cluster_ips else None,
        "clusterIPs": list(cluster_ips),
        "ports": [{"protocol": p, "port": n} for p, n in ports],
        "selector": selector or {"app": name},
    }
    if policy:
        spec["ipFamilyPolicy"] = policy
    if lb_ip:
        spec["loadBalancerIP"] = lb_ip
    if etp:
        spec["externalTrafficPolicy"] = etp
    obj = {
        "metadata": {"name": name, "namespace": ns, "annotations": ann or {}, "labels": labels},
        "spec": spec,
    }
    return request_from_service(obj, ns_labels)


V6_CLUSTER = ("fd00::10",)
DUAL = ("10.96.0.10", "fd00::10")


def pool(name: str, *addrs: str, **kw: Any) -> PoolSpec:
    return PoolSpec(name, blocks(parse_entry(a) for a in addrs), **kw)


# ---------------------------------------------------------------- selection order


def test_requested_ip_annotation_beats_pool_annotation_and_automatic_pools() -> None:
    a = Allocator([pool("a", "192.0.2.0/28"), pool("b", "198.51.100.0/28", auto_assign=False)])
    r = a.assign(service("s", ann={"metallb.io/loadBalancerIPs": "198.51.100.7"}))
    assert (r.outcome, r.ips, r.pool) == (Outcome.ALLOCATED, ("198.51.100.7",), "b")


def test_stable_annotation_wins_over_legacy_prefix() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    ann = {
        "metallb.io/loadBalancerIPs": "192.0.2.3",
        "metallb.universe.tf/loadBalancerIPs": "192.0.2.9",
    }
    assert a.assign(service("s", ann=ann)).ips == ("192.0.2.3",)
    legacy = {"metallb.universe.tf/loadBalancerIPs": "192.0.2.9"}
    assert a.assign(service("t", ann=legacy)).ips == ("192.0.2.9",)


def test_spec_load_balancer_ip_is_honoured() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    assert a.assign(service("s", lb_ip="192.0.2.5")).ips == ("192.0.2.5",)


def test_both_requested_ip_fields_are_an_error() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    r = a.assign(service("s", lb_ip="192.0.2.5", ann={"metallb.io/loadBalancerIPs": "192.0.2.6"}))
    assert r.outcome is Outcome.FAILED and "can not have both" in r.error


def test_requested_ip_outside_every_pool_fails() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    r = a.assign(service("s", lb_ip="203.0.113.1"))
    assert r.outcome is Outcome.FAILED and "not allowed in config" in r.error


def test_requested_ip_must_agree_with_requested_pool() -> None:
    a = Allocator([pool("a", "192.0.2.0/28"), pool("b", "198.51.100.0/28")])
    ann = {"metallb.io/loadBalancerIPs": "192.0.2.3", "metallb.io/address-pool": "b"}
    r = a.assign(service("s", ann=ann))
    assert r.outcome is Outcome.FAILED and "requested address pool" in r.error


def test_pool_annotation_uses_that_pool_even_without_auto_assign() -> None:
    a = Allocator([pool("a", "192.0.2.0/28"), pool("b", "198.51.100.0/28", auto_assign=False)])
    assert a.assign(service("s", ann={"metallb.io/address-pool": "b"})).pool == "b"
    assert a.assign(service("t", ann={"metallb.universe.tf/address-pool": "b"})).pool == "b"
    r = a.assign(service("u", ann={"metallb.io/address-pool": "nope"}))
    assert r.outcome is Outcome.FAILED and "unknown pool" in r.error


def test_pinned_pools_by_priority_before_automatic_pools() -> None:
    a = Allocator(
        [
            pool("auto", "192.0.2.0/30"),
            pool("p2", "198.51.100.0/32", service_allocation=True, priority=2),
            pool("p1", "198.51.100.1/32", service_allocation=True, priority=1),
            pool("p0", "198.51.100.2/32", service_allocation=True),
        ]
    )
    got = [a.assign(service(f"s{i}")).pool for i in range(4)]
    assert got == ["p1", "p2", "p0", "auto"]


def test_automatic_pools_in_name_order_and_auto_assign_false_skipped() -> None:
    a = Allocator(
        [
            pool("zeta", "192.0.2.0/32"),
            pool("alpha", "192.0.2.1/32"),
            pool("beta", "192.0.2.2/32", auto_assign=False),
        ]
    )
    assert [a.assign(service(f"s{i}")).pool for i in range(2)] == ["alpha", "zeta"]
    r = a.assign(service("s3"))
    assert r.outcome is Outcome.FAILED and r.error == "no available IPs"


def test_lowest_free_address_first_and_reuse_after_release() -> None:
    a = Allocator([pool("a", "192.0.2.10-192.0.2.12")])
    assert [a.assign(service(f"s{i}")).ips[0] for i in range(3)] == [
        "192.0.2.10",
        "192.0.2.11",
        "192.0.2.12",
    ]
    a.release("default/s1")
    assert a.assign(service("s9")).ips == ("192.0.2.11",)


# ---------------------------------------------------------------- serviceAllocation


def test_service_allocation_namespaces_and_selectors() -> None:
    team = LabelSelector.from_dict({"matchLabels": {"team": "red"}})
    tier = LabelSelector.from_dict(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}
    )
    a = Allocator(
        [
            pool("byns", "192.0.2.0/32", service_allocation=True, namespaces=frozenset({"prod"})),
            pool("bynsl", "192.0.2.1/32", service_allocation=True, namespace_selectors=(team,)),
            pool("bysvc", "192.0.2.2/32", service_allocation=True, service_selectors=(tier,)),
            pool("auto", "198.51.100.0/28"),
        ]
    )
    assert a.assign(service("x", ns="prod")).pool == "byns"
    assert a.assign(service("y", ns="other", ns_labels={"team": "red"})).pool == "bynsl"
    assert a.assign(service("z", labels={"tier": "web"})).pool == "bysvc"
    assert a.assign(service("w", ns="dev")).pool == "auto"
    # A pinned pool is refused to a service it does not admit, even by annotation.
    r = a.assign(service("v", ns="dev", ann={"metallb.io/address-pool": "byns"}))
    assert r.outcome is Outcome.FAILED and "not compatible" in r.error


def test_pinned_pool_is_not_an_automatic_fallback() -> None:
    a = Allocator(
        [pool("only", "192.0.2.0/30", service_allocation=True, namespaces=frozenset({"prod"}))]
    )
    assert a.assign(service("s", ns="dev")).outcome is Outcome.FAILED


# ---------------------------------------------------------------- families


def test_single_stack_ipv6() -> None:
    a = Allocator([pool("a", "192.0.2.0/28", "2001:db8::/64")])
    assert a.assign(service("s", cluster_ips=V6_CLUSTER)).ips == ("2001:db8::",)


def test_require_dual_stack_gets_both_from_one_pool() -> None:
    a = Allocator([pool("v4", "192.0.2.0/28"), pool("z", "198.51.100.0/28", "2001:db8::/120")])
    r = a.assign(service("s", cluster_ips=DUAL, policy="RequireDualStack"))
    assert (r.pool, r.ips) == ("z", ("198.51.100.0", "2001:db8::"))


def test_require_dual_stack_fails_without_a_dual_pool() -> None:
    a = Allocator([pool("v4", "192.0.2.0/28"), pool("v6", "2001:db8::/120")])
    r = a.assign(service("s", cluster_ips=DUAL, policy="RequireDualStack"))
    assert r.outcome is Outcome.FAILED
    r = a.assign(service("t", cluster_ips=("10.96.0.1",), policy="RequireDualStack"))
    assert r.outcome is Outcome.FAILED and "not enough clusterips" in r.error


def test_prefer_dual_stack_falls_back_to_primary_family() -> None:
    a = Allocator([pool("v4", "192.0.2.0/28"), pool("v6", "2001:db8::/120")])
    r = a.assign(service("s", cluster_ips=("fd00::1", "10.96.0.1"), policy="PreferDualStack"))
    assert (r.pool, r.ips) == ("v6", ("2001:db8::",))


def test_prefer_dual_stack_adds_second_family_when_pool_gains_one() -> None:
    a = Allocator([pool("p", "192.0.2.0/28")])
    svc = service("s", cluster_ips=DUAL, policy="PreferDualStack")
    assert a.assign(svc).ips == ("192.0.2.0",)
    a.set_pools([pool("p", "192.0.2.0/28", "2001:db8::/120")])
    r = a.assign(svc)
    assert (r.outcome, r.ips, r.added_ips) == (
        Outcome.KEPT,
        ("192.0.2.0", "2001:db8::"),
        ("2001:db8::",),
    )


def test_requested_ip_family_must_match_service() -> None:
    a = Allocator([pool("a", "192.0.2.0/28", "2001:db8::/120")])
    r = a.assign(service("s", lb_ip="2001:db8::5"))
    assert r.outcome is Outcome.FAILED and "ipFamily" in r.error
    dual = {"metallb.io/loadBalancerIPs": "192.0.2.4, 2001:db8::4"}
    r = a.assign(service("t", ann=dual, cluster_ips=DUAL, policy="RequireDualStack"))
    assert r.ips == ("192.0.2.4", "2001:db8::4")


# ---------------------------------------------------------------- sharing


def shared(name: str, key: str = "k", **kw: Any) -> ServiceRequest:
    return service(name, ann={"metallb.io/allow-shared-ip": key}, **kw)


def test_same_key_disjoint_ports_share_one_ip() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    a.assign(service("other"))  # takes .0, so sharing is not scan luck
    one = a.assign(shared("dns-tcp", ports=(("TCP", 53),)))
    two = a.assign(shared("dns-udp", ports=(("UDP", 53),)))
    assert one.ips == two.ips == ("192.0.2.1",)
    assert a.stats()["a"].in_use == 2  # a shared IP counts once


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"ports": (("TCP", 80),)}, {"ports": (("TCP", 80),)}),  # port clash
        ({"key": "k"}, {"key": "other", "ports": (("TCP", 81),)}),  # different keys
        (
            {"etp": "Local", "selector": {"app": "a"}},
            {"etp": "Local", "selector": {"app": "b"}, "ports": (("TCP", 81),)},
        ),
        ({"etp": "Local"}, {"etp": "Cluster", "ports": (("TCP", 81),)}),
    ],
)
def test_incompatible_services_never_share(first: dict, second: dict) -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    r1 = a.assign(shared("one", **first))
    r2 = a.assign(shared("two", **second))
    assert r1.ips != r2.ips
    # Asking for the other's IP explicitly is refused too.
    ann = {
        "metallb.io/allow-shared-ip": second.get("key", "k"),
        "metallb.io/loadBalancerIPs": r1.ips[0],
    }
    kw = {k: v for k, v in second.items() if k != "key"}
    r3 = a.assign(service("three", ann=ann, **kw))
    assert r3.outcome is Outcome.FAILED


def test_local_policy_with_identical_selectors_shares() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    sel = {"app": "web"}
    r1 = a.assign(shared("one", etp="Local", selector=sel, ports=(("TCP", 80),)))
    r2 = a.assign(shared("two", etp="Local", selector=sel, ports=(("TCP", 443),)))
    assert r1.ips == r2.ips


def test_no_key_means_no_sharing_even_when_requested() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    a.assign(service("one", lb_ip="192.0.2.3"))
    r = a.assign(service("two", lb_ip="192.0.2.3", ports=(("TCP", 81),)))
    assert r.outcome is Outcome.FAILED and "already in use" in r.error


def test_changing_sharing_key_moves_the_service_off_the_shared_ip() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    one = a.assign(shared("one", ports=(("TCP", 1),)))
    a.assign(shared("two", ports=(("TCP", 2),)))
    r = a.assign(shared("one", key="new", ports=(("TCP", 1),)))
    assert r.clear_reason is ClearReason.SHARING_CONFLICT
    assert r.ips != one.ips and a.holders(one.ips[0]) == ("default/two",)


# ---------------------------------------------------------------- avoidBuggyIPs and counters


def test_avoid_buggy_ips() -> None:
    a = Allocator([pool("a", "192.0.2.254-192.0.3.1", avoid_buggy_ips=True)])
    got = [a.assign(service(f"s{i}")).ips for i in range(3)]
    assert got[:2] == [("192.0.2.254",), ("192.0.3.1",)]
    assert a.assign(service("s9")).outcome is Outcome.FAILED
    r = a.assign(service("x", lb_ip="192.0.3.0"))
    assert r.outcome is Outcome.FAILED
    stats = a.stats()["a"]
    assert (stats.addresses_v4, stats.in_use_v4) == (2, 2)


def test_address_counters_follow_metallb_arithmetic() -> None:
    a = Allocator(
        [
            pool("buggy", "10.0.0.0/16", avoid_buggy_ips=True),
            pool("plain", "192.0.2.0/24", "2001:db8::/120"),
            pool("huge", "2001:db8:1::/64"),
        ]
    )
    s = a.stats()
    assert s["buggy"].addresses_v4 == 65536 - 2 * 256
    assert (s["plain"].addresses_v4, s["plain"].addresses_v6) == (256, 256)
    assert s["huge"].addresses_v6 == 2**63 - 1
    a.assign(service("s", ann={"metallb.io/address-pool": "plain"}))
    assert (a.stats()["plain"].in_use_v4, a.stats()["plain"].services) == (1, 1)
    assert a.stats()["plain"].available_v4 == 255


# ---------------------------------------------------------------- configuration changes


def test_removed_pool_orphans_allocation_and_never_hands_it_out() -> None:
    a = Allocator([pool("a", "192.0.2.0/30"), pool("b", "198.51.100.0/30")])
    kept = a.assign(service("kept", ann={"metallb.io/address-pool": "b"}))
    lost = a.assign(service("lost"))
    assert lost.ips == ("192.0.2.0",)
    # Pool a now only admits namespace prod: default/lost no longer allowed there.
    changes = a.set_pools(
        [
            pool("a", "192.0.2.0/30", service_allocation=True, namespaces=frozenset({"prod"})),
            pool("b", "198.51.100.0/30"),
        ]
    )
    assert [(c.key, c.kind) for c in changes] == [("default/lost", ChangeKind.ORPHANED)]
    assert a.allocation("default/kept").ips == kept.ips  # type: ignore[union-attr]
    assert a.assign(service("lost")).outcome is Outcome.ORPHANED
    assert a.orphaned_addresses == 1
    # A prod service gets .1, never the orphaned .0, and cannot request it either.
    assert a.assign(service("p", ns="prod")).ips == ("192.0.2.1",)
    assert a.assign(service("q", ns="prod", lb_ip="192.0.2.0")).outcome is Outcome.FAILED


def test_orphan_released_when_service_changes_or_asks() -> None:
    a = Allocator([pool("a", "192.0.2.0/30"), pool("b", "198.51.100.0/30")])
    a.assign(service("one"))
    a.assign(service("two"))
    a.set_pools([pool("b", "198.51.100.0/30")])
    assert a.orphaned_addresses == 2
    r = a.assign(service("one", ports=(("TCP", 8080),)))  # the service changed
    assert (r.outcome, r.ips, r.cleared_ips) == (
        Outcome.ALLOCATED,
        ("198.51.100.0",),
        ("192.0.2.0",),
    )
    r = a.assign(service("two", ann={"metallb-py.io/reallocate": "true"}))
    assert r.clear_reason is ClearReason.REALLOCATE_REQUESTED and r.ips == ("198.51.100.1",)
    assert a.orphaned_addresses == 0


def test_orphan_restored_when_config_allows_it_again() -> None:
    a = Allocator([pool("a", "192.0.2.0/30")])
    a.assign(service("one"))
    a.set_pools([pool("b", "198.51.100.0/30")])
    changes = a.set_pools([pool("a2", "192.0.2.0/29")])
    assert [c.kind for c in changes] == [ChangeKind.RESTORED]
    assert a.assign(service("one")).ips == ("192.0.2.0",)


def test_rename_rehomes_without_renumbering() -> None:
    a = Allocator([pool("old", "192.0.2.0/30")])
    a.assign(service("one"))
    changes = a.set_pools([pool("new", "192.0.2.0/30")])
    assert [(c.kind, c.pool) for c in changes] == [(ChangeKind.REHOMED, "new")]
    r = a.assign(service("one"))
    assert (r.outcome, r.ips, r.pool) == (Outcome.KEPT, ("192.0.2.0",), "new")


def test_reallocate_mode_behaves_like_metallb() -> None:
    a = Allocator([pool("a", "192.0.2.0/30")], reallocate_on_config_change=True)
    a.assign(service("one"))
    changes = a.set_pools([pool("b", "198.51.100.0/30")])
    assert [c.kind for c in changes] == [ChangeKind.RELEASED]
    r = a.assign(service("one"))
    assert (r.outcome, r.ips) == (Outcome.ALLOCATED, ("198.51.100.0",))


def test_overlapping_pools_rejected_and_old_pools_kept() -> None:
    a = Allocator([pool("a", "192.0.2.0/30")])
    with pytest.raises(ValueError, match="overlap"):
        a.set_pools([pool("a", "192.0.2.0/30"), pool("b", "192.0.2.2-192.0.2.9")])
    assert a.pool_names == ("a",)


def test_no_configuration_means_no_allocation() -> None:
    r = Allocator().assign(service("s"))
    assert r.outcome is Outcome.FAILED and "configuration is missing" in r.error


# ---------------------------------------------------------------- adoption from status


def test_adopts_status_ips_and_resolves_duplicate_claims() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    r = a.assign(service("old"), current=["192.0.2.7"])
    assert (r.outcome, r.ips) == (Outcome.KEPT, ("192.0.2.7",))
    r = a.assign(service("dup"), current=["192.0.2.7"])
    assert r.clear_reason is ClearReason.IP_IN_USE and r.ips == ("192.0.2.0",)


def test_adopted_ip_outside_config_is_kept_as_orphan() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    r = a.assign(service("s"), current=["203.0.113.5"])
    assert (r.outcome, r.ips) == (Outcome.ORPHANED, ("203.0.113.5",))


def test_adopted_ip_differing_from_request_is_replaced() -> None:
    a = Allocator([pool("a", "192.0.2.0/28")])
    r = a.assign(service("s", lb_ip="192.0.2.9"), current=["192.0.2.7"])
    assert (r.ips, r.clear_reason) == (("192.0.2.9",), ClearReason.DIFFERENT_IP_REQUESTED)


def test_adopt_pass_never_hands_out_new_addresses() -> None:
    a = Allocator([pool("a", "192.0.2.0/30")])
    assert a.adopt(service("old"), ["192.0.2.1"]) is not None
    # The duplicate claim is left for the second pass: nothing new is allocated now, so the
    # free .0 stays free for whoever claims it in status.
    assert a.adopt(service("dup"), ["192.0.2.1"]) is None
    assert a.adopt(service("other"), ["192.0.2.0"]) is not None
    r = a.assign(service("dup"), current=["192.0.2.1"])
    assert r.ips == ("192.0.2.2",) and r.clear_reason is ClearReason.IP_IN_USE


def test_blocks_are_tried_in_the_order_written() -> None:
    a = Allocator([pool("a", "198.51.100.8/31", "192.0.2.0/31")])
    got = [a.assign(service(f"s{i}")).ips[0] for i in range(4)]
    assert got == ["198.51.100.8", "198.51.100.9", "192.0.2.0", "192.0.2.1"]
    a.release("default/s0")
    assert a.assign(service("s9")).ips == ("198.51.100.8",)
