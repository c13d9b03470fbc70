"""BFD tears BGP down (Cease 10, RFC 9384) while TCP itself is fine, then BGP reconnects.

FRR in the router runs bgpd and bfdd, but its BGP neighbour does not use BFD: only our side can
be the one that tears the session down. UDP 3784 is dropped on node1 by a table of this test's
own; TCP 179 keeps flowing, so the BGP hold timer (90 s) never fires.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from tests.lab.bfd_lab import REPO, frr_status
from tests.lab.daemons import Frr
from tests.lab.netns import wait_for
from tests.lab.topology import Lan


def _lines(text: str) -> list[dict[str, Any]]:
    out = []
    for raw in text.splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def test_bfd_down_tears_bgp_down_with_cease_10_and_bgp_reconnects(lan: Lan) -> None:
    lab, node, router = lan.lab, lan.nodes[0], lan.router
    frr = Frr(
        lab,
        "router",
        f"""
        frr defaults traditional
        !
        bfd
         peer {node.ipv4}
          receive-interval 300
          transmit-interval 300
         !
        !
        router bgp 64500
         bgp router-id {router.ipv4}
         no bgp ebgp-requires-policy
         neighbor {node.ipv4} remote-as 64512
         neighbor {node.ipv4} timers connect 1
        """,
    ).start()
    ours = lab.spawn(
        "node1",
        [
            sys.executable,
            "-m",
            "tests.lab.bfd_bgp_runner",
            "--local-as=64512",
            f"--router-id={node.ipv4}",
            "--peer-as=64500",
            f"--peer={router.ipv4}",
            "--connect-retry=2",
        ],
        name="bfd-bgp",
        env={"PYTHONPATH": REPO},
    )
    frr.wait_established(node.ipv4, timeout=30)
    wait_for(lambda: frr_status(frr, node.ipv4) == "up", 20, what="BFD up at FRR")
    wait_for(
        lambda: any(
            ln.get("event") == "bfdStateChange" and ln.get("state") == "up"
            for ln in _lines(ours.output())
        ),
        10,
        what="our BFD up",
    )

    lab.nft(
        "node1",
        "table inet bfd_bgp_test {\n"
        " chain in { type filter hook input priority 0; udp dport 3784 drop; }\n"
        " chain out { type filter hook output priority 0; udp dport 3784 drop; }\n"
        "}\n",
    )
    start = time.monotonic()
    wait_for(
        lambda: frr.bgp_peer(node.ipv4).get("state") != "Established",
        10,
        what="FRR's BGP session torn down",
    )
    assert time.monotonic() - start < 5 * 0.9, "torn down by BFD, long before the 90 s hold"
    neighbor = frr.json(f"show bgp neighbor {node.ipv4}").get(node.ipv4, {})
    assert neighbor.get("lastErrorCodeSubcode") == "060A", neighbor  # Cease / 10
    assert neighbor.get("lastNotificationReason") == "Cease/BFD Down"
    assert neighbor.get("lastResetDueTo") == "BGP Notification received"
    logs = _lines(ours.output())
    assert any(ln.get("event") == "bgpSessionTornDownByBfd" for ln in logs)
    downs = [ln for ln in logs if ln.get("event") == "sessionDown"]
    assert downs and "BFD" in downs[-1]["reason"], downs

    # BFD is still blocked; BGP does not wait for it and comes back after ConnectRetry.
    frr.wait_established(node.ipv4, timeout=30)
    assert frr_status(frr, node.ipv4) != "up"
