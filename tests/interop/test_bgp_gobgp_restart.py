"""Graceful restart against GoBGP: after a crash our OPEN carries the Restart State bit.

GoBGP keeps our routes as stale when we go away; when we come back it checks the R bit of our
graceful-restart capability (RFC 4724 §4.1) and logs "restart flag is not set" when it is missing.
"""

from __future__ import annotations

from typing import Any

from tests.lab.bgp_speak import Speak
from tests.lab.daemons import GoBGP
from tests.lab.netns import Lab, wait_for
from tests.lab.topology import build_lan

ROUTER_AS = 64500
OUR_AS = 64512


def gr_neighbor(address: str) -> str:
    return f"""
    [[neighbors]]
      [neighbors.config]
        neighbor-address = "{address}"
        peer-as = {OUR_AS}
      [neighbors.graceful-restart.config]
        enabled = true
        restart-time = 120
      [[neighbors.afi-safis]]
        [neighbors.afi-safis.config]
          afi-safi-name = "ipv4-unicast"
        [neighbors.afi-safis.mp-graceful-restart.config]
          enabled = true
    """


def paths(g: GoBGP, prefix: str) -> list[dict[str, Any]]:
    return list(g.rib("ipv4").get(prefix, []))


def test_restart_flag_after_a_crash(lab: Lab) -> None:
    lan = build_lan(lab, nodes=1)
    node, rtr = lan.nodes[0], lan.router
    g = GoBGP(lab, "router", ROUTER_AS, rtr.ipv4, neighbors_toml=gr_neighbor(node.ipv4)).start()
    args = [
        "--local-as",
        str(OUR_AS),
        "--peer",
        f"{ROUTER_AS}@{rtr.ipv4}",
        "--graceful-restart",
        "--announce",
        "203.0.113.90",
    ]
    sp = Speak(lab, "node1", args).start()
    g.wait_established(node.ipv4)
    wait_for(lambda: paths(g, "203.0.113.90/32"), 15, what="route at GoBGP")

    sp.kill9()  # a crash: no NOTIFICATION
    wait_for(
        lambda: all(p.get("stale") for p in paths(g, "203.0.113.90/32")),
        15,
        what="GoBGP keeps our route as stale",
    )
    sp.start()  # a new process: its first OPEN says it restarted
    g.wait_established(node.ipv4)
    wait_for(
        lambda: [p.get("stale", False) for p in paths(g, "203.0.113.90/32")] == [False],
        15,
        what="route refreshed (no longer stale)",
    )
    assert g.proc is not None
    log = g.proc.output()
    assert "restart flag is not set" not in log, log[-3000:]
    sp.stop()
