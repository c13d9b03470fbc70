"""The speaker's Prometheus metrics under MetalLB's names, read from the libraries' counters at
scrape time (a custom collector: nothing to keep in step, nothing left behind for a peer or an
address that went away).

* `metallb_speaker_announced{service,protocol,node,ip}` 1 while announced.
* `metallb_bgp_*{peer="addr:port"}` from `bgp.Speaker.metrics()`.
* `metallb_bfd_*{peer}` from `bfd.Engine.metrics()`.
* `metallb_layer2_*{ip}` from the announcer's counters.

Counters whose MetalLB name does not end in `_total` are exposed untyped so the name stays exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)

from metallb_py.metrics import SnapshotCollector

BGP_GAUGES = {"session_up", "announced_prefixes_total", "pending_prefixes_total"}
BGP_HELP = {
    "session_up": "BGP session state (1 is up, 0 is down)",
    "updates_total": "Number of BGP UPDATE messages sent",
    "updates_total_received": "Number of BGP UPDATE messages received",
    "announced_prefixes_total": "Number of prefixes currently being advertised on the BGP session",
    "pending_prefixes_total": "Number of prefixes that should be advertised but are not yet",
    "opens_sent": "Number of BGP open messages sent",
    "opens_received": "Number of BGP open messages received",
    "notifications_sent": "Number of BGP notification messages sent",
    "keepalives_sent": "Number of BGP keepalive messages sent",
    "keepalives_received": "Number of BGP keepalive messages received",
    "route_refresh_sent": "Number of BGP route refresh messages sent",
    "total_sent": "Number of total BGP messages sent",
    "total_received": "Number of total BGP messages received",
}
BFD_HELP = {
    "session_up": "BFD session state (1 is up, 0 is down)",
    "control_packet_input": "Number of received BFD control packets",
    "control_packet_output": "Number of sent BFD control packets",
    "echo_packet_input": "Number of received BFD echo packets",
    "echo_packet_output": "Number of sent BFD echo packets",
    "session_up_events": "Number of times the BFD session went up",
    "session_down_events": "Number of times the BFD session went down",
}
L2_HELP = {
    "requests_received": "Number of layer 2 requests received for owned IPs",
    "responses_sent": "Number of layer 2 responses sent for owned IPs",
    "gratuitous_sent": "Number of gratuitous layer 2 packets sent for owned IPs",
}


def _family(name: str, help_: str, labels: list[str], kind: str) -> Any:
    if kind == "gauge":
        return GaugeMetricFamily(name, help_, labels=labels)
    if kind == "counter":
        return CounterMetricFamily(name, help_, labels=labels)
    return UnknownMetricFamily(name, help_, labels=labels)


def _per_peer(
    name: str, help_: str, kind: str, metric: str, table: dict[str, dict[str, float]]
) -> Any:
    """One family labelled by peer, from {peer: {metric: value}} (peers without it left out)."""
    fam = _family(name, help_, ["peer"], kind)
    for peer, values in sorted(table.items()):
        if metric in values:
            fam.add_metric([peer], float(values[metric]))
    return fam


class SpeakerCollector(SnapshotCollector):
    """`source()` returns a snapshot: announced rows, bgp, bfd and layer-2 counters."""

    def families(self, snap: dict[str, Any]) -> Iterator[Metric]:
        announced = GaugeMetricFamily(
            "metallb_speaker_announced",
            "Services being announced from this node",
            labels=["service", "protocol", "node", "ip"],
        )
        for service, protocol, node, ip in snap.get("announced", []):
            announced.add_metric([service, protocol, node, ip], 1.0)
        yield announced

        bgp: dict[str, dict[str, float]] = snap.get("bgp", {})
        for metric, help_ in BGP_HELP.items():
            kind = (
                "gauge"
                if metric in BGP_GAUGES
                else "counter"
                if metric.endswith("_total")
                else "untyped"
            )
            yield _per_peer(f"metallb_bgp_{metric}", help_, kind, metric, bgp)

        bfd: dict[str, dict[str, float]] = snap.get("bfd", {})
        for metric, help_ in BFD_HELP.items():
            kind = "gauge" if metric == "session_up" else "untyped"
            yield _per_peer(f"metallb_bfd_{metric}", help_, kind, metric, bfd)

        l2: dict[str, dict[str, int]] = snap.get("layer2", {})
        for metric, help_ in L2_HELP.items():
            fam = _family(f"metallb_layer2_{metric}", help_, ["ip"], "untyped")
            for ip, value in sorted(l2.get(metric, {}).items()):
                fam.add_metric([ip], float(value))
            yield fam
