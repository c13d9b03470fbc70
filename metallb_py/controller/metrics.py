"""metallb_allocator_* metrics, read from the allocator at scrape time (label `pool`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from metallb_py.allocator import Allocator

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


class AllocatorCollector(Collector):
    def __init__(self, get_allocator: Callable[[], Allocator | None]) -> None:
        self.get_allocator = get_allocator

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
