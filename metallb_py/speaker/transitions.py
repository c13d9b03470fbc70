"""What changed between two passes, per (service, protocol): pure, so logs and events fire on
transitions only (MetalLB emits `nodeAssigned` on every reconcile; we emit it when this node starts
announcing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from metallb_py.speaker.desired import LB_IP_CHANGED, PROTOCOLS, SERVICE_DELETED, Desired

Announced = Mapping[tuple[str, str], tuple[str, ...]]  # (service key, protocol) -> IPs


@dataclass(frozen=True)
class Change:
    """`announced` (a `serviceAnnounced` log and a `nodeAssigned` event) or `withdrawn`."""

    kind: str
    service: str
    protocol: str
    ips: tuple[str, ...]
    reason: str = ""


def transitions(
    before: Announced, want: Desired
) -> tuple[dict[tuple[str, str], tuple[str, ...]], list[Change]]:
    """The new announced set and the changes that lead to it, withdrawals of a service first."""
    after: dict[tuple[str, str], tuple[str, ...]] = {}
    changes: list[Change] = []
    for key, sd in want.services.items():
        for protocol in PROTOCOLS:
            decision = sd.decision(protocol)
            old = before.get((key, protocol))
            if decision.announce:
                after[(key, protocol)] = sd.ips
                if old == sd.ips:
                    continue
                if old is not None:
                    changes.append(Change("withdrawn", key, protocol, old, LB_IP_CHANGED))
                changes.append(Change("announced", key, protocol, sd.ips))
            elif old is not None:
                changes.append(Change("withdrawn", key, protocol, old, decision.reason))
    for (key, protocol), ips in sorted(before.items()):
        if key not in want.services:
            changes.append(Change("withdrawn", key, protocol, ips, SERVICE_DELETED))
    return after, changes
