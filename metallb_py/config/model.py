"""The typed, immutable configuration that the controller and the speaker consume.

Everything here is already validated: a Config only holds objects that passed every rule (or won
their conflicts). Tuples are sorted by name so two parses of the same input compare equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from metallb_py.config.addresses import AddressRange, IPAddress, IPNetwork
from metallb_py.config.communities import Community
from metallb_py.config.problems import ObjectRef
from metallb_py.selectors import LabelSelector, any_matches

# What the package re-exports: `metallb_py.config` takes this list as is.
__all__ = [
    "BFDProfile",
    "BGPAdvertisement",
    "Config",
    "L2Advertisement",
    "Peer",
    "Pool",
    "PreferredNodeSelector",
    "ServiceAllocation",
]

Labels = tuple[tuple[str, str], ...]
_NO_IPADDRESSPOOL = ObjectRef("IPAddressPool", "", "")
_NO_L2ADVERTISEMENT = ObjectRef("L2Advertisement", "", "")
_NO_BGPADVERTISEMENT = ObjectRef("BGPAdvertisement", "", "")
_NO_BGPPEER = ObjectRef("BGPPeer", "", "")


def labels_of(mapping: Mapping[str, str] | None) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in (mapping or {}).items()))


@dataclass(frozen=True)
class ServiceAllocation:
    """IPAddressPool.spec.serviceAllocation. `priority` 0 means no priority."""

    priority: int = 0
    namespaces: tuple[str, ...] = ()
    namespace_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()

    def allows(
        self,
        namespace: str,
        namespace_labels: Mapping[str, str],
        service_labels: Mapping[str, str],
    ) -> bool:
        """Does a service in `namespace` with these labels match this pool's restrictions?"""
        if self.namespaces or self.namespace_selectors:
            in_ns = namespace in self.namespaces or any(
                s.matches(namespace_labels) for s in self.namespace_selectors
            )
            if not in_ns:
                return False
        return any_matches(self.service_selectors, service_labels)


@dataclass(frozen=True)
class Pool:
    """An IPAddressPool, or the pool half of a legacy AddressPool (`source.kind == AddressPool`)."""

    name: str
    ranges: tuple[AddressRange, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: ServiceAllocation | None = None
    labels: Labels = ()
    source: ObjectRef = _NO_IPADDRESSPOOL
    created: str = ""

    @property
    def cidrs(self) -> tuple[IPNetwork, ...]:
        return tuple(c for r in self.ranges for c in r.cidrs)

    @property
    def families(self) -> frozenset[int]:
        return frozenset(r.family for r in self.ranges)

    def contains(self, ip: IPAddress) -> bool:
        """In a range, and not a .0/.255 address when avoidBuggyIPs is set."""
        if not any(ip in r for r in self.ranges):
            return False
        return not (self.avoid_buggy_ips and ip.version == 4 and ip.packed[-1] in (0, 255))

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class PreferredNodeSelector:
    weight: int
    preference: LabelSelector


@dataclass(frozen=True)
class L2Advertisement:
    """`pools` is resolved: the names of every valid pool this advertisement applies to."""

    name: str
    pools: tuple[str, ...]
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()
    preferred_node_selectors: tuple[PreferredNodeSelector, ...] = ()
    source: ObjectRef = _NO_L2ADVERTISEMENT

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        return any_matches(self.node_selectors, labels)

    def selects_service(self, labels: Mapping[str, str]) -> bool:
        return any_matches(self.service_selectors, labels)


@dataclass(frozen=True)
class BGPAdvertisement:
    """`pools` is resolved; `communities` are resolved values (aliases already looked up);
    `peers` empty means every peer."""

    name: str
    pools: tuple[str, ...]
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    local_pref: int = 0
    communities: tuple[Community, ...] = ()
    peers: tuple[str, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()
    source: ObjectRef = _NO_BGPADVERTISEMENT

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        return any_matches(self.node_selectors, labels)

    def selects_service(self, labels: Mapping[str, str]) -> bool:
        return any_matches(self.service_selectors, labels)

    def selects_peer(self, peer: str) -> bool:
        return not self.peers or peer in self.peers

    def prefix_length(self, family: int) -> int:
        return self.aggregation_length if family == 4 else self.aggregation_length_v6


@dataclass(frozen=True)
class Peer:
    """A BGPPeer (v1beta2 semantics). Timers are effective values in seconds: hold 0 disables
    keepalives. `password` is resolved from passwordSecret when the Secret was available."""

    name: str
    my_asn: int
    peer_asn: int | None = None
    dynamic_asn: str | None = None
    local_asn: int | None = None
    address: IPAddress | None = None
    interface: str | None = None
    source_address: IPAddress | None = None
    port: int = 179
    hold_time: int = 90
    keepalive_time: int = 30
    connect_time: int | None = None
    router_id: IPAddress | None = None
    node_selectors: tuple[LabelSelector, ...] = ()
    password: str | None = field(default=None, repr=False)  # never in a log line or repr
    password_secret: str | None = None
    bfd_profile: str | None = None
    ebgp_multihop: bool = False
    vrf: str = ""
    enable_graceful_restart: bool = False
    dual_stack_address_family: bool = False
    source: ObjectRef = _NO_BGPPEER
    created: str = ""

    @property
    def identity(self) -> str:
        """What makes two sessions on one node the same session: address or interface, per VRF."""
        base = str(self.address) if self.address is not None else f"interface {self.interface}"
        return f"{base}%{self.vrf}" if self.vrf else base

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        return any_matches(self.node_selectors, labels)


@dataclass(frozen=True)
class BFDProfile:
    """Defaults are FRR's (the reference behaviour) when a field is unset."""

    name: str
    receive_interval: int = 300
    transmit_interval: int = 300
    detect_multiplier: int = 3
    echo_interval: int = 50
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int = 254


@dataclass(frozen=True)
class Config:
    """The whole valid configuration. Look-ups by name are helpers; the tuples are the data."""

    pools: tuple[Pool, ...] = ()
    l2_advertisements: tuple[L2Advertisement, ...] = ()
    bgp_advertisements: tuple[BGPAdvertisement, ...] = ()
    peers: tuple[Peer, ...] = ()
    bfd_profiles: tuple[BFDProfile, ...] = ()
    communities: tuple[tuple[str, Community], ...] = ()
    namespace: str = "metallb-system"

    def pool(self, name: str) -> Pool | None:
        return next((p for p in self.pools if p.name == name), None)

    def peer(self, name: str) -> Peer | None:
        return next((p for p in self.peers if p.name == name), None)

    def bfd_profile(self, name: str) -> BFDProfile | None:
        return next((b for b in self.bfd_profiles if b.name == name), None)

    def l2_advertisements_for(self, pool: str) -> tuple[L2Advertisement, ...]:
        return tuple(a for a in self.l2_advertisements if pool in a.pools)

    def bgp_advertisements_for(self, pool: str) -> tuple[BGPAdvertisement, ...]:
        return tuple(a for a in self.bgp_advertisements if pool in a.pools)

    @property
    def is_empty(self) -> bool:
        return not (self.pools or self.peers or self.l2_advertisements or self.bgp_advertisements)
