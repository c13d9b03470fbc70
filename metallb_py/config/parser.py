"""`parse(resources) -> (Config, problems)`: the one configuration path of every component.

Each object is checked on its own (schema, then its kind's rules); a broken object is left out with
its problems and the rest applies. Rules between objects (overlapping pools, peers that disagree on
myASN, conflicting localPref, ...) are resolved deterministically: the older object
(creationTimestamp, then name) wins and the other is ignored with a problem naming the rule and the
winner. Webhooks refuse such conflicts up front; this resolution covers what they cannot serialise.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from metallb_py.config import bgppeer_conversion
from metallb_py.config.addresses import (
    AddressError,
    AddressRange,
    IPAddress,
    RangeIndex,
    find_overlaps,
    parse_entry,
)
from metallb_py.config.communities import Community, CommunityError, is_literal, parse_community
from metallb_py.config.durations import DurationError, parse_duration
from metallb_py.config.model import (
    BFDProfile,
    BGPAdvertisement,
    Config,
    L2Advertisement,
    Peer,
    Pool,
    PreferredNodeSelector,
    ServiceAllocation,
    labels_of,
)
from metallb_py.config.objects import DEFAULT_NAMESPACE, Resource, envelope, too_deep
from metallb_py.config.problems import ObjectRef, Problem, Severity, quote, sort_problems
from metallb_py.config.schema_check import MAX_DEPTH, check
from metallb_py.config.schemas import GROUP, KINDS, object_schema
from metallb_py.selectors import (
    LabelSelector,
    any_can_meet,
    parse_selector,
    parse_selector_list,
)

CONTEXT_KINDS = {"Secret", "Node", "Namespace", "Service"}
# Schema violations that are better named by a specific rule.
SCHEMA_RULES: dict[tuple[str, str], str] = {
    **{
        ("BFDProfile", f"spec.{f}"): "bfd-range"
        for f in (
            "receiveInterval",
            "transmitInterval",
            "echoInterval",
            "detectMultiplier",
            "minimumTtl",
        )
    },
    ("BGPAdvertisement", "spec.aggregationLength"): "aggregation-length",
    ("BGPAdvertisement", "spec.aggregationLengthV6"): "aggregation-length",
    ("AddressPool", "spec.protocol"): "legacy-protocol",
    ("BGPPeer", "spec.myASN"): "peer-asn",
    ("BGPPeer", "spec.dynamicASN"): "peer-asn",
}
DEPRECATED_PREFIX = "metallb.universe.tf/"
_NS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass
class _Report:
    problems: list[Problem] = field(default_factory=list)
    lenient: bool = False  # parse(lenient_references=...)

    def add(
        self,
        ref: ObjectRef,
        path: str,
        message: str,
        rule: str,
        severity: Severity = "error",
        related: Iterable[ObjectRef] = (),
    ) -> None:
        self.problems.append(Problem(ref, path, message, rule, severity, tuple(related)))

    def missing(self, ref: ObjectRef, path: str, message: str, rule: str) -> bool:
        """A reference to an object that does not exist (yet): an error, or a warning when lenient
        (the object may simply be created later). True when it counts as an error."""
        self.add(ref, path, message, rule, "warning" if self.lenient else "error")
        return not self.lenient

    def many(self, ref: ObjectRef, errors: Iterable[tuple[str, str]], rule: str) -> int:
        n = 0
        for path, msg in errors:
            self.add(ref, path, msg, rule)
            n += 1
        return n


@dataclass
class _PoolDraft:
    res: Resource
    pool: Pool
    legacy_ads: list[dict[str, Any]] = field(default_factory=list)
    protocol: str = ""

    labels: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.labels = self.pool.label_map()


def parse(
    resources: Iterable[Any],
    *,
    namespace: str = DEFAULT_NAMESPACE,
    lenient_references: bool = False,
) -> tuple[Config, list[Problem]]:
    """Parse metallb.io objects (plus Secrets for passwordSecret) into a Config.

    `lenient_references`: a reference to an object that may simply not exist yet (BFDProfile,
    Secret, Community alias) is a warning, not an error — for webhooks and offline validation,
    where creation order must not matter. At run time (the default) such an object is left out.
    """
    report = _Report(lenient=lenient_references)
    objs = _collect(resources, namespace, report)
    secrets = {o.name: o for o in objs if o.kind == "Secret"}
    by_kind: dict[str, list[Resource]] = {}
    for o in objs:
        if o.is_metallb:
            by_kind.setdefault(o.kind, []).append(o)

    communities = _parse_communities(by_kind.get("Community", []), report)
    bfd = _parse_bfd_profiles(by_kind.get("BFDProfile", []), report)
    pools = _parse_pools(by_kind.get("IPAddressPool", []), by_kind.get("AddressPool", []), report)
    peers = _parse_peers(by_kind.get("BGPPeer", []), secrets, bfd, namespace, report)
    l2 = _parse_l2(by_kind.get("L2Advertisement", []), pools, report)
    bgp = _parse_bgp_ads(by_kind.get("BGPAdvertisement", []), pools, peers, communities, report)
    bgp = _check_bfd_echo(bgp, pools, peers, bfd, report)
    for kind in ("MetalLB",):
        for o in by_kind.get(kind, []):
            _check_metallb(o, report)

    config = Config(
        pools=tuple(sorted((d.pool for d in pools), key=lambda p: p.name)),
        l2_advertisements=tuple(sorted(l2, key=lambda a: a.name)),
        bgp_advertisements=tuple(sorted(bgp, key=lambda a: a.name)),
        peers=tuple(sorted(peers, key=lambda p: p.name)),
        bfd_profiles=tuple(sorted(bfd.values(), key=lambda b: b.name)),
        communities=tuple(sorted(communities.items())),
        namespace=namespace,
    )
    return config, sort_problems(report.problems)


# ---- envelope, namespace, schema ---------------------------------------------------------------


def _collect(resources: Iterable[Any], namespace: str, report: _Report) -> list[Resource]:
    out: list[Resource] = []
    seen: dict[tuple[str, str], Resource] = {}
    for i, raw in enumerate(resources):
        res, why = envelope(raw, i, namespace)
        if res is None:
            kind = (
                raw.get("kind")
                if isinstance(raw, dict) and isinstance(raw.get("kind"), str)
                else "?"
            )
            report.add(
                ObjectRef(kind or "?", namespace, f"<object {i + 1}>"), "-", why, "object-shape"
            )
            continue
        if _shape_problems(res, report):
            continue
        if not res.is_metallb:
            if res.kind in CONTEXT_KINDS and res.group == "":
                if res.namespace == namespace or res.kind in ("Node", "Namespace"):
                    out.append(res)
            else:
                report.add(
                    res.ref,
                    "apiVersion",
                    f"{res.raw.get('apiVersion')} {res.kind} is not MetalLB configuration; ignored",
                    "unknown-kind",
                    "warning",
                )
            continue
        kind = KINDS.get(res.kind)
        if kind is None:
            known = ", ".join(sorted(KINDS))
            report.add(
                res.ref,
                "kind",
                f"unknown kind {quote(res.kind)} in group {GROUP} (known: {known})",
                "unknown-kind",
            )
            continue
        version = kind.version(res.version)
        if version is None:
            served = ", ".join(f"{GROUP}/{v.name}" for v in kind.versions)
            report.add(
                res.ref,
                "apiVersion",
                f"{res.kind} is not served at {quote(res.raw.get('apiVersion'))} "
                f"(served: {served})",
                "api-version",
            )
            continue
        if res.namespace != namespace:
            report.add(
                res.ref,
                "metadata.namespace",
                f"resource must be created in the {namespace} namespace; objects elsewhere "
                "are ignored",
                "namespace",
            )
            continue
        key = (_family_of(res.kind), res.name)
        if key in seen:
            first = seen[key]
            report.add(
                res.ref,
                "metadata.name",
                f"duplicate definition of {res.kind} {quote(res.name)}",
                "duplicate-object",
                related=[first.ref],
            )
            continue
        seen[key] = res
        errors = check(res.raw, object_schema(kind, version))
        if errors:
            for path, msg in errors:
                report.add(res.ref, path, msg, SCHEMA_RULES.get((res.kind, path), "schema"))
            continue
        if version.deprecated:
            report.add(res.ref, "apiVersion", version.deprecated, "deprecated", "warning")
        for ann in sorted(res.annotations):
            if ann.startswith(DEPRECATED_PREFIX):
                new = "metallb.io/" + ann[len(DEPRECATED_PREFIX) :]
                report.add(
                    res.ref,
                    f"metadata.annotations[{ann}]",
                    f"annotation prefix {DEPRECATED_PREFIX} is deprecated, use {new}",
                    "deprecated",
                    "warning",
                )
        out.append(res)
    return out


def _shape_problems(res: Resource, report: _Report) -> bool:
    """Too deep to walk safely, or labels/annotations that are not plain values: left out."""
    deep = too_deep(res.raw, MAX_DEPTH)
    if deep is not None:
        report.add(res.ref, deep, f"nested deeper than {MAX_DEPTH} levels", "object-shape")
        return True
    bad = False
    meta = res.raw["metadata"]
    for key in ("labels", "annotations"):
        items = meta.get(key)
        if items is None:
            continue
        if not isinstance(items, dict):
            report.add(
                res.ref, f"metadata.{key}", f"must be a map, not {quote(items)}", "object-shape"
            )
            bad = True
            continue
        for k, v in items.items():
            if not isinstance(k, str) or not isinstance(v, str | int | float | bool):
                report.add(
                    res.ref,
                    f"metadata.{key}[{quote(k, 66)}]",
                    f"must be a string, not {quote(v)}",
                    "object-shape",
                )
                bad = True
                break
    return bad


def _family_of(kind: str) -> str:
    # IPAddressPool and AddressPool names are checked together by the pool rules, not here.
    return kind


def _by_age(objs: Iterable[Resource]) -> list[Resource]:
    return sorted(objs, key=lambda o: o.age)


# ---- communities and BFD profiles ---------------------------------------------------------------


def _parse_communities(objs: list[Resource], report: _Report) -> dict[str, Community]:
    table: dict[str, Community] = {}
    owner: dict[str, Resource] = {}
    for o in _by_age(objs):
        for i, item in enumerate(o.spec.get("communities") or []):
            path = f"spec.communities[{i}]"
            name, value = str(item["name"]), str(item["value"])
            try:
                parsed = parse_community(value)
            except CommunityError as exc:
                report.add(o.ref, f"{path}.value", str(exc), "community-syntax")
                continue
            if not name or is_literal(name):
                report.add(
                    o.ref,
                    f"{path}.name",
                    f"invalid alias name {quote(name)}: must not be empty or contain ':'",
                    "community-syntax",
                )
                continue
            if name in owner:
                report.add(
                    o.ref,
                    f"{path}.name",
                    f"duplicate definition of community {quote(name)} (already defined by "
                    f"{owner[name].ref})",
                    "community-duplicate-alias",
                    related=[owner[name].ref],
                )
                continue
            table[name] = parsed
            owner[name] = o
    return table


def _parse_bfd_profiles(objs: list[Resource], report: _Report) -> dict[str, BFDProfile]:
    out: dict[str, BFDProfile] = {}
    ranges = {
        "receiveInterval": (10, 60000),
        "transmitInterval": (10, 60000),
        "echoInterval": (10, 60000),
        "detectMultiplier": (2, 255),
        "minimumTtl": (1, 254),
    }
    for o in _by_age(objs):
        spec = o.spec
        bad = False
        for key, (lo, hi) in ranges.items():
            if key in spec and not lo <= spec[key] <= hi:
                report.add(
                    o.ref,
                    f"spec.{key}",
                    f"invalid value {quote(spec[key])}, must be in {lo}-{hi} range",
                    "bfd-range",
                )
                bad = True
        if bad:
            continue
        out[o.name] = BFDProfile(
            name=o.name,
            receive_interval=spec.get("receiveInterval", 300),
            transmit_interval=spec.get("transmitInterval", 300),
            detect_multiplier=spec.get("detectMultiplier", 3),
            echo_interval=spec.get("echoInterval", 50),
            echo_mode=bool(spec.get("echoMode", False)),
            passive_mode=bool(spec.get("passiveMode", False)),
            minimum_ttl=spec.get("minimumTtl", 254),
        )
    return out


# ---- pools --------------------------------------------------------------------------------------


def _parse_ranges(o: Resource, report: _Report) -> tuple[AddressRange, ...] | None:
    ranges: list[AddressRange] = []
    written: list[int] = []  # the index in spec.addresses of each parsed range
    ok = True
    entries = o.spec.get("addresses") or []
    if not entries:
        report.add(o.ref, "spec.addresses", "pool has no prefixes defined", "pool-address")
        return None
    for i, text in enumerate(entries):
        try:
            rng = parse_entry(str(text))
        except AddressError as exc:
            report.add(
                o.ref,
                f"spec.addresses[{i}]",
                f"{exc}; expected a CIDR, a start-end range or an address",
                "pool-address",
            )
            ok = False
            continue
        if rng.host_bits_set:
            first = rng.cidrs[0]
            report.add(
                o.ref,
                f"spec.addresses[{i}]",
                f"{quote(text)} has host bits set; the pool covers {first}",
                "pool-address",
                "warning",
            )
        ranges.append(rng)
        written.append(i)
    for late, early in find_overlaps(ranges):
        report.add(
            o.ref,
            f"spec.addresses[{written[late]}]",
            f"CIDR {quote(ranges[late].entry)} overlaps with {quote(ranges[early].entry)} "
            f"(spec.addresses[{written[early]}]) in the same pool",
            "pool-overlap",
        )
        ok = False
    return tuple(ranges) if ok else None


def _parse_service_allocation(
    o: Resource, report: _Report
) -> tuple[bool, ServiceAllocation | None]:
    raw = o.spec.get("serviceAllocation")
    if raw is None:
        return True, None
    ok = True
    namespaces = [str(n) for n in raw.get("namespaces") or []]
    seen: set[str] = set()
    for i, ns in enumerate(namespaces):
        path = f"spec.serviceAllocation.namespaces[{i}]"
        if ns in seen:
            report.add(
                o.ref,
                path,
                f"duplicate definition in namespaces field: {quote(ns)}",
                "pool-namespaces",
            )
            ok = False
        seen.add(ns)
        if not _NS_NAME.match(ns):
            report.add(o.ref, path, f"invalid namespace name {quote(ns)}", "pool-namespaces")
            ok = False
    ns_sel, errs1 = parse_selector_list(
        raw.get("namespaceSelectors"), "spec.serviceAllocation.namespaceSelectors"
    )
    svc_sel, errs2 = parse_selector_list(
        raw.get("serviceSelectors"), "spec.serviceAllocation.serviceSelectors"
    )
    if report.many(o.ref, errs1 + errs2, "selector"):
        ok = False
    return ok, ServiceAllocation(int(raw.get("priority") or 0), tuple(namespaces), ns_sel, svc_sel)


def _parse_pools(
    pools: list[Resource], legacy: list[Resource], report: _Report
) -> list[_PoolDraft]:
    drafts: list[_PoolDraft] = []
    for o in pools + legacy:
        ranges = _parse_ranges(o, report)
        ok = ranges is not None
        alloc_ok, alloc = _parse_service_allocation(o, report)
        ok = ok and alloc_ok
        draft_ads: list[dict[str, Any]] = []
        protocol = ""
        if o.kind == "AddressPool":
            protocol = str(o.spec.get("protocol") or "")
            draft_ads = list(o.spec.get("bgpAdvertisements") or [])
            if protocol == "layer2" and draft_ads:
                report.add(
                    o.ref,
                    "spec.bgpAdvertisements",
                    "bgpAdvertisements are only allowed with protocol bgp (cannot have "
                    "bgp-advertisements configuration element in a layer2 address pool)",
                    "legacy-protocol",
                )
                ok = False
            seen_ads: set[str] = set()
            for i, ad in enumerate(draft_ads):
                canonical = json.dumps(ad, sort_keys=True, default=str)
                if canonical in seen_ads:
                    report.add(
                        o.ref,
                        f"spec.bgpAdvertisements[{i}]",
                        "duplicate definition of bgpadvertisement",
                        "legacy-duplicate-advertisement",
                    )
                    ok = False
                seen_ads.add(canonical)
        if not ok or ranges is None:
            continue
        pool = Pool(
            name=o.name,
            ranges=ranges,
            auto_assign=bool(o.spec.get("autoAssign", True)),
            avoid_buggy_ips=bool(o.spec.get("avoidBuggyIPs", False)),
            service_allocation=alloc,
            labels=labels_of(o.labels),
            source=o.ref,
            created=o.created,
        )
        drafts.append(_PoolDraft(o, pool, draft_ads, protocol))

    accepted: list[_PoolDraft] = []
    names: dict[str, _PoolDraft] = {}
    index = RangeIndex()
    for d in sorted(drafts, key=lambda d: d.res.age):
        if d.pool.name in names:
            winner = names[d.pool.name]
            report.add(
                d.res.ref,
                "metadata.name",
                f"duplicate definition of pool {quote(d.pool.name)} "
                f"(also defined by {winner.res.ref})",
                "pool-duplicate-name",
                related=[winner.res.ref],
            )
            continue
        clashes = False
        for i, rng in enumerate(d.pool.ranges):
            found = index.overlapping(rng)
            if not found:
                continue
            owner, other = found[0]
            assert isinstance(owner, _PoolDraft)
            owners = {id(w): w for w, _ in found}
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            report.add(
                d.res.ref,
                f"spec.addresses[{i}]",
                f"CIDR {quote(rng.entry)} in pool {quote(d.pool.name)} overlaps with already "
                f"defined CIDR {quote(other.entry)} in pool {quote(owner.pool.name)}{more}",
                "pool-overlap",
                related=[w.res.ref for w in owners.values() if isinstance(w, _PoolDraft)],
            )
            clashes = True
        if clashes:
            continue
        for rng in d.pool.ranges:
            index.add(rng, d)
        names[d.pool.name] = d
        accepted.append(d)
    return accepted


# ---- peers --------------------------------------------------------------------------------------


def _ip(value: Any) -> IPAddress | None:
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None


def _duration(
    o: Resource, spec: dict[str, Any], key: str, report: _Report
) -> tuple[bool, float | None]:
    if key not in spec or spec[key] is None:
        return True, None
    try:
        return True, parse_duration(str(spec[key]))
    except DurationError as exc:
        rule = (
            "peer-connect-time"
            if key == "connectTime"
            else ("peer-hold-time" if key == "holdTime" else "peer-keepalive")
        )
        report.add(o.ref, f"spec.{key}", str(exc), rule)
        return False, None


@dataclass(frozen=True)
class _Asns:
    my: int
    peer: Any
    dynamic: Any
    local: Any


@dataclass(frozen=True)
class _Timers:
    hold: float | None
    keepalive: float | None
    connect: float | None
    parsed: bool  # False: a duration did not parse (already reported)


def _parse_peer(
    o: Resource,
    secrets: dict[str, Resource],
    bfd: dict[str, BFDProfile],
    namespace: str,
    report: _Report,
) -> Peer | None:
    """One BGPPeer; the checks run in a fixed order, since tests pin the problems' order."""
    strict_v1beta1 = o.version == "v1beta1"
    raw = bgppeer_conversion.to_v1beta2(o.raw) if strict_v1beta1 else o.raw
    spec: dict[str, Any] = raw.get("spec") or {}
    before = _error_count(report)
    ref = o.ref
    asns = _peer_asns(ref, spec, report)
    address, source, router_id = _peer_addresses(ref, spec, report)
    timers = _peer_timers(o, spec, strict_v1beta1, report)
    selectors, errs = parse_selector_list(spec.get("nodeSelectors"), "spec.nodeSelectors")
    report.many(ref, errs, "selector")
    password, secret_name = _peer_password(ref, spec, secrets, namespace, report)
    _check_peer_bfd_profile(o, spec, bfd, report)
    _check_peer_deprecated(ref, spec, report)
    if _error_count(report) > before or not timers.parsed:
        return None
    hold_eff, ka_eff = _effective_timers(timers.hold, timers.keepalive)
    bfd_name = spec.get("bfdProfile") or None
    return Peer(
        name=o.name,
        my_asn=asns.my,
        peer_asn=int(asns.peer) if asns.peer else None,
        dynamic_asn=str(asns.dynamic) if asns.dynamic else None,
        local_asn=int(asns.local) if asns.local else None,
        address=address,
        interface=spec.get("interface") or None,
        source_address=source,
        port=int(spec.get("peerPort") or 179),
        hold_time=hold_eff,
        keepalive_time=ka_eff,
        connect_time=int(timers.connect) if timers.connect is not None else None,
        router_id=router_id,
        node_selectors=selectors,
        password=password,
        password_secret=secret_name,
        bfd_profile=bfd_name if bfd_name in bfd else None,
        ebgp_multihop=bool(spec.get("ebgpMultiHop", False)),
        vrf=str(spec.get("vrf") or ""),
        enable_graceful_restart=bool(spec.get("enableGracefulRestart", False)),
        dual_stack_address_family=bool(spec.get("dualStackAddressFamily", False)),
        source=ref,
        created=o.created,
    )


def _error_count(report: _Report) -> int:
    return sum(1 for p in report.problems if p.is_error)


def _peer_asns(ref: ObjectRef, spec: dict[str, Any], report: _Report) -> _Asns:
    """myASN, exactly one of peerASN and dynamicASN, and no eBGP multi-hop on an iBGP peer."""
    my_asn = int(spec.get("myASN") or 0)
    peer_asn = spec.get("peerASN")
    dynamic = spec.get("dynamicASN")
    if my_asn == 0:
        report.add(ref, "spec.myASN", "missing local ASN (myASN must be 1..4294967295)", "peer-asn")
    if not peer_asn and not dynamic:
        report.add(
            ref, "spec.peerASN", "missing peer ASN and dynamicASN: set exactly one", "peer-asn"
        )
    if peer_asn and dynamic:
        report.add(
            ref,
            "spec.dynamicASN",
            "both peer ASN and dynamicASN specified: set exactly one",
            "peer-asn",
        )
    local_asn = spec.get("localASN")
    ibgp = (dynamic == "internal") if dynamic else peer_asn == (local_asn or my_asn)
    if spec.get("ebgpMultiHop") and ibgp:
        report.add(
            ref,
            "spec.ebgpMultiHop",
            "invalid ebgp-multihop parameter set for an ibgp peer",
            "peer-ebgp-multihop",
        )
    return _Asns(my_asn, peer_asn, dynamic, local_asn)


def _optional_ip(
    ref: ObjectRef, spec: dict[str, Any], key: str, what: str, report: _Report
) -> IPAddress | None:
    """`spec[key]` as an address when set; a text that is none is reported as `invalid <what>`."""
    if not spec.get(key):
        return None
    value = _ip(spec[key])
    if value is None:
        report.add(ref, f"spec.{key}", f"invalid {what} {quote(spec[key])}", "peer-address")
    return value


def _peer_addresses(
    ref: ObjectRef, spec: dict[str, Any], report: _Report
) -> tuple[IPAddress | None, IPAddress | None, IPAddress | None]:
    """(peer address, source address, router ID): exactly one of peerAddress and interface, a
    source of the peer's family, an IPv4 router ID."""
    if spec.get("peerAddress") and spec.get("interface"):
        report.add(
            ref,
            "spec.interface",
            "peer has both peerAddress and interface specified: set exactly one",
            "peer-address",
        )
    elif not spec.get("peerAddress") and not spec.get("interface"):
        report.add(
            ref,
            "spec.peerAddress",
            "peer has no peerAddress or interface specified",
            "peer-address",
        )
    address = _optional_ip(ref, spec, "peerAddress", "peer IP", report)
    source = _optional_ip(ref, spec, "sourceAddress", "source IP", report)
    if source is not None and address is not None and source.version != address.version:
        report.add(
            ref,
            "spec.sourceAddress",
            f"source address {source} and peer address {address} are of different families",
            "peer-address",
        )
    router_id = None
    if spec.get("routerID"):
        router_id = _ip(spec["routerID"])
        if router_id is None or router_id.version != 4:
            report.add(
                ref,
                "spec.routerID",
                f"invalid routerID {quote(spec['routerID'])}: must be an IPv4 address (a 32-bit "
                "BGP identifier)",
                "peer-router-id",
            )
    return address, source, router_id


def _peer_timers(
    o: Resource, spec: dict[str, Any], strict_v1beta1: bool, report: _Report
) -> _Timers:
    """holdTime, keepaliveTime and connectTime, each alone and against each other (v1beta1's
    stricter keepalive rule included)."""
    ref = o.ref
    ok_h, hold = _duration(o, spec, "holdTime", report)
    ok_k, keepalive = _duration(o, spec, "keepaliveTime", report)
    ok_c, connect = _duration(o, spec, "connectTime", report)
    if hold is not None and int(hold) != 0 and int(hold) < 3:
        report.add(
            ref,
            "spec.holdTime",
            f"invalid hold time {quote(spec['holdTime'])}: must be 0 or >=3s",
            "peer-hold-time",
        )
    if hold is not None and hold < 0:
        report.add(ref, "spec.holdTime", "hold time must not be negative", "peer-hold-time")
    if keepalive is not None and keepalive < 0:
        report.add(
            ref, "spec.keepaliveTime", "keepalive time must not be negative", "peer-keepalive"
        )
    if strict_v1beta1 and keepalive is not None:
        if hold is None:
            report.add(
                ref,
                "spec.keepaliveTime",
                f"keepaliveTime {quote(spec['keepaliveTime'])} needs an explicit holdTime "
                "(v1beta1)",
                "peer-v1beta1-keepalive",
            )
        elif keepalive >= hold:
            report.add(
                ref,
                "spec.keepaliveTime",
                f"invalid keepaliveTime {quote(spec['keepaliveTime'])}: must be lower than "
                f"holdTime {quote(spec['holdTime'])} (v1beta1)",
                "peer-v1beta1-keepalive",
            )
    elif hold is not None and keepalive is not None and keepalive > hold:
        report.add(
            ref,
            "spec.keepaliveTime",
            f"invalid keepaliveTime {quote(spec['keepaliveTime'])}: must be lower than or equal to "
            f"holdTime {quote(spec['holdTime'])}",
            "peer-keepalive",
        )
    if connect is not None and (connect != int(connect) or not 1 <= connect <= 65535):
        report.add(
            ref,
            "spec.connectTime",
            f"invalid connectTime {quote(spec['connectTime'])}: must be whole seconds between 1s "
            "and 65535s",
            "peer-connect-time",
        )
    return _Timers(hold, keepalive, connect, ok_h and ok_k and ok_c)


def _effective_timers(hold: float | None, keepalive: float | None) -> tuple[int, int]:
    """(hold, keepalive) in seconds: none -> 90/30; hold only -> hold/3; keepalive only -> 3x."""
    if hold is None and keepalive is None:
        return 90, 30
    if hold is None:
        assert keepalive is not None
        return int(keepalive) * 3, int(keepalive)
    if keepalive is None:
        return int(hold), int(hold) // 3
    return int(hold), int(keepalive)


def _peer_password(
    ref: ObjectRef,
    spec: dict[str, Any],
    secrets: dict[str, Resource],
    namespace: str,
    report: _Report,
) -> tuple[str | None, str | None]:
    """(password, Secret name): an inline password or a basic-auth Secret in our namespace."""
    password = spec.get("password") or None
    secret_ref = spec.get("passwordSecret") or {}
    secret_name = secret_ref.get("name") or None
    if password and secret_name:
        report.add(
            ref,
            "spec.passwordSecret",
            "can not have both password and passwordSecret set",
            "peer-password",
        )
    elif secret_name:
        secret_ns = secret_ref.get("namespace") or namespace
        if secret_ns != namespace:
            report.add(
                ref,
                "spec.passwordSecret.namespace",
                f"the Secret must be in the {namespace} namespace",
                "peer-password",
            )
        secret = secrets.get(secret_name)
        if secret is None:
            report.missing(
                ref,
                "spec.passwordSecret.name",
                f"secret {quote(secret_name)} not found",
                "peer-password",
            )
        else:
            password = _secret_password(secret, ref, report)
    return password, secret_name


def _check_peer_bfd_profile(
    o: Resource, spec: dict[str, Any], bfd: dict[str, BFDProfile], report: _Report
) -> None:
    if spec.get("bfdProfile") and spec["bfdProfile"] not in bfd:
        report.missing(
            o.ref,
            "spec.bfdProfile",
            f"peer {o.name} referencing non existing bfd profile {quote(spec['bfdProfile'])}",
            "peer-bfd-profile",
        )


def _check_peer_deprecated(ref: ObjectRef, spec: dict[str, Any], report: _Report) -> None:
    if spec.get("disableMP"):
        report.add(
            ref,
            "spec.disableMP",
            "disable mp is deprecated and has no effect since it's the default behavior now",
            "deprecated",
            "warning",
        )


def _secret_password(secret: Resource, ref: ObjectRef, report: _Report) -> str | None:
    stype = secret.raw.get("type")
    if stype != "kubernetes.io/basic-auth":
        report.add(
            ref,
            "spec.passwordSecret.name",
            f"secret {quote(secret.name)}: secret type mismatch: {quote(stype)}, expected "
            "kubernetes.io/basic-auth",
            "peer-password",
        )
        return None
    data = secret.raw.get("data") or {}
    string_data = secret.raw.get("stringData") or {}
    if "password" in string_data:
        return str(string_data["password"])
    if "password" not in data:
        report.add(
            ref,
            "spec.passwordSecret.name",
            f"secret {quote(secret.name)}: password not specified in the secret",
            "peer-password",
        )
        return None
    try:
        return base64.b64decode(str(data["password"]), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        report.add(
            ref,
            "spec.passwordSecret.name",
            f"secret {quote(secret.name)}: password is not valid base64 text",
            "peer-password",
        )
        return None


def _parse_peers(
    objs: list[Resource],
    secrets: dict[str, Resource],
    bfd: dict[str, BFDProfile],
    namespace: str,
    report: _Report,
) -> list[Peer]:
    parsed: list[tuple[Resource, Peer]] = []
    for o in _by_age(objs):
        peer = _parse_peer(o, secrets, bfd, namespace, report)
        if peer is not None:
            parsed.append((o, peer))
    # Accepted peers indexed by what can make them clash, so a peer is compared only with the
    # ones that share its address, or its VRF with another myASN (not with every other peer).
    accepted: list[Peer] = []
    by_identity: dict[str, list[tuple[Resource, Peer]]] = {}
    by_vrf_asn: dict[str, dict[int, list[tuple[Resource, Peer]]]] = {}
    for o, peer in parsed:
        asns = by_vrf_asn.setdefault(peer.vrf, {})
        other_asn = [w for asn, items in asns.items() if asn != peer.my_asn for w in items]
        asn_clash = [w for w in other_asn if any_can_meet(peer.node_selectors, w[1].node_selectors)]
        same = by_identity.get(peer.identity, [])
        dup_clash = [w for w in same if any_can_meet(peer.node_selectors, w[1].node_selectors)]
        if asn_clash:
            winner = asn_clash[0][1]
            more = f" (and {len(asn_clash) - 1} more)" if len(asn_clash) > 1 else ""
            report.add(
                o.ref,
                "spec.myASN",
                f"myASN {peer.my_asn} differs from myASN {winner.my_asn} of BGPPeer "
                f"{quote(winner.name)}{more}; peers that can run on the same node must have the "
                "same myASN",
                "peer-my-asn",
                related=[w[0].ref for w in asn_clash],
            )
        if dup_clash:
            winner = dup_clash[0][1]
            more = f" (and {len(dup_clash) - 1} more)" if len(dup_clash) > 1 else ""
            report.add(
                o.ref,
                "spec.peerAddress" if peer.address else "spec.interface",
                f"peer {peer.identity} already exists as BGPPeer {quote(winner.name)}{more} on "
                "nodes both can select; use disjoint nodeSelectors",
                "peer-duplicate",
                related=[w[0].ref for w in dup_clash],
            )
        if asn_clash or dup_clash:
            continue
        accepted.append(peer)
        by_identity.setdefault(peer.identity, []).append((o, peer))
        asns.setdefault(peer.my_asn, []).append((o, peer))
    return accepted


# ---- advertisements -----------------------------------------------------------------------------


def _duplicates(o: Resource, values: list[Any], path: str, what: str, report: _Report) -> bool:
    seen: set[str] = set()
    bad = False
    for i, v in enumerate(values):
        if str(v) in seen:
            report.add(
                o.ref,
                f"{path}[{i}]",
                f"duplicate definition of {what} {quote(v)}",
                "advertisement-duplicate",
            )
            bad = True
        seen.add(str(v))
    return bad


def _pool_refs(
    o: Resource, report: _Report
) -> tuple[bool, tuple[str, ...], tuple[LabelSelector, ...]]:
    names = [str(n) for n in o.spec.get("ipAddressPools") or []]
    bad = _duplicates(o, names, "spec.ipAddressPools", "ipAddressPools entry", report)
    sels, errs = parse_selector_list(
        o.spec.get("ipAddressPoolSelectors"), "spec.ipAddressPoolSelectors"
    )
    if report.many(o.ref, errs, "selector"):
        bad = True
    return not bad, tuple(names), sels


def _resolve_pools(
    names: tuple[str, ...], sels: tuple[LabelSelector, ...], pools: list[_PoolDraft]
) -> tuple[str, ...]:
    if not names and not sels:
        return tuple(sorted(d.pool.name for d in pools if d.res.kind == "IPAddressPool"))
    wanted = set(names)
    out = {d.pool.name for d in pools if d.pool.name in wanted}
    if sels:
        for d in pools:
            labels = d.labels
            if any(s.matches(labels) for s in sels):
                out.add(d.pool.name)
    return tuple(sorted(out))


def _warn_missing_pools(
    o: Resource, names: tuple[str, ...], pools: list[_PoolDraft], report: _Report
) -> None:
    known = {d.pool.name for d in pools}
    for i, n in enumerate(names):
        if n not in known:
            report.add(
                o.ref,
                f"spec.ipAddressPools[{i}]",
                f"pool {quote(n)} does not exist or is invalid; nothing is advertised for it",
                "advertisement-reference",
                "warning",
            )


def _parse_l2(
    objs: list[Resource], pools: list[_PoolDraft], report: _Report
) -> list[L2Advertisement]:
    out: list[L2Advertisement] = []
    for o in _by_age(objs):
        ok, names, sels = _pool_refs(o, report)
        nodes, e1 = parse_selector_list(o.spec.get("nodeSelectors"), "spec.nodeSelectors")
        svcs, e2 = parse_selector_list(o.spec.get("serviceSelectors"), "spec.serviceSelectors")
        if report.many(o.ref, e1 + e2, "selector"):
            ok = False
        interfaces = [str(i) for i in o.spec.get("interfaces") or []]
        if _duplicates(o, interfaces, "spec.interfaces", "interface", report):
            ok = False
        preferred: list[PreferredNodeSelector] = []
        for i, item in enumerate(o.spec.get("preferredNodeSelectors") or []):
            sel, errs = parse_selector(
                item.get("preference"), f"spec.preferredNodeSelectors[{i}].preference"
            )
            if report.many(o.ref, errs, "selector") or sel is None:
                ok = False
                continue
            preferred.append(PreferredNodeSelector(int(item["weight"]), sel))
        if not ok:
            continue
        _warn_missing_pools(o, names, pools, report)
        out.append(
            L2Advertisement(
                name=o.name,
                pools=_resolve_pools(names, sels, pools),
                node_selectors=nodes,
                interfaces=tuple(interfaces),
                service_selectors=svcs,
                preferred_node_selectors=tuple(preferred),
                source=o.ref,
            )
        )
    for d in pools:
        if d.protocol == "layer2":
            out.append(L2Advertisement(name=d.pool.name, pools=(d.pool.name,), source=d.res.ref))
    return out


def _resolve_communities(
    o: Resource,
    values: list[Any],
    path: str,
    table: dict[str, Community],
    report: _Report,
) -> tuple[bool, tuple[Community, ...]]:
    ok = not _duplicates(o, values, path, "community", report)
    out: list[Community] = []
    for i, v in enumerate(values):
        text = str(v)
        if is_literal(text):
            try:
                out.append(parse_community(text))
            except CommunityError as exc:
                report.add(o.ref, f"{path}[{i}]", str(exc), "community-syntax")
                ok = False
        elif text in table:
            out.append(table[text])
        elif report.missing(
            o.ref,
            f"{path}[{i}]",
            f"community {quote(text)} is neither A:B, large:A:B:C nor a Community alias "
            "that exists",
            "community-alias",
        ):
            ok = False
    return ok, tuple(out)


def _parse_bgp_ads(
    objs: list[Resource],
    pools: list[_PoolDraft],
    peers: list[Peer],
    communities: dict[str, Community],
    report: _Report,
) -> list[BGPAdvertisement]:
    drafts: list[tuple[Resource, BGPAdvertisement]] = []
    peer_names = {p.name for p in peers}
    for o in _by_age(objs):
        spec = o.spec
        ok, names, sels = _pool_refs(o, report)
        nodes, e1 = parse_selector_list(spec.get("nodeSelectors"), "spec.nodeSelectors")
        svcs, e2 = parse_selector_list(spec.get("serviceSelectors"), "spec.serviceSelectors")
        if report.many(o.ref, e1 + e2, "selector"):
            ok = False
        agg4 = int(spec.get("aggregationLength", 32))
        agg6 = int(spec.get("aggregationLengthV6", 128))
        if svcs and (agg4 != 32 or agg6 != 128):
            report.add(
                o.ref,
                "spec.serviceSelectors",
                "serviceSelectors and non-default aggregation lengths (32/128) are mutually "
                "exclusive",
                "aggregation-service-selectors",
            )
            ok = False
        peers_list = [str(p) for p in spec.get("peers") or []]
        if _duplicates(o, peers_list, "spec.peers", "peer", report):
            ok = False
        c_ok, comms = _resolve_communities(
            o, list(spec.get("communities") or []), "spec.communities", communities, report
        )
        if not (ok and c_ok):
            continue
        _warn_missing_pools(o, names, pools, report)
        for i, p in enumerate(peers_list):
            if p not in peer_names:
                report.add(
                    o.ref,
                    f"spec.peers[{i}]",
                    f"BGPPeer {quote(p)} does not exist or is invalid",
                    "advertisement-reference",
                    "warning",
                )
        ad = BGPAdvertisement(
            name=o.name,
            pools=_resolve_pools(names, sels, pools),
            aggregation_length=agg4,
            aggregation_length_v6=agg6,
            local_pref=int(spec.get("localPref") or 0),
            communities=comms,
            peers=tuple(peers_list),
            node_selectors=nodes,
            service_selectors=svcs,
            source=o.ref,
        )
        drafts.append((o, ad))
    for d in pools:
        if d.protocol != "bgp":
            continue
        legacy = d.legacy_ads or [{}]
        for i, raw in enumerate(legacy):
            path = f"spec.bgpAdvertisements[{i}]"
            c_ok, comms = _resolve_communities(
                d.res,
                list(raw.get("communities") or []),
                f"{path}.communities",
                communities,
                report,
            )
            if not c_ok:
                continue
            name = d.pool.name if len(legacy) == 1 else f"{d.pool.name}-{i}"
            ad = BGPAdvertisement(
                name=name,
                pools=(d.pool.name,),
                aggregation_length=int(raw.get("aggregationLength", 32)),
                aggregation_length_v6=int(raw.get("aggregationLengthV6", 128)),
                local_pref=int(raw.get("localPref") or 0),
                communities=comms,
                source=d.res.ref,
            )
            drafts.append((d.res, ad))
    return _check_pool_advertising(drafts, pools, report)


def _check_pool_advertising(
    drafts: list[tuple[Resource, BGPAdvertisement]], pools: list[_PoolDraft], report: _Report
) -> list[BGPAdvertisement]:
    """Aggregation vs each pool entry, then localPref agreement; a conflict detaches the pool from
    the newer advertisement (or, if the pool is newer, the pool from that advertisement)."""
    by_name = {d.pool.name: d for d in pools}
    # Per pool and family: the widest prefix of any entry, and (entry index, widest prefix) of
    # each entry, so an advertisement is checked against a pool in O(1) unless it fails.
    widest: dict[str, dict[int, int]] = {}
    entries: dict[str, dict[int, list[tuple[int, int]]]] = {}
    for d in pools:
        fams: dict[int, list[tuple[int, int]]] = {}
        for i, rng in enumerate(d.pool.ranges):
            fams.setdefault(rng.family, []).append((i, rng.widest_prefix))
        entries[d.pool.name] = fams
        widest[d.pool.name] = {f: min(w for _, w in items) for f, items in fams.items()}
    result: list[tuple[Resource, BGPAdvertisement]] = []
    for o, ad in drafts:
        keep: list[str] = []
        for pname in ad.pools:
            pd = by_name[pname]
            ok = True
            for family, floor in sorted(widest[pname].items()):
                length = ad.prefix_length(family)
                if length >= floor:
                    continue
                bad = [(i, width) for i, width in entries[pname][family] if length < width]
                i, width = bad[0]
                rng = pd.pool.ranges[i]
                more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                # The pool loses only when it is strictly newer; on a tie the advertisement,
                # whose field the rule is about, does.
                loser, winner = (pd.res, o) if pd.res.created > o.created else (o, pd.res)
                field_path = (
                    "spec.aggregationLength" + ("" if family == 4 else "V6")
                    if loser is o
                    else f"spec.addresses[{i}]"
                )
                if o.kind == "AddressPool":
                    field_path = "spec.bgpAdvertisements"
                report.add(
                    loser.ref,
                    field_path,
                    f"invalid aggregation length {length}: prefix {width} in "
                    f"pool {quote(pname)} is more specific than the aggregation length for "
                    f"addresses {quote(rng.entry)}{more}",
                    "aggregation-length",
                    related=[winner.ref] if winner.ref != loser.ref else [],
                )
                ok = False
            if ok:
                keep.append(pname)
        result.append((o, replace(ad, pools=tuple(keep))))

    accepted: list[tuple[Resource, BGPAdvertisement]] = []
    # pool -> localPref -> advertisements already accepted for that pool with that localPref:
    # only advertisements with a different localPref can conflict.
    by_pool: dict[str, dict[int, list[tuple[Resource, BGPAdvertisement]]]] = {}
    for o, ad in sorted(result, key=lambda x: (x[0].age, x[1].name)):
        keep = []
        for pname in ad.pools:
            clash = _local_pref_clash(ad, by_name[pname].pool.families, by_pool.get(pname, {}))
            if clash is None:
                keep.append(pname)
                continue
            wo, w = clash
            report.add(
                o.ref,
                "spec.localPref" if o.kind == "BGPAdvertisement" else "spec.bgpAdvertisements",
                f"invalid local preference {ad.local_pref}: local preference {w.local_pref} "
                f"was already set by BGPAdvertisement {quote(w.name)} for the same prefixes of "
                f"pool {quote(pname)} on the same nodes and peers",
                "local-preference",
                related=[wo.ref] if wo.ref != o.ref else [],
            )
        kept = replace(ad, pools=tuple(keep))
        accepted.append((o, kept))
        for pname in keep:
            by_pool.setdefault(pname, {}).setdefault(ad.local_pref, []).append((o, kept))
    return [ad for _, ad in accepted]


def _local_pref_clash(
    ad: BGPAdvertisement,
    families: frozenset[int],
    accepted: dict[int, list[tuple[Resource, BGPAdvertisement]]],
) -> tuple[Resource, BGPAdvertisement] | None:
    """The first accepted advertisement of the pool that can meet `ad` with another localPref."""
    if ad.service_selectors:
        return None
    for local_pref, items in accepted.items():
        if local_pref == ad.local_pref:
            continue
        for wo, w in items:
            if w.service_selectors:
                continue
            if all(ad.prefix_length(f) != w.prefix_length(f) for f in families):
                continue
            if ad.peers and w.peers and not set(ad.peers) & set(w.peers):
                continue
            if not any_can_meet(ad.node_selectors, w.node_selectors):
                continue
            return wo, w
    return None


def _check_bfd_echo(
    ads: list[BGPAdvertisement],
    pools: list[_PoolDraft],
    peers: list[Peer],
    bfd: dict[str, BFDProfile],
    report: _Report,
) -> list[BGPAdvertisement]:
    echo_peers = {p.name for p in peers if p.bfd_profile and bfd[p.bfd_profile].echo_mode}
    if not echo_peers:
        return ads
    v6_pools = {d.pool.name for d in pools if 6 in d.pool.families}
    out: list[BGPAdvertisement] = []
    for ad in ads:
        targets = echo_peers & (set(ad.peers) if ad.peers else {p.name for p in peers})
        bad = [p for p in ad.pools if p in v6_pools] if targets else []
        for pname in bad:
            report.add(
                ad.source,
                "spec.peers",
                f"pool {quote(pname)} has IPv6 addresses and is advertised to peer(s) "
                f"{', '.join(sorted(targets))} whose BFD profile has echo mode, which is not "
                "possible",
                "bfd-echo-ipv6",
            )
        out.append(replace(ad, pools=tuple(p for p in ad.pools if p not in bad)) if bad else ad)
    return out


# ---- the operator resource ----------------------------------------------------------------------

BGP_BACKENDS = ("", "native", "frr", "frr-k8s", "frr-k8s-external")


def _check_metallb(o: Resource, report: _Report) -> None:
    spec = o.spec
    if spec.get("bgpBackend", "") not in BGP_BACKENDS:
        report.add(
            o.ref,
            "spec.bgpBackend",
            "invalid BGP Backend, must be one of native, frr, frr-k8s, frr-k8s-external",
            "metallb-resource",
        )
    frrk8s = spec.get("frrk8sConfig") or {}
    if (
        spec.get("bgpBackend") == "frr-k8s-external"
        and not frrk8s.get("namespace")
        and not os.environ.get("FRRK8S_EXTERNAL_NAMESPACE")
    ):
        # MetalLB's operator takes the default from the same variable.
        report.add(
            o.ref,
            "spec.frrk8sConfig.namespace",
            "bgp backend: frrk8s external and no default or user provided namespace",
            "metallb-resource",
        )
    for i, cidr in enumerate(frrk8s.get("alwaysBlock") or []):
        try:
            ipaddress.ip_network(str(cidr).strip(), strict=False)
        except ValueError:
            shown = quote(cidr)[1:-1] if isinstance(cidr, str) else quote(cidr)  # MetalLB's text
            report.add(
                o.ref,
                f"spec.frrk8sConfig.alwaysBlock[{i}]",
                f"invalid CIDR {shown} in AlwaysBlock",
                "metallb-resource",
            )
    for who, key in (("Controller", "controllerTolerations"), ("Speaker", "speakerTolerations")):
        for i, tol in enumerate(spec.get(key) or []):
            secs = tol.get("tolerationSeconds")
            if secs is not None and secs > 0 and tol.get("effect") != "NoExecute":
                report.add(
                    o.ref,
                    f"spec.{key}[{i}]",
                    f"{who}Toleration effect must be NoExecute when tolerationSeconds is set",
                    "metallb-resource",
                )
    for who, key in (("Controller", "controllerConfig"), ("Speaker", "speakerConfig")):
        affinity = (spec.get(key) or {}).get("affinity") or {}
        for kind in ("NodeAffinity", "PodAffinity", "PodAntiAffinity"):
            field_name = kind[0].lower() + kind[1:]
            terms = (affinity.get(field_name) or {}).get(
                "preferredDuringSchedulingIgnoredDuringExecution"
            ) or []
            for i, term in enumerate(terms):
                weight = term.get("weight") if isinstance(term, dict) else None
                if not isinstance(weight, int) or not 1 <= weight <= 100:
                    report.add(
                        o.ref,
                        f"spec.{key}.affinity.{field_name}"
                        f".preferredDuringSchedulingIgnoredDuringExecution[{i}].weight",
                        f"{who}Config {kind} set with invalid weight for preferred scheduling term",
                        "metallb-resource",
                    )
