"""metallb_allocator_layer2_address: the allocated addresses layer 2 must answer for, which the
MetalLBLayer2AddressNotAnnounced alert joins with the speakers' announcements."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from metallb_py.allocator import AllocationView, Allocator
from metallb_py.config import Config, parse
from metallb_py.controller.metrics import AllocatorCollector, layer2_expected
from tests.lab.config_objects import bgpadv, l2adv, pool


def config(*objs: dict[str, Any]) -> Config:
    cfg, problems = parse(list(objs))
    assert not [p for p in problems if p.is_error], [p.line() for p in problems]
    return cfg


def service(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels or {}}}


CFG = config(
    pool("l2", "192.0.2.0/28"),
    pool("bgp", "203.0.113.0/28"),
    pool("picky", "198.51.100.0/28", "2001:db8::/124"),
    l2adv("all", ipAddressPools=["l2"]),
    bgpadv("routed", ipAddressPools=["bgp"]),
    l2adv(
        "selected",
        ipAddressPools=["picky"],
        serviceSelectors=[{"matchLabels": {"expose": "lan"}}],
    ),
)
SERVICES = {
    "default/web": service("web"),
    "default/routed": service("routed"),
    "default/lan": service("lan", {"expose": "lan"}),
    "default/other": service("other"),
}
ALLOCATIONS = [
    AllocationView("default/web", ("192.0.2.1",), "l2", False, ""),
    AllocationView("default/routed", ("203.0.113.1",), "bgp", False, ""),
    AllocationView("default/lan", ("198.51.100.1", "2001:db8::1"), "picky", False, ""),
    AllocationView("default/other", ("198.51.100.2",), "picky", False, ""),
    AllocationView("default/gone", ("192.0.2.2",), "l2", False, ""),  # Service deleted meanwhile
    AllocationView("default/lost", ("192.0.2.9",), None, True, "no pool"),
]


def test_only_addresses_an_l2advertisement_covers() -> None:
    got = layer2_expected(ALLOCATIONS, CFG, SERVICES.get)
    assert got == [
        ("default/lan", "198.51.100.1", "picky"),
        ("default/lan", "2001:db8::1", "picky"),
        ("default/web", "192.0.2.1", "l2"),
    ]


def test_no_l2advertisement_no_series() -> None:
    bgp_only = config(pool("l2", "192.0.2.0/28"), bgpadv("routed", ipAddressPools=["l2"]))
    assert layer2_expected(ALLOCATIONS, bgp_only, SERVICES.get) == []


def test_collector_exports_one_series_per_address() -> None:
    reg = CollectorRegistry()
    rows = [("default/web", "192.0.2.1", "l2")]
    reg.register(AllocatorCollector(lambda: Allocator(), lambda: rows))
    text = generate_latest(reg).decode()
    assert (
        'metallb_allocator_layer2_address{ip="192.0.2.1",pool="l2",service="default/web"} 1.0'
        in text
    )
    empty = CollectorRegistry()
    empty.register(AllocatorCollector(lambda: None))
    text = generate_latest(empty).decode()
    assert "# TYPE metallb_allocator_layer2_address gauge" in text
    assert "metallb_allocator_layer2_address{" not in text
