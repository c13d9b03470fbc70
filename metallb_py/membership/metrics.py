"""Membership metrics (ours: MetalLB exports none for memberlist), read at scrape time.

* `metallb_membership_members{state}`: members by state (alive, suspect, dead, left).
* `metallb_membership_probe_rtt_seconds`: histogram of answered probes' round trips.
* `metallb_membership_suspicions_total`, `..._suspicions_refuted_total`,
  `..._refutations_total` (we proved ourselves alive), `..._failovers_total` (members declared
  dead or gone: each one moves that member's layer-2 addresses), `..._probes_total`,
  `..._probes_failed_total`, `..._push_pulls_total`.
* `metallb_membership_packets_dropped_total{reason}`: unauthenticated, undecryptable,
  malformed, oversized, wrong-label packets and streams.
* `metallb_membership_local_health`: Lifeguard's local health score (0 is healthy).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from metallb_py.metrics import SnapshotCollector

STATES = ("alive", "suspect", "dead", "left")
COUNTERS = {
    "suspicions_raised": ("suspicions", "Members this node suspected"),
    "suspicions_refuted": ("suspicions_refuted", "Suspicions that ended with the member alive"),
    "refutations": ("refutations", "Times this node refuted a suspicion about itself"),
    "probes_sent": ("probes", "Direct probes sent"),
    "probes_failed": ("probes_failed", "Probes answered by nobody, directly or indirectly"),
    "push_pulls": ("push_pulls", "State exchanges over TCP"),
}


class MembershipCollector(SnapshotCollector):
    def families(self, snap: dict[str, Any]) -> Iterator[Metric]:
        members = GaugeMetricFamily(
            "metallb_membership_members", "Members by state", labels=["state"]
        )
        states = snap.get("states", {})
        for state in STATES:
            members.add_metric([state], float(states.get(state, 0)))
        yield members

        counters = snap.get("counters", {})
        for key, (name, help_) in COUNTERS.items():
            yield CounterMetricFamily(
                f"metallb_membership_{name}", help_, value=float(counters.get(key, 0))
            )
        yield CounterMetricFamily(
            "metallb_membership_failovers",
            "Members declared dead or gone (their layer-2 addresses move)",
            value=float(counters.get("deaths", 0) + counters.get("leaves", 0)),
        )
        dropped = CounterMetricFamily(
            "metallb_membership_packets_dropped",
            "Membership packets and streams dropped, by reason",
            labels=["reason"],
        )
        for reason, n in sorted(snap.get("dropped", {}).items()):
            dropped.add_metric([reason], float(n))
        yield dropped
        yield GaugeMetricFamily(
            "metallb_membership_local_health",
            "Lifeguard local health score (0 is healthy; timeouts scale by score + 1)",
            value=float(snap.get("health", 0)),
        )
        rtt = snap.get("rtt")
        if rtt is not None:
            cumulative = 0
            buckets = []
            for bound, count in zip([*rtt.buckets, float("inf")], rtt.counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            yield HistogramMetricFamily(
                "metallb_membership_probe_rtt_seconds",
                "Round trip of answered probes",
                buckets=buckets,
                sum_value=rtt.total,
            )
