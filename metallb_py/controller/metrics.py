"""metallb_allocator_* metrics, read from the allocator at scrape time (label `pool`).

`metallb_allocator_layer2_address{service,ip,pool}` (ours) is 1 for each allocated address that
an L2Advertisement covers: joined with the speakers' `metallb_speaker_announced{protocol="layer2"}`
it finds an address nobody answers ARP/NDP for (no eligible node, or the elected speaker down).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from metallb_py.allocator import Allocator
from metallb_py.allocator.allocator import AllocationView
from metallb_py.config import Config

Layer2Rows = Iterable[tuple[str, str, str]]

_GAUGES = (
    ("metallb_allocator_addresses_total", "Number of usable IP addresses, per pool", "addresses"),
    ("metallb_allocator_ipv4_addresses_total", "Number of usable IPv4 addresses, per pool", "v4"),
    ("metallb_allocator_ipv6_addresses_total", "Number of usable IPv6 addresses, per pool", "v6"),
    ("metallb_allocator_addresses_in_use_total", "Number of IP addresses in use, per pool", "use"),
    (
        "metallb_allocator_ipv4_addresses_in_use_total",
        "Number of IPv4 addresses in use, per pool",
        "use4",
    ),
    (
        "metallb_allocator_ipv6_addresses_in_use_total",
        "Number of IPv6 addresses in use, per pool",
        "use6",
    ),
    (
        "metallb_allocator_services_allocated_total",
        "Number of services holding an allocation, per pool",
        "services",
    ),
)


def layer2_expected(
    allocations: Iterable[AllocationView],
    config: Config,
    get_service: Callable[[str], Mapping[str, Any] | None],
) -> list[tuple[str, str, str]]:
    """(service, ip, pool) for each allocated address whose pool has an L2Advertisement that
    selects the Service (its serviceSelectors); node selection is the speakers' business."""
    out: list[tuple[str, str, str]] = []
    for view in allocations:
        if view.pool is None:
            continue
        ads = config.l2_advertisements_for(view.pool)
        if not ads:
            continue
        svc = get_service(view.key)
        if svc is None:
            continue
        labels = (svc.get("metadata") or {}).get("labels") or {}
        if any(ad.selects_service(labels) for ad in ads):
            out.extend((view.key, ip, view.pool) for ip in view.ips)
    return sorted(out)


class AllocatorCollector(Collector):
    def __init__(
        self,
        get_allocator: Callable[[], Allocator | None],
        layer2: Callable[[], Layer2Rows] = lambda: (),
    ) -> None:
        self.get_allocator = get_allocator
        self.layer2 = layer2

    def collect(self) -> Iterator[GaugeMetricFamily]:
        alloc = self.get_allocator()
        stats = alloc.stats() if alloc is not None else {}
        for name, doc, field in _GAUGES:
            family = GaugeMetricFamily(name, doc, labels=["pool"])
            for pool, s in sorted(stats.items()):
                value = {
                    "addresses": s.addresses,
                    "v4": s.addresses_v4,
                    "v6": s.addresses_v6,
                    "use": s.in_use,
                    "use4": s.in_use_v4,
                    "use6": s.in_use_v6,
                    "services": s.services,
                }[field]
                family.add_metric([pool], float(value))
            yield family
        orphaned = GaugeMetricFamily(
            "metallb_allocator_orphaned_addresses",
            "Addresses kept for services although the configuration no longer allows them",
        )
        orphaned.add_metric([], float(alloc.orphaned_addresses if alloc else 0))
        yield orphaned
        layer2 = GaugeMetricFamily(
            "metallb_allocator_layer2_address",
            "Allocated addresses an L2Advertisement covers (a speaker must answer ARP/NDP)",
            labels=["service", "ip", "pool"],
        )
        for service, ip, pool in self.layer2():
            layer2.add_metric([service, ip, pool], 1.0)
        yield layer2
