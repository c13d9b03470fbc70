"""What changed between two passes, per (service, protocol): pure, so logs and events fire on
transitions only (MetalLB emits `nodeAssigned` on every reconcile; we emit it when this node starts
announcing)."""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from metallb_py.speaker.desired import LB_IP_CHANGED, PROTOCOLS, SERVICE_DELETED, Desired

Announced = Mapping[tuple[str, str], tuple[str, ...]]  # (service key, protocol) -> IPs


class ChangeKind(enum.Enum):
    ANNOUNCED = "announced"  # a `serviceAnnounced` log and a `nodeAssigned` event
    WITHDRAWN = "withdrawn"  # a `serviceWithdrawn` log, with the reason


@dataclass(frozen=True)
class Change:
    """One (service, protocol) that this node started or stopped announcing."""

    kind: ChangeKind
    service: str
    protocol: str
    ips: tuple[str, ...]
    reason: str = ""


def transitions(
    before: Announced, want: Desired, only: Collection[str] | None = None
) -> tuple[dict[tuple[str, str], tuple[str, ...]], list[Change]]:
    """The new announced set and the changes that lead to it, withdrawals of a service first.

    `only`: the services that may have changed since `before` was computed (the others' entries
    are carried over as they are); None looks at every service. With 10 000 services and one
    new, this is what keeps a pass in milliseconds."""
    if only is None:
        after: dict[tuple[str, str], tuple[str, ...]] = {}
        keys: Iterable[str] = want.services
    else:
        after = dict(before)
        keys = [k for k in only if k in want.services]
    changes: list[Change] = []
    for key in keys:
        sd = want.services[key]
        for protocol in PROTOCOLS:
            decision = sd.decision(protocol)
            old = before.get((key, protocol))
            if decision.announce:
                after[(key, protocol)] = sd.ips
                if old == sd.ips:
                    continue
                if old is not None:
                    changes.append(Change(ChangeKind.WITHDRAWN, key, protocol, old, LB_IP_CHANGED))
                changes.append(Change(ChangeKind.ANNOUNCED, key, protocol, sd.ips))
            elif old is not None:
                after.pop((key, protocol), None)
                changes.append(Change(ChangeKind.WITHDRAWN, key, protocol, old, decision.reason))
    gone = before.items() if only is None else _entries_of(before, only)
    for (key, protocol), ips in sorted(gone):
        if key not in want.services:
            after.pop((key, protocol), None)
            changes.append(Change(ChangeKind.WITHDRAWN, key, protocol, ips, SERVICE_DELETED))
    return after, changes


def _entries_of(
    announced: Announced, keys: Collection[str]
) -> list[tuple[tuple[str, str], tuple[str, ...]]]:
    return [
        ((key, protocol), announced[(key, protocol)])
        for key in keys
        for protocol in PROTOCOLS
        if (key, protocol) in announced
    ]
