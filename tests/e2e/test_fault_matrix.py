"""The fault matrix: what the data plane keeps while a piece of the control plane or the network
fails, and how it comes back. Lab tests with real routers (BIRD, FRR) and real processes.

- API server `kill -9`, restarted on its `--data`: while it is away routes stay at the router and
  ARP is answered; afterwards a new Service is allocated and announced.
- Router (BIRD) `kill -9` and restart: the sessions come back and the routes are re-announced.
- Link flap under BGP + BFD (FRR): BFD takes the session down; BFD, BGP and the route come back.
- Speaker `kill -9` with graceful restart: the router keeps the routes (stale) for the restart
  time; the restarted speaker refreshes them, so End-of-RIB flushes nothing.

Times are bounded generously (two shared cores, several labs at once).
"""

from __future__ import annotations

import time
from typing import Any

from l2 import election
from tests.e2e.test_speaker_bgp import bird_config, bird_paths, log_events
from tests.e2e.test_speaker_l2 import answered_by
from tests.lab.apiserver import start_apiserver
from tests.lab.daemons import Bird, Frr
from tests.lab.netns import wait_for
from tests.lab.speaker_lab import (
    ROUTER_AS,
    SPEAKER_AS,
    Cluster,
    attach_host,
    cluster,
    endpoint_slice,
    metallb,
    service,
)
from tests.lab.topology import L2_POOL4, Lan

BGP_POOL = "203.0.113.0/26"


def bgp_objects(lan: Lan, *, graceful_restart: bool = False) -> list[dict[str, Any]]:
    peer: dict[str, Any] = {
        "myASN": SPEAKER_AS,
        "peerASN": ROUTER_AS,
        "peerAddress": lan.router.ipv4,
    }
    if graceful_restart:
        peer["enableGracefulRestart"] = True
    return [
        metallb("IPAddressPool", "bgp", {"addresses": [BGP_POOL]}),
        metallb("BGPPeer", "bird", peer, "v1beta2"),
        metallb("BGPAdvertisement", "to-bird", {"ipAddressPools": ["bgp"]}),
    ]


def withdrawals(c: Cluster, node: str, svc: str) -> list[dict[str, Any]]:
    return [
        e for e in log_events(c, node, "serviceWithdrawn") if e.get("service") == f"default/{svc}"
    ]


def test_apiserver_killed_and_restarted_while_speakers_run(lan: Lan) -> None:
    nodes = [h.role for h in lan.nodes]
    node_ips = {h.ipv4 for h in lan.nodes}
    data = lan.lab.workdir / "apiserver-state.db"
    Bird(lan.lab, "router", lan.router.ipv4, bird_config(lan)).start()
    with cluster(lan, apiserver_args=["--data", str(data)]) as c:
        c.start_controller()
        c.apply(
            *bgp_objects(lan),
            metallb("IPAddressPool", "l2", {"addresses": [L2_POOL4]}),
            metallb("L2Advertisement", "l2", {"ipAddressPools": ["l2"]}),
        )
        for n in nodes:
            c.start_speaker(n)
        c.wait_ready(timeout=90)
        c.apply(service("web"), endpoint_slice("web", nodes))
        c.apply(
            service("arp", annotations={"metallb.io/address-pool": "l2"}),
            endpoint_slice("arp", nodes),
        )
        (web,) = c.wait_ips("web", timeout=60)
        (arp,) = c.wait_ips("arp", timeout=60)
        owner = election.winner(nodes, arp)
        wait_for(lambda: bird_paths(lan, web) == node_ips, 60, what="web at BIRD via both")
        wait_for(lambda: answered_by(lan, arp) == {owner}, 60, what=f"{owner} answers ARP")

        listen = c.api.url.split("//", 1)[1]  # HOST:PORT, kept across the restart
        c.api.kill()
        # Away for longer than any client timeout or watch retry: nothing may be withdrawn.
        away_until = time.monotonic() + 25
        while time.monotonic() < away_until:
            assert bird_paths(lan, web) == node_ips, "a route was withdrawn while the API was away"
            assert answered_by(lan, arp) == {owner}, "ARP went silent while the API was away"
            time.sleep(2)
        for n in nodes:
            assert c.speakers[n].alive(), c.speakers[n].output()[-2000:]
            assert not withdrawals(c, n, "web") and not withdrawals(c, n, "arp")

        c.api = start_apiserver(
            lab=lan.lab,
            role="router",
            listen=listen,
            workdir=c.api.workdir,
            data=data,
        )
        # Everyone reconnects: a Service created now is allocated and announced.
        c.apply(service("after"), endpoint_slice("after", nodes))
        (after,) = c.wait_ips("after", timeout=90)
        wait_for(lambda: bird_paths(lan, after) == node_ips, 90, what="new Service announced")
        assert bird_paths(lan, web) == node_ips
        assert answered_by(lan, arp) == {owner}
        assert c.service_ips("web") == [web] and c.service_ips("arp") == [arp]
        for n in nodes:
            assert not withdrawals(c, n, "web") and not withdrawals(c, n, "arp")


def test_router_restart_brings_sessions_and_routes_back(lan: Lan) -> None:
    nodes = [h.role for h in lan.nodes]
    node_ips = {h.ipv4 for h in lan.nodes}
    bird = Bird(lan.lab, "router", lan.router.ipv4, bird_config(lan)).start()
    with cluster(lan) as c:
        c.start_controller()
        c.apply(*bgp_objects(lan))
        for n in nodes:
            c.start_speaker(n)
        c.wait_ready(timeout=90)
        c.apply(service("web"), endpoint_slice("web", nodes))
        (web,) = c.wait_ips("web", timeout=60)
        wait_for(lambda: bird_paths(lan, web) == node_ips, 60, what="web at BIRD via both")

        assert bird.proc is not None
        bird.proc.kill()  # the router crashes; its kernel routes go with its protocols' restart
        lan.lab.exec("router", ["ip", "route", "flush", "proto", "bird"])
        assert not bird_paths(lan, web)
        bird = Bird(lan.lab, "router", lan.router.ipv4, bird_config(lan)).start()
        for n in nodes:
            bird.wait_established(n, 90)
        wait_for(lambda: bird_paths(lan, web) == node_ips, 60, what="web re-announced")
        for n in nodes:
            assert len(log_events(c, n, "sessionEstablished")) >= 2


def frr_bfd_config(lan: Lan, router_id: str) -> str:
    lines = [
        "frr defaults traditional",
        f"router bgp {ROUTER_AS}",
        f" bgp router-id {router_id}",
        " no bgp ebgp-requires-policy",
    ]
    for h in lan.nodes:
        lines += [
            f" neighbor {h.ipv4} remote-as {SPEAKER_AS}",
            f" neighbor {h.ipv4} timers connect 1",
            f" neighbor {h.ipv4} bfd",
        ]
    return "\n".join(lines) + "\n"


def frr_next_hops(frr: Frr, ip: str) -> set[str]:
    """Next hops of every path FRR holds for `ip`/32 (one per announcing node)."""
    paths = frr.json(f"show bgp ipv4 unicast {ip}/32").get("paths") or []
    return {hop["ip"] for path in paths for hop in path.get("nexthops", [])}


def test_link_flap_under_bgp_and_bfd(lan: Lan) -> None:
    nodes = [h.role for h in lan.nodes]
    node1 = lan.nodes[0].ipv4
    frr_host = attach_host(lan, "frr", 2)
    frr = Frr(lan.lab, "frr", frr_bfd_config(lan, frr_host.ipv4)).start()
    with cluster(lan) as c:
        c.start_controller()
        c.apply(
            metallb("IPAddressPool", "bgp", {"addresses": [BGP_POOL]}),
            metallb("BFDProfile", "fast", {"receiveInterval": 300, "transmitInterval": 300}),
            metallb(
                "BGPPeer",
                "frr",
                {
                    "myASN": SPEAKER_AS,
                    "peerASN": ROUTER_AS,
                    "peerAddress": frr_host.ipv4,
                    "bfdProfile": "fast",
                },
                "v1beta2",
            ),
            metallb("BGPAdvertisement", "to-frr", {"ipAddressPools": ["bgp"]}),
        )
        for n in nodes:
            c.start_speaker(n)
        c.wait_ready(timeout=90)
        c.apply(service("web"), endpoint_slice("web", nodes))
        (web,) = c.wait_ips("web", timeout=60)
        frr.wait_established(node1, 60)

        def bfd_up(peer: str) -> bool:
            return any(p.get("peer") == peer and p.get("status") == "up" for p in frr.bfd_peers())

        wait_for(lambda: bfd_up(node1), 60, what="BFD up with node1")
        wait_for(lambda: node1 in frr_next_hops(frr, web), 30, what="web via node1 at FRR")

        lan.cut(nodes[0])
        # BFD (3 x 300 ms) notices long before the BGP hold time would.
        wait_for(lambda: not bfd_up(node1), 15, what="BFD down during the flap")
        wait_for(
            lambda: frr.bgp_peer(node1).get("state") != "Established", 15, what="BGP down at FRR"
        )
        time.sleep(3)
        lan.restore(nodes[0])
        frr.wait_established(node1, 90)
        wait_for(lambda: bfd_up(node1), 60, what="BFD up again")
        wait_for(lambda: node1 in frr_next_hops(frr, web), 60, what="web via node1 at FRR again")
        assert c.speakers[nodes[0]].alive()


def test_speaker_kill_9_under_graceful_restart(lan: Lan) -> None:
    nodes = [h.role for h in lan.nodes]
    node_ips = {h.ipv4 for h in lan.nodes}
    bird = Bird(lan.lab, "router", lan.router.ipv4, bird_config(lan)).start()
    with cluster(lan) as c:
        c.start_controller()
        c.apply(*bgp_objects(lan, graceful_restart=True))
        for n in nodes:
            c.start_speaker(n)
        c.wait_ready(timeout=90)
        c.apply(service("web"), endpoint_slice("web", nodes))
        (web,) = c.wait_ips("web", timeout=60)
        wait_for(lambda: bird_paths(lan, web) == node_ips, 60, what="web at BIRD via both")

        c.speakers[nodes[0]].kill()  # SIGKILL: no NOTIFICATION, TCP just goes away
        wait_for(lambda: bird.protocol_state(nodes[0]) != "Established", 30, what="session down")
        # The router keeps node1's route as stale for the restart time (120 s by default).
        gap_until = time.monotonic() + 10
        while time.monotonic() < gap_until:
            assert bird_paths(lan, web) == node_ips, "the router dropped the stale route"
            time.sleep(1)

        c.start_speaker(nodes[0])
        c.wait_ready(nodes[0], timeout=90)
        bird.wait_established(nodes[0], 90)
        wait_for(lambda: log_events(c, nodes[0], "tableSent"), 60, what="table sent again")
        # End-of-RIB has flushed whatever was not refreshed: the route must still be there.
        time.sleep(3)
        assert bird_paths(lan, web) == node_ips
        assert "stale" not in bird.cmd(f"show route {web}/32 all").lower()
