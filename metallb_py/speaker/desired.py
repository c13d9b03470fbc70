"""What this node should announce: MetalLB's speaker rules as a pure function of cluster state.

`desired_state(inputs)` takes the configuration, Services, EndpointSlices, Nodes, the live
speakers (or None when membership is off) and this node's name, and returns, per Service and per
protocol, announce or withdraw with MetalLB's reason string; the BGP sessions this node holds and
the prefixes (with LOCAL_PREF and communities) each one carries; and the layer-2 addresses this
node answers for, with the interfaces to answer on. No I/O, no clock: the shells in
`bgp_shell.py` and `l2_shell.py` apply the difference between two results.

Differences from MetalLB, on purpose:
* Services sharing one IP are elected over one candidate set for the whole group (the
  intersection of their candidate sets, or their union when that is empty), so two nodes never
  answer for one address (MetalLB #968/#558).
* Without membership the base candidate set is the existing Node objects (never a deleted one);
  `require_node_ready` optionally drops nodes that are not Ready.
* When this node is not a layer-2 candidate because of its own state, the reason names that state
  (`nodeNetworkUnavailable`, `nodeLabeledExcludeBalancers`, `nodeNotReady`, `noLocalEndpoints`)
  instead of MetalLB's blanket `notOwner`.
* An orphaned allocation (the controller keeps an IP no pool allows any more) keeps the
  announcement it had (`previous`), flagged; without one (a restarted speaker), the pool named by
  the `metallb.io/ip-allocated-from-pool` annotation is used while it still exists.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bgp.packing import RouteAttrs
from l2 import election
from metallb_py.allocator.service import ANN_ALLOCATED_FROM, ANN_SHARED, annotation
from metallb_py.config.model import BGPAdvertisement, Config, L2Advertisement, Peer, Pool
from metallb_py.objects import JSON

BGP = "bgp"
LAYER2 = "layer2"
PROTOCOLS = (BGP, LAYER2)
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# Reasons (MetalLB's strings where MetalLB has one).
SERVICE_DELETED = "serviceDeleted"
NOT_LOAD_BALANCER = "notLoadBalancer"
NO_IP_ALLOCATED = "noIPAllocated"
INVALID_IP = "invalidIP"
IP_NOT_ALLOWED = "ipNotAllowed"
LB_IP_CHANGED = "loadBalancerIPChanged"
NOT_OWNER = "notOwner"
NO_MATCHING_ADVERTISEMENT = "noMatchingAdvertisement"
SHARED_IP_WITH_SERVICE_SELECTOR = "sharedIPWithServiceSelector"
CONFLICTING_ADVERTISEMENTS = "conflictingAdvertisements"
NODE_NETWORK_UNAVAILABLE = "nodeNetworkUnavailable"
NODE_EXCLUDED = "nodeLabeledExcludeBalancers"
NODE_NOT_READY = "nodeNotReady"
NO_LOCAL_ENDPOINTS = "noLocalEndpoints"
NO_ENDPOINTS = "noEndpoints"
NO_CONFIG = "noConfig"
# Why a node is not a layer-2 candidate (never a withdraw reason: that node's own reason is one
# of the above, or notOwner).
NOT_LIVE_MEMBER = "notLiveMember"
NOT_SELECTED_BY_ADVERTISEMENT = "notSelectedByAdvertisement"


@dataclass(frozen=True)
class Options:
    lb_class: str = ""
    ignore_exclude_lb: bool = False
    l2_require_node_ready: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """One protocol's verdict for one service: announce (reason "") or withdraw (reason)."""

    announce: bool
    reason: str = ""

    @staticmethod
    def withdraw(reason: str) -> Decision:
        shared = _WITHDRAWALS.get(reason)
        if shared is None:
            shared = Decision(False, reason)
            if len(_WITHDRAWALS) < 64:  # the reasons are a fixed set of constants
                _WITHDRAWALS[reason] = shared
        return shared


_WITHDRAWALS: dict[str, Decision] = {}  # one shared (immutable) Decision per reason


ANNOUNCE = Decision(True)
Routes = Mapping[str, Mapping[str, RouteAttrs]]  # peer name -> prefix -> attributes


_NO_ROUTES: Routes = MappingProxyType({})
_NO_L2: Mapping[str, frozenset[str] | None] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ServiceDesired:
    """Everything this node does for one service (one per Service: slotted, and the empty
    tables are one shared read-only mapping)."""

    key: str
    ips: tuple[str, ...]
    pool: str | None
    bgp: Decision
    layer2: Decision
    orphaned: bool = False
    # bgp: peer name -> prefix -> attributes (only when bgp.announce)
    routes: Routes = field(default_factory=lambda: _NO_ROUTES)
    # layer2: ip -> interfaces (None: every usable interface), only when layer2.announce
    l2_ips: Mapping[str, frozenset[str] | None] = field(default_factory=lambda: _NO_L2)
    # layer2: the node elected for this service's IPs (None: nobody)
    l2_owner: str | None = None
    # layer2: the elected node is us but none of the selected interfaces exists here
    interfaces_missing: bool = False

    def decision(self, protocol: str) -> Decision:
        return self.bgp if protocol == BGP else self.layer2

    @property
    def bgp_peers(self) -> tuple[str, ...]:
        """ServiceBGPStatus.peers: the peers that get at least one of the service's prefixes."""
        return tuple(sorted(p for p, prefixes in self.routes.items() if prefixes))

    @property
    def l2_interfaces(self) -> tuple[str, ...]:
        """ServiceL2Status.interfaces: empty when announced on every interface."""
        names: set[str] = set()
        for ifaces in self.l2_ips.values():
            if ifaces is None:
                return ()
            names |= ifaces
        return tuple(sorted(names))


@dataclass(frozen=True)
class Desired:
    services: Mapping[str, ServiceDesired] = field(default_factory=dict)
    peers: Mapping[str, Peer] = field(default_factory=dict)  # BGPPeer name -> peer
    routes: Routes = field(default_factory=dict)  # merged over services
    l2: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    config_loaded: bool = False
    # Hints from a hinted pass, so the shells look at what changed instead of 10 000 services
    # (not part of the result: equal results compare equal whatever their hints). `changed`:
    # the services whose result is not the very object of `base` (the previous call's services);
    # `route_changes`: the (peer, prefix) pairs whose merged attributes may differ from
    # `routes_base` (the previous call's routes). None: unknown, compare everything.
    changed: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    base: Mapping[str, ServiceDesired] | None = field(default=None, compare=False, repr=False)
    route_changes: frozenset[tuple[str, str]] | None = field(
        default=None, compare=False, repr=False
    )
    routes_base: Routes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Inputs:
    config: Config | None
    services: Mapping[str, JSON]  # "ns/name" -> Service
    endpoint_slices: Mapping[str, Sequence[JSON]]  # "ns/name" of the service -> its slices
    nodes: Mapping[str, JSON]  # name -> Node
    node: str
    members: frozenset[str] | None = None  # live speakers; None: membership off/not there yet
    options: Options = Options()
    previous: Desired | None = None
    local_interfaces: frozenset[str] | None = None  # None: unknown, do not check
    memo: Memo | None = None  # reuse per-service results across calls (same output, faster)
    # With a memo: the services whose Service or EndpointSlices may have changed since the last
    # call with that memo. None: unknown, look at every service.
    changed: frozenset[str] | None = None


@dataclass
class Memo:
    """Per-service results kept between calls. A service's result depends only on the global
    inputs (config, nodes, members, options) and its own Service and EndpointSlice objects;
    informers replace an object on every change, so identity tells what changed. Any change of
    the global inputs drops everything."""

    context: tuple[Any, ...] | None = None
    entries: dict[str, tuple[JSON, list[JSON], tuple[ServiceDesired, _L2Case | None]]] = field(
        default_factory=dict
    )
    owners: dict[tuple[Any, ...], str | None] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    # The merged BGP tables of the last pass, the services they were merged from, and who
    # contributes to each (peer, prefix): a pass with one changed service re-merges only its
    # prefixes instead of 10 000 services' worth.
    merged: Routes | None = None
    merged_from: dict[str, ServiceDesired] = field(default_factory=dict)
    # The previous call's services (in key order) when none of them was a layer-2 case, and
    # the services whose result was orphaned (never memoized: recomputed on every call).
    last: dict[str, ServiceDesired] | None = None
    orphans: set[str] = field(default_factory=set)
    hinted_passes: int = 0
    contributors: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    incremental_merges: int = 0
    # The (peer, prefix) pairs the last incremental merge touched (None after a full merge).
    route_changes: frozenset[tuple[str, str]] | None = None
    # The services announcing over layer 2 in the last call, so a hinted pass builds the
    # layer-2 table from them instead of looking at every service.
    l2_keys: set[str] = field(default_factory=set)

    def check_context(self, inp: Inputs) -> None:
        nodes = tuple(
            sorted(
                (name, tuple(sorted(labels(n).items())), network_unavailable(n), node_ready(n))
                for name, n in inp.nodes.items()
            )
        )
        ctx = (inp.config, nodes, inp.members, inp.options, inp.node, inp.local_interfaces)
        old = self.context
        if old is None or old[0] is not inp.config or old[1:] != ctx[1:]:
            self.entries.clear()
            self.owners.clear()
            self.merged = None
            self.last = None
        self.context = ctx

    def get(
        self, key: str, svc: JSON, slices: Sequence[JSON]
    ) -> tuple[ServiceDesired, _L2Case | None] | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] is not svc or len(entry[1]) != len(slices):
            return None
        # Slices come in a stable (sorted) order; a reordering only costs a recomputation.
        for before, now in zip(entry[1], slices, strict=True):
            if before is not now:
                return None
        return entry[2]

    def put(
        self,
        key: str,
        svc: JSON,
        slices: Sequence[JSON],
        result: tuple[ServiceDesired, _L2Case | None],
    ) -> None:
        if result[0].orphaned:
            self.entries.pop(key, None)  # depends on the previous result: never reused
            return
        self.entries[key] = (svc, list(slices), result)


def changed_services(previous: Desired | None, want: Desired) -> list[str] | None:
    """The services whose result may differ from the previous pass: those whose ServiceDesired
    is not the very object of `previous` (a memo hit returns the same object), plus those gone.
    None when there is no previous pass: everything is new."""
    if previous is None:
        return None
    before = previous.services
    if want.changed is not None and want.base is before:
        return list(want.changed)  # a hinted pass knows them
    changed = [k for k, sd in want.services.items() if before.get(k) is not sd]
    changed += sorted(before.keys() - want.services.keys())
    return changed


# ---- small readers of Kubernetes objects ---------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def labels(obj: Mapping[str, Any] | None) -> dict[str, str]:
    raw = _meta(obj or {}).get("labels")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def service_key(svc: Mapping[str, Any]) -> str:
    m = _meta(svc)
    return f"{m.get('namespace') or 'default'}/{m.get('name')}"


def ingress_ips(svc: Mapping[str, Any]) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(e["ip"]) for e in ingress if isinstance(e, dict) and e.get("ip")]


def node_condition(node: Mapping[str, Any] | None, kind: str) -> str | None:
    for cond in ((node or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def network_unavailable(node: Mapping[str, Any] | None) -> bool:
    return node_condition(node, "NetworkUnavailable") == "True"


def node_ready(node: Mapping[str, Any] | None) -> bool:
    return node_condition(node, "Ready") == "True"


def excluded(node: Mapping[str, Any] | None) -> bool:
    return EXCLUDE_LABEL in labels(node)


def endpoint_can_serve(ep: Mapping[str, Any]) -> bool:
    """Ready unset or true, or serving true (MetalLB's rule, internal/k8s/epslices)."""
    cond = ep.get("conditions") or {}
    ready = cond.get("ready")
    return ready is None or ready is True or cond.get("serving") is True


def serving_nodes(slices: Iterable[Mapping[str, Any]]) -> tuple[bool, frozenset[str]]:
    """(some endpoint anywhere can serve, the nodes hosting an endpoint that can serve)."""
    anywhere = False
    nodes: set[str] = set()
    for s in slices:
        for ep in s.get("endpoints") or []:
            if not isinstance(ep, dict) or not endpoint_can_serve(ep):
                continue
            if not ep.get("addresses"):
                continue
            anywhere = True
            if ep.get("nodeName"):
                nodes.add(str(ep["nodeName"]))
    return anywhere, frozenset(nodes)


def handles(svc: Mapping[str, Any], lb_class: str) -> bool:
    spec = svc.get("spec") or {}
    return (spec.get("loadBalancerClass") or "") == lb_class


def is_local_policy(svc: Mapping[str, Any]) -> bool:
    return (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local"


def shares_ip(svc: Mapping[str, Any]) -> bool:
    anns = _meta(svc).get("annotations") or {}
    value, _ = annotation(anns, ANN_SHARED)
    return bool(value)


# ---- the function -------------------------------------------------------------------------------


def desired_state(inp: Inputs) -> Desired:
    config = inp.config
    if config is None:
        return Desired(config_loaded=False)
    me = inp.nodes.get(inp.node)
    my_labels = labels(me)
    peers = {p.name: p for p in config.peers if p.selects_node(my_labels)}

    memo = inp.memo
    if memo is not None:
        memo.check_context(inp)
        if inp.changed is None:
            for gone in memo.entries.keys() - inp.services.keys():
                del memo.entries[gone]
        else:  # a deleted service is among the hinted ones: no need to compare every key
            for key in inp.changed:
                if key not in inp.services:
                    memo.entries.pop(key, None)
    base = memo.last if memo is not None else None
    hinted = _hinted_services(inp, config, peers)
    l2_pending: list[_L2Case] = []
    touched: list[str] | None = None
    if hinted is not None:
        services, touched = hinted
    else:
        services, l2_pending = _all_services(inp, config, peers)

    for key, sd in _elect(inp, l2_pending).items():
        services[key] = sd
    if memo is not None:
        if len(memo.owners) > 2 * len(l2_pending) + 1000:
            memo.owners.clear()  # elections of addresses that are gone
        memo.last = None if l2_pending else services
        if hinted is None:
            memo.orphans = {k for k, sd in services.items() if sd.orphaned}

    routes_base = memo.merged if memo is not None else None
    routes = _merged_routes(services, memo, touched)
    route_changes = memo.route_changes if memo is not None else None
    announcing: list[ServiceDesired]
    if memo is not None and touched is not None:
        # Only the touched services can have joined or left the layer-2 announcers (orphans
        # keep a layer-2 announcement in hinted passes too).
        for key in touched:
            one = services.get(key)
            if one is not None and one.layer2.announce:
                memo.l2_keys.add(key)
            else:
                memo.l2_keys.discard(key)
        announcing = [services[k] for k in sorted(memo.l2_keys)]
    else:
        announcing = [sd for sd in services.values() if sd.layer2.announce]
        if memo is not None:
            memo.l2_keys = {sd.key for sd in announcing}
    l2: dict[str, frozenset[str] | None] = {}
    for sd in announcing:
        for ip, ifaces in sd.l2_ips.items():
            if ip in l2:
                old = l2[ip]
                l2[ip] = None if old is None or ifaces is None else old | ifaces
            else:
                l2[ip] = ifaces
    return Desired(
        services,
        peers,
        routes,
        l2,
        config_loaded=True,
        changed=tuple(touched) if touched is not None else None,
        base=base if touched is not None else None,
        # A full pass whose merge could be patched (the safety pass every FULL_PASS_S, with
        # nothing changed) still tells the BGP shell which prefixes to look at.
        route_changes=route_changes,
        routes_base=routes_base if route_changes is not None else None,
    )


def _memoized(
    inp: Inputs, config: Config, key: str, svc: JSON, peers: Mapping[str, Peer]
) -> tuple[ServiceDesired, _L2Case | None]:
    memo = inp.memo
    if memo is None:
        return _service(inp, config, key, svc, peers)
    slices = inp.endpoint_slices.get(key, ())
    hit = memo.get(key, svc, slices)
    if hit is None:
        memo.misses += 1
        hit = _service(inp, config, key, svc, peers)
        memo.put(key, svc, slices, hit)
    else:
        memo.hits += 1
    return hit


def _all_services(
    inp: Inputs, config: Config, peers: Mapping[str, Peer]
) -> tuple[dict[str, ServiceDesired], list[_L2Case]]:
    services: dict[str, ServiceDesired] = {}
    l2_pending: list[_L2Case] = []
    for key in sorted(inp.services):
        sd, l2case = _memoized(inp, config, key, inp.services[key], peers)
        services[key] = sd
        if l2case is not None:
            l2_pending.append(l2case)
    return services, l2_pending


def _hinted_services(
    inp: Inputs, config: Config, peers: Mapping[str, Peer]
) -> tuple[dict[str, ServiceDesired], list[str]] | None:
    """The previous call's services with only the hinted ones (and orphans) looked at again, or
    None when that is not safe: no hint, the global inputs changed, or layer-2 elections are
    involved (they group services by address, so they are always computed over all of them).
    Returns the services (in key order) and the keys whose result is a different object."""
    memo = inp.memo
    if memo is None or inp.changed is None or memo.last is None:
        return None
    last = memo.last
    services = dict(last)
    touched: list[str] = []
    added = False
    for key in sorted(inp.changed | memo.orphans):
        svc = inp.services.get(key)
        if svc is None:
            if services.pop(key, None) is not None:
                touched.append(key)
            continue
        sd, l2case = _memoized(inp, config, key, svc, peers)
        if l2case is not None:
            return None
        if last.get(key) is not sd:
            touched.append(key)
            added = added or key not in last
            services[key] = sd
    if added:
        services = dict(sorted(services.items()))
    memo.orphans = {
        k for k in memo.orphans | set(touched) if k in services and services[k].orphaned
    }
    memo.hinted_passes += 1
    return services, touched


def _bgp_routes(sd: ServiceDesired | None) -> Routes:
    return sd.routes if sd is not None and sd.bgp.announce else {}


def _merged_routes(
    services: dict[str, ServiceDesired], memo: Memo | None, changed: list[str] | None = None
) -> Routes:
    """Per peer, every service's prefixes merged (services in key order). With a memo whose last
    merge is still valid, only the prefixes of services that changed are merged again
    (`changed`, when the caller knows them, saves finding them)."""
    if memo is not None and memo.merged is not None:
        before = memo.merged_from
        # `changed` is relative to the previous call's services, which this merge was made
        # from whenever the caller could compute it (a context change drops both).
        if changed is None:
            changed = [k for k, sd in services.items() if before.get(k) is not sd]
            changed += [k for k in before if k not in services]
        if len(changed) * 4 < len(services):
            routes, memo.route_changes = _patch_merge(memo, services, changed)
            memo.merged, memo.merged_from = routes, services
            memo.incremental_merges += 1
            return routes
    full: dict[str, dict[str, RouteAttrs]] = {}
    contributors: dict[tuple[str, str], list[str]] = {}
    for key, sd in services.items():
        for peer, prefixes in _bgp_routes(sd).items():
            table = full.setdefault(peer, {})
            for prefix, attrs in prefixes.items():
                table[prefix] = _merge(table.get(prefix), attrs)
                if memo is not None:
                    contributors.setdefault((peer, prefix), []).append(key)
    if memo is not None:
        memo.merged, memo.merged_from, memo.contributors = full, services, contributors
        memo.route_changes = None
    return full


def _patch_merge(
    memo: Memo, services: dict[str, ServiceDesired], changed: list[str]
) -> tuple[Routes, frozenset[tuple[str, str]]]:
    """The merged tables patched for `changed`, and the (peer, prefix) pairs it touched."""
    assert memo.merged is not None
    routes: dict[str, dict[str, RouteAttrs]] = {p: dict(t) for p, t in memo.merged.items()}
    contributors = memo.contributors
    touched: set[tuple[str, str]] = set()
    for key in changed:
        for peer, prefixes in _bgp_routes(memo.merged_from.get(key)).items():
            for prefix in prefixes:
                keys = contributors.get((peer, prefix))
                if keys is not None and key in keys:
                    keys.remove(key)
                touched.add((peer, prefix))
        for peer, prefixes in _bgp_routes(services.get(key)).items():
            for prefix in prefixes:
                bisect.insort(contributors.setdefault((peer, prefix), []), key)
                touched.add((peer, prefix))
    for peer, prefix in touched:
        keys = contributors.get((peer, prefix))
        if not keys:
            contributors.pop((peer, prefix), None)
            table = routes.get(peer)
            if table is not None:
                table.pop(prefix, None)
                if not table:
                    del routes[peer]
            continue
        merged: RouteAttrs | None = None
        for k in keys:
            merged = _merge(merged, services[k].routes[peer][prefix])
        assert merged is not None
        routes.setdefault(peer, {})[prefix] = merged
    return routes, frozenset(touched)


def _merge(old: RouteAttrs | None, new: RouteAttrs) -> RouteAttrs:
    """One prefix from several ads or services: communities merged, the first LOCAL_PREF kept."""
    if old is None:
        return new
    return RouteAttrs(
        old.communities + new.communities,
        old.large_communities + new.large_communities,
        old.local_pref if old.local_pref is not None else new.local_pref,
    ).normalized()


@dataclass
class _L2Case:
    """A service that may be announced over layer 2, waiting for the group election."""

    sd: ServiceDesired
    svc: JSON
    pool: Pool
    ads: tuple[L2Advertisement, ...]
    candidates: frozenset[str]
    weights: dict[str, int]
    own_reason: str  # why this node is not a candidate ("" if it is)


def _withdraw_all(
    key: str, ips: tuple[str, ...], reason: str
) -> tuple[ServiceDesired, _L2Case | None]:
    d = Decision.withdraw(reason)
    return ServiceDesired(key, ips, None, d, d), None


def _service(
    inp: Inputs, config: Config, key: str, svc: JSON, peers: Mapping[str, Peer]
) -> tuple[ServiceDesired, _L2Case | None]:
    spec = svc.get("spec") or {}
    ips_raw = ingress_ips(svc)
    if spec.get("type") != "LoadBalancer" or not handles(svc, inp.options.lb_class):
        return _withdraw_all(key, tuple(ips_raw), NOT_LOAD_BALANCER)
    if not ips_raw:
        return _withdraw_all(key, (), NO_IP_ALLOCATED)
    try:
        ips = tuple(election.canonical_ip(ip) for ip in ips_raw)
    except ValueError:
        return _withdraw_all(key, tuple(ips_raw), INVALID_IP)
    addrs = [ipaddress.ip_address(ip) for ip in ips]

    pool = next((p for p in config.pools if all(p.contains(a) for a in addrs)), None)
    orphaned = False
    if pool is None:
        orphaned = True
        prev = inp.previous.services.get(key) if inp.previous is not None else None
        if prev is not None and prev.ips == ips and (prev.bgp.announce or prev.layer2.announce):
            # Keep exactly what was announced, flagged: a pool edit must not cut traffic.
            kept = ServiceDesired(
                key,
                ips,
                prev.pool,
                prev.bgp,
                prev.layer2,
                True,
                {p: r for p, r in prev.routes.items() if p in peers},
                prev.l2_ips,
                prev.l2_owner,
                prev.interfaces_missing,
            )
            return kept, None
        named = (_meta(svc).get("annotations") or {}).get(ANN_ALLOCATED_FROM)
        pool = config.pool(str(named)) if named else None
        if pool is None:
            return _withdraw_all(key, ips, IP_NOT_ALLOWED)

    slices = inp.endpoint_slices.get(key, ())
    anywhere, ep_nodes = serving_nodes(slices)
    local = is_local_policy(svc)
    svc_labels = labels(svc)

    bgp, routes = _bgp(inp, config, pool, addrs, svc_labels, local, anywhere, ep_nodes, peers)
    sd = ServiceDesired(key, ips, pool.name, bgp, Decision.withdraw(NOT_OWNER), orphaned, routes)
    l2case = _l2_candidates(inp, config, sd, svc, pool, svc_labels, local, anywhere, ep_nodes)
    if isinstance(l2case, Decision):
        sd = ServiceDesired(key, ips, pool.name, bgp, l2case, orphaned, routes)
        return sd, None
    return sd, l2case


# ---- BGP ----------------------------------------------------------------------------------------


def _bgp(
    inp: Inputs,
    config: Config,
    pool: Pool,
    addrs: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
    svc_labels: Mapping[str, str],
    local: bool,
    anywhere: bool,
    ep_nodes: frozenset[str],
    peers: Mapping[str, Peer],
) -> tuple[Decision, dict[str, dict[str, RouteAttrs]]]:
    me = inp.nodes.get(inp.node)
    my_labels = labels(me)
    pool_ads = [a for a in config.bgp_advertisements_for(pool.name) if a.selects_node(my_labels)]
    if not pool_ads:
        return Decision.withdraw(NOT_OWNER), {}
    ads = [a for a in pool_ads if a.selects_service(svc_labels)]
    if not ads:
        return Decision.withdraw(NO_MATCHING_ADVERTISEMENT), {}
    if _conflicting(ads):
        return Decision.withdraw(CONFLICTING_ADVERTISEMENTS), {}
    if network_unavailable(me):
        return Decision.withdraw(NODE_NETWORK_UNAVAILABLE), {}
    if excluded(me) and not inp.options.ignore_exclude_lb:
        return Decision.withdraw(NODE_EXCLUDED), {}
    if local and inp.node not in ep_nodes:
        return Decision.withdraw(NO_LOCAL_ENDPOINTS), {}
    if not local and not anywhere:
        return Decision.withdraw(NO_ENDPOINTS), {}
    routes: dict[str, dict[str, RouteAttrs]] = {}
    for ad in ads:
        attrs = route_attrs(ad)
        for addr in addrs:
            length = ad.prefix_length(addr.version)
            prefix = str(ipaddress.ip_network(f"{addr}/{length}", strict=False))
            for name in peers:
                if ad.selects_peer(name):
                    table = routes.setdefault(name, {})
                    table[prefix] = _merge(table.get(prefix), attrs)
    return ANNOUNCE, routes


def route_attrs(ad: BGPAdvertisement) -> RouteAttrs:
    std = tuple(c.as_int for c in ad.communities if not c.large)
    large = tuple((c.values[0], c.values[1], c.values[2]) for c in ad.communities if c.large)
    return RouteAttrs(std, large, ad.local_pref or None).normalized()


def _conflicting(ads: Sequence[BGPAdvertisement]) -> bool:
    """Two ads reaching a common peer with different non-zero LOCAL_PREFs (MetalLB's check)."""
    for i, a in enumerate(ads):
        for b in ads[i + 1 :]:
            if not a.local_pref or not b.local_pref or a.local_pref == b.local_pref:
                continue
            if (
                a.aggregation_length != b.aggregation_length
                or a.aggregation_length_v6 != b.aggregation_length_v6
            ):
                continue
            if not a.peers or not b.peers or set(a.peers) & set(b.peers):
                return True
    return False


# ---- layer 2 ------------------------------------------------------------------------------------


def _base_candidates(inp: Inputs) -> set[str]:
    """Live speakers, or (membership off or not there yet) every existing Node object."""
    return set(inp.members) if inp.members is not None else set(inp.nodes)


def _disqualified(inp: Inputs, node: str) -> str:
    obj = inp.nodes.get(node)
    if network_unavailable(obj):
        return NODE_NETWORK_UNAVAILABLE
    if excluded(obj) and not inp.options.ignore_exclude_lb:
        return NODE_EXCLUDED
    if inp.options.l2_require_node_ready and not node_ready(obj):
        return NODE_NOT_READY
    return ""


def l2_skip_reason(
    inp: Inputs,
    node: str,
    ads: Sequence[L2Advertisement],
    local: bool,
    ep_nodes: frozenset[str],
) -> str:
    """Why `node` is not a layer-2 candidate for a service announced by `ads` ("" when it is).

    The election and `kubectl metallb explain` both use it, so the explanation is the rule.
    """
    if inp.members is not None and node not in inp.members:
        return NOT_LIVE_MEMBER
    own = _disqualified(inp, node)
    if own:
        return own
    node_labels = labels(inp.nodes.get(node))
    if not any(a.selects_node(node_labels) for a in ads):
        return NOT_SELECTED_BY_ADVERTISEMENT
    if local and node not in ep_nodes:
        return NO_LOCAL_ENDPOINTS
    return ""


def l2_weight(inp: Inputs, node: str, ads: Sequence[L2Advertisement]) -> int:
    """The node's election weight: preferredNodeSelectors weights summed over the ads that
    select it."""
    node_labels = labels(inp.nodes.get(node))
    score = 0
    for ad in ads:
        if ad.selects_node(node_labels):
            score += sum(
                p.weight for p in ad.preferred_node_selectors if p.preference.matches(node_labels)
            )
    return score


def _l2_candidates(
    inp: Inputs,
    config: Config,
    sd: ServiceDesired,
    svc: JSON,
    pool: Pool,
    svc_labels: Mapping[str, str],
    local: bool,
    anywhere: bool,
    ep_nodes: frozenset[str],
) -> _L2Case | Decision:
    if not anywhere:
        return Decision.withdraw(NOT_OWNER)
    ads = tuple(a for a in config.l2_advertisements_for(pool.name) if a.selects_service(svc_labels))
    if ads and shares_ip(svc) and any(a.service_selectors for a in ads):
        return Decision.withdraw(SHARED_IP_WITH_SERVICE_SELECTOR)
    my_labels = labels(inp.nodes.get(inp.node))
    if not any(a.selects_node(my_labels) for a in ads):
        return Decision.withdraw(NO_MATCHING_ADVERTISEMENT)
    candidates = {
        node
        for node in _base_candidates(inp)
        if not l2_skip_reason(inp, node, ads, local, ep_nodes)
    }
    weights: dict[str, int] = {}
    for node in candidates:
        score = l2_weight(inp, node, ads)
        if score:
            weights[node] = score
    own = ""
    if inp.node not in candidates:
        own = _disqualified(inp, inp.node)
        if not own and inp.members is not None and inp.node not in inp.members:
            own = NOT_OWNER
        if not own and local and inp.node not in ep_nodes:
            own = NO_LOCAL_ENDPOINTS
        own = own or NOT_OWNER
    return _L2Case(sd, svc, pool, ads, frozenset(candidates), weights, own)


def _elect(inp: Inputs, cases: list[_L2Case]) -> dict[str, ServiceDesired]:
    """Elect one node per shared IP group, then decide each service of the group."""
    groups: dict[str, list[_L2Case]] = {}
    for case in cases:
        groups.setdefault(case.sd.ips[0], []).append(case)
    out: dict[str, ServiceDesired] = {}
    for first_ip, members in groups.items():
        sets = [c.candidates for c in members if c.candidates]
        pool_set: frozenset[str] = frozenset()
        if sets:
            inter = frozenset.intersection(*sets)
            pool_set = inter if inter else frozenset.union(*sets)
        weights: dict[str, int] = {}
        for c in members:
            for n, w in c.weights.items():
                weights[n] = max(weights.get(n, 0), w)
        memo_key = (first_ip, pool_set, tuple(sorted(weights.items())))
        if inp.memo is not None and memo_key in inp.memo.owners:
            owner = inp.memo.owners[memo_key]
        else:
            owner = election.winner(pool_set, first_ip, weights)
            if inp.memo is not None:
                inp.memo.owners[memo_key] = owner
        for c in members:
            out[c.sd.key] = _l2_decide(inp, c, owner)
    return out


def _l2_decide(inp: Inputs, c: _L2Case, owner: str | None) -> ServiceDesired:
    sd = c.sd
    if owner is None or owner != inp.node:
        reason = c.own_reason or NOT_OWNER
        return _with_l2(sd, Decision.withdraw(reason), {}, owner, False)
    my_labels = labels(inp.nodes.get(inp.node))
    mine = [a for a in c.ads if a.selects_node(my_labels)]
    ifaces: frozenset[str] | None
    if not mine or any(not a.interfaces for a in mine):
        ifaces = None
    else:
        ifaces = frozenset(i for a in mine for i in a.interfaces)
    missing = False
    if ifaces is not None and inp.local_interfaces is not None:
        present = ifaces & inp.local_interfaces
        missing = not present
    l2_ips = {ip: ifaces for ip in sd.ips}
    return _with_l2(sd, ANNOUNCE, l2_ips, owner, missing)


def _with_l2(
    sd: ServiceDesired,
    decision: Decision,
    l2_ips: Mapping[str, frozenset[str] | None],
    owner: str | None,
    missing: bool,
) -> ServiceDesired:
    return ServiceDesired(
        sd.key, sd.ips, sd.pool, sd.bgp, decision, sd.orphaned, sd.routes, l2_ips, owner, missing
    )
