"""A hinted pass hands the shells what changed (services, (peer, prefix) pairs, status keys); the
shells then look at those only. Whatever the steps, they end in the state a full comparison
reaches: the same BGP tables applied, the same status objects wanted, the same changed services.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.config.model import Peer
from metallb_py.speaker import desired as d
from metallb_py.speaker.bgp_shell import BgpShell
from metallb_py.speaker.desired import Desired, Inputs, desired_state
from metallb_py.speaker.status import StatusObjects
from tests.lab.config_objects import bgpadv, l2adv, peer, pool
from tests.unit.test_speaker_desired import (
    _AGG,
    EVERYWHERE,
    NODES,
    config,
    node,
    service_steps,
    svc,
)

_L2 = config(pool("l2", "203.0.113.0/24"), l2adv("all"))
_L2_SHRUNK = config(pool("l2", "203.0.113.0/25"), l2adv("all"))
_BGP_SHRUNK = config(
    pool("bgp", "203.0.113.0/25"),
    peer("r1", peerAddress="198.51.100.1"),
    peer("r2", peerAddress="198.51.100.2"),
    bgpadv("host", communities=["64500:2"]),
)


def _changed_by_comparison(previous: Desired | None, want: Desired) -> set[str] | None:
    if previous is None:
        return None
    before = previous.services
    out = {k for k, sd in want.services.items() if before.get(k) is not sd}
    return out | (before.keys() - want.services.keys())


def _status_maps(want: Desired) -> tuple[dict[str, Any], dict[str, Any]]:
    l2 = {k: sd.l2_interfaces for k, sd in want.services.items() if sd.layer2.announce}
    bgp = {k: sd.bgp_peers for k, sd in want.services.items() if sd.bgp.announce}
    return l2, bgp


async def _run(
    steps: list[dict[int, tuple[int, bool, bool] | None]], layer2: bool, orphan: bool
) -> None:
    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    local = {
        name: Peer(
            name=name, my_asn=64512, peer_asn=64500, address=ipaddress.ip_address(f"{base}.{i}")
        )
        for i, name in enumerate(("r1", "r2"), 1)
    }
    hinted_shell, full_shell = BgpShell("node-a"), BgpShell("node-a")
    hinted_status = StatusObjects(None, "metallb-system", "node-a")  # type: ignore[arg-type]
    full_status = StatusObjects(None, "metallb-system", "node-a")  # type: ignore[arg-type]
    memo = d.Memo()
    current = {f"z{i}": svc(f"z{i}", f"203.0.113.{100 + i}") for i in range(120)}
    endpoints: dict[str, list[Any]] = {f"z{i}": EVERYWHERE for i in range(120)}
    cfg = _L2 if layer2 else _AGG
    previous: Desired | None = None
    hinted_routes = 0
    try:
        for n, step in enumerate(steps):
            changed: set[str] = set()
            for i, value in step.items():
                name = f"s{i}"
                changed.add(f"default/{name}")
                if value is None:
                    current.pop(name, None)
                    continue
                host, web, ready = value
                labels = {"tier": "web"} if web else {}
                current[name] = svc(name, f"203.0.113.{host}", labels=labels)
                endpoints[name] = EVERYWHERE if ready else []
            if (
                orphan and n == 1
            ):  # stable services orphaned: they keep what they had, in hinted passes too
                cfg = _L2_SHRUNK if layer2 else _BGP_SHRUNK
            want = desired_state(
                Inputs(
                    config=cfg,
                    services={d.service_key(s): s for s in current.values()},
                    endpoint_slices={f"default/{k}": v for k, v in endpoints.items()},
                    nodes={x["metadata"]["name"]: x for x in (node(m) for m in NODES)},
                    node="node-a",
                    previous=previous,
                    memo=memo,
                    changed=frozenset(changed) if n else None,
                )
            )
            hinted_routes += want.route_changes is not None
            keys = d.changed_services(previous, want)
            expected = _changed_by_comparison(previous, want)
            assert (set(keys) if keys is not None else None) == expected
            peers = {name: local[name] for name in want.peers}
            hinted_shell.apply(None, peers, want.routes, want.route_changes, want.routes_base)
            full_shell.apply(None, peers, want.routes)
            assert hinted_shell.applied == full_shell.applied
            for name, key in hinted_shell.keys.items():
                table = want.routes.get(name, {})
                assert set(hinted_shell.applied[key].values()) <= set(table.values())
                assert len(hinted_shell.applied[key]) == len(table)
            l2, bgp = _status_maps(want)
            hinted_status.set_services(l2, bgp, keys)
            full_status.set_services(l2, bgp)
            for kind in ("l2", "bgp"):
                assert hinted_status.kinds[kind].desired == full_status.kinds[kind].desired
            previous = want
        if not layer2 and not orphan and len(steps) > 1:
            assert hinted_routes  # the hinted paths were taken
    finally:
        await hinted_shell.shutdown(graceful=False)
        await full_shell.shutdown(graceful=False)


@settings(max_examples=40, deadline=None)
@given(
    service_steps(8),
    st.booleans(),
    st.booleans(),
)
def test_hinted_shells_reach_the_state_of_a_full_comparison(
    steps: list[dict[int, tuple[int, bool, bool] | None]], layer2: bool, orphan: bool
) -> None:
    asyncio.run(_run(steps, layer2, orphan))
