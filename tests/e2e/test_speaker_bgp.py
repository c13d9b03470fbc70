"""`metallb-py speaker` over BGP, end to end: the embedded API server, the controller, a speaker
in each node namespace, a real BIRD (eBGP, both nodes, kernel ECMP) and a real FRR (iBGP, only the
nodes its BGPPeer selects, TCP MD5 password from a Secret, BFD)."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from tests.lab.daemons import Bird, Frr
from tests.lab.netns import wait_for
from tests.lab.speaker_lab import (
    NS,
    ROUTER_AS,
    SPEAKER_AS,
    Cluster,
    attach_host,
    cluster,
    endpoint_slice,
    metallb,
    service,
)
from tests.lab.topology import Lan

PASSWORD = "s3cret-md5"


def bird_config(lan: Lan) -> str:
    body = "protocol kernel { ipv4 { export all; }; merge paths on; }\n"
    for h in lan.nodes:
        body += f"""
        protocol bgp {h.role} {{
          local {lan.router.ipv4} as {ROUTER_AS};
          neighbor {h.ipv4} as {SPEAKER_AS};
          connect retry time 1;
          ipv4 {{ import all; export none; }};
        }}
        """
    return body


def frr_config(lan: Lan, router_id: str) -> str:
    lines = [
        "frr defaults traditional",
        f"router bgp {SPEAKER_AS}",
        f" bgp router-id {router_id}",
        " no bgp ebgp-requires-policy",
    ]
    for h in lan.nodes:
        lines += [
            f" neighbor {h.ipv4} remote-as {SPEAKER_AS}",
            f" neighbor {h.ipv4} password {PASSWORD}",
            f" neighbor {h.ipv4} timers connect 1",
            f" neighbor {h.ipv4} bfd",
        ]
    return "\n".join(lines) + "\n"


def bird_paths(lan: Lan, prefix: str) -> set[str]:
    """Next hops of the kernel route BIRD installed (ECMP shows one per node)."""
    out = lan.lab.exec("router", ["ip", "-j", "route", "show", prefix])
    routes = json.loads(out or "[]")
    hops: set[str] = set()
    for r in routes:
        if "gateway" in r:
            hops.add(r["gateway"])
        for nh in r.get("nexthops") or []:
            hops.add(nh["gateway"])
    return hops


def frr_route(frr: Frr, prefix: str) -> dict[str, Any]:
    got = frr.json(f"show bgp ipv4 unicast {prefix}")
    paths = got.get("paths") or []
    return dict(paths[0]) if paths else {}


def bird_since(bird: Bird, proto: str) -> str:
    for line in bird.cmd(f"show protocols {proto}").splitlines():
        parts = line.split()
        if parts and parts[0] == proto:
            return " ".join(parts[4:6])
    return ""


def frr_established_count(frr: Frr, addr: str) -> int:
    """How many times FRR's session with `addr` became Established (a reset adds one)."""
    got = frr.json(f"show bgp neighbors {addr}").get(addr, {})
    return int(got.get("connectionsEstablished", 0))


def bgp_status_for(c: Cluster, service_name: str) -> dict[str, list[str]]:
    out = {}
    for obj in c.items("servicebgpstatuses", selector=f"metallb.io/service-name={service_name}"):
        st = obj.get("status") or {}
        out[st["node"]] = st.get("peers", [])
    return out


def log_events(c: Cluster, node: str, event: str) -> list[dict[str, Any]]:
    return [ln for ln in c.speaker_log(node) if ln.get("event") == event]


def frr_peer(address: str, **extra: Any) -> dict[str, Any]:
    """The FRR router's BGPPeer: rack a only, a password from a Secret, BFD."""
    spec = {
        "myASN": SPEAKER_AS,
        "peerASN": SPEAKER_AS,
        "peerAddress": address,
        "nodeSelectors": [{"matchLabels": {"rack": "a"}}],
        "passwordSecret": {"name": "frr-password", "namespace": NS},
        "bfdProfile": "fast",
        **extra,
    }
    return metallb("BGPPeer", "frr", spec, "v1beta2")


def test_bgp_announcements_end_to_end(lan: Lan) -> None:
    lab = lan.lab
    frr_host = attach_host(lan, "frr", 2)
    bird = Bird(lab, "router", lan.router.ipv4, bird_config(lan)).start()
    frr = Frr(lab, "frr", frr_config(lan, frr_host.ipv4)).start()
    node1, node2 = (h.ipv4 for h in lan.nodes)
    with cluster(lan, nodes={"node1": {"rack": "a"}, "node2": {"rack": "b"}}) as c:
        c.start_controller()
        c.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/basic-auth",
                "metadata": {"name": "frr-password", "namespace": NS},
                "stringData": {"password": PASSWORD},
            },
            metallb("IPAddressPool", "bgp", {"addresses": ["203.0.113.0/26"]}),
            metallb(
                "IPAddressPool", "agg", {"addresses": ["203.0.113.64/26"], "autoAssign": False}
            ),
            metallb(
                "Community", "names", {"communities": [{"name": "gold", "value": "64512:300"}]}
            ),
            metallb("BFDProfile", "fast", {"receiveInterval": 300, "transmitInterval": 300}),
            metallb(
                "BGPPeer",
                "bird",
                {
                    "myASN": SPEAKER_AS,
                    "peerASN": ROUTER_AS,
                    "peerAddress": lan.router.ipv4,
                    "enableGracefulRestart": True,
                },
                "v1beta2",
            ),
            frr_peer(frr_host.ipv4),
            metallb("BGPAdvertisement", "to-bird", {"ipAddressPools": ["bgp"], "peers": ["bird"]}),
            metallb(
                "BGPAdvertisement",
                "to-frr",
                {
                    "ipAddressPools": ["bgp"],
                    "peers": ["frr"],
                    "localPref": 150,
                    "communities": ["64512:100", "gold", "large:64512:1:2"],
                },
            ),
            metallb(
                "BGPAdvertisement",
                "aggregate",
                {"ipAddressPools": ["agg"], "aggregationLength": 28, "peers": ["bird"]},
            ),
        )
        c.start_speaker("node1")
        c.start_speaker("node2")
        c.wait_ready(timeout=60)
        bird.wait_established("node1", 30)
        bird.wait_established("node2", 30)
        # The password comes from the Secret: FRR refuses the session without it.
        frr.wait_established(node1, 30)

        # -- ETP Cluster: every node announces; ECMP at the router -----------------------------
        c.apply(service("web"), endpoint_slice("web", ["node1"]))
        (web,) = c.wait_ips("web")
        wait_for(lambda: bird_paths(lan, web) == {node1, node2}, 15, what="ECMP route via both")
        # Peer nodeSelectors: only node1 (rack a) talks to FRR.
        assert frr.bgp_peer(node2).get("state") != "Established"
        path = wait_for(lambda: frr_route(frr, f"{web}/32"), 15, what="route at FRR")
        assert isinstance(path, dict)
        assert path["locPrf"] == 150
        assert sorted(path["community"]["list"]) == ["64512:100", "64512:300"]
        assert path["largeCommunity"]["string"] == "64512:1:2"
        assert path["nexthops"][0]["ip"] == node1
        wait_for(
            lambda: bgp_status_for(c, "web") == {"node1": ["bird", "frr"], "node2": ["bird"]},
            15,
            what="ServiceBGPStatus per node",
        )
        sessions = {o["metadata"]["name"]: o["status"] for o in c.items("bgpsessionstates")}
        wait_for(
            lambda: (
                {
                    o["metadata"]["name"]: (o["status"]["state"], o["status"]["bfdState"])
                    for o in c.items("bgpsessionstates")
                }
                == {
                    "node1-bird": ("Established", "Disabled"),
                    "node1-frr": ("Established", "Up"),
                    "node2-bird": ("Established", "Disabled"),
                }
            ),
            20,
            what="BGPSessionState objects",
        )
        metrics = c.metrics("node1")
        labels = f'ip="{web}",node="node1",protocol="bgp",service="default/web"'
        assert f"metallb_speaker_announced{{{labels}}} 1.0" in metrics
        assert f'metallb_bgp_session_up{{peer="{frr_host.ipv4}:179"}} 1.0' in metrics
        assert f'metallb_bfd_session_up{{peer="{frr_host.ipv4}"}} 1.0' in metrics

        # -- ETP Local follows the endpoints --------------------------------------------------
        c.apply(service("local", local=True), endpoint_slice("local", ["node2"]))
        (local_ip,) = c.wait_ips("local")
        wait_for(lambda: bird_paths(lan, local_ip) == {node2}, 15, what="local route via node2")
        c.apply(endpoint_slice("local", ["node1"]))
        wait_for(lambda: bird_paths(lan, local_ip) == {node1}, 15, what="local route via node1")

        # -- two services inside one aggregate ------------------------------------------------
        for name, ip in (("agg1", "203.0.113.65"), ("agg2", "203.0.113.66")):
            c.apply(
                service(name, annotations={"metallb.io/loadBalancerIPs": ip}),
                endpoint_slice(name, ["node1"]),
            )
        wait_for(lambda: bird_paths(lan, "203.0.113.64/28") == {node1, node2}, 15, what="aggregate")
        assert not bird_paths(lan, "203.0.113.65/32")
        c.delete("service", "agg1")
        wait_for(lambda: not bgp_status_for(c, "agg1"), 15, what="agg1 withdrawn")
        assert bird_paths(lan, "203.0.113.64/28") == {node1, node2}, "aggregate kept for agg2"
        c.delete("service", "agg2")
        wait_for(lambda: not bird_paths(lan, "203.0.113.64/28"), 15, what="aggregate withdrawn")

        # -- a configuration change resets only the sessions it touches ------------------------
        since = {n: bird_since(bird, n) for n in ("node1", "node2")}
        frr_epoch = frr_established_count(frr, node1)
        assert frr_epoch >= 1
        time.sleep(1.1)  # so a reset would show a different time
        c.apply(
            metallb(
                "BGPAdvertisement",
                "to-frr",
                {
                    "ipAddressPools": ["bgp"],
                    "peers": ["frr"],
                    "localPref": 150,
                    "communities": ["64512:100", "64512:200", "gold", "large:64512:1:2"],
                },
            )
        )
        wait_for(
            lambda: "64512:200" in frr_route(frr, f"{web}/32").get("community", {}).get("list", []),
            15,
            what="new community at FRR",
        )
        assert frr_established_count(frr, node1) == frr_epoch, (
            "FRR session was reset by an ad change"
        )
        assert {n: bird_since(bird, n) for n in since} == since
        # Changing the FRR peer resets that session only.
        c.apply(frr_peer(frr_host.ipv4, holdTime="60s"))
        wait_for(
            lambda: (
                frr.bgp_peer(node1).get("state") == "Established"
                and frr_established_count(frr, node1) > frr_epoch
            ),
            30,
            what="FRR session re-established with the new hold time",
        )
        assert {n: bird_since(bird, n) for n in since} == since, "BIRD sessions were reset"

        # -- BFD down tears the BGP session down ---------------------------------------------
        wait_for(lambda: any(p.get("status") == "up" for p in frr.bfd_peers()), 20, what="BFD up")
        lab.nft(
            "frr",
            "table inet speaker_bfd {\n chain in {\n  type filter hook input priority 0;\n"
            "  udp dport 3784 drop\n }\n}\n",
        )
        wait_for(lambda: log_events(c, "node1", "bgpSessionTornDownByBfd"), 15, what="BFD teardown")
        lab.exec("frr", ["nft", "delete", "table", "inet", "speaker_bfd"])
        frr.wait_established(node1, 30)

        # -- withdraw on delete ---------------------------------------------------------------
        c.delete("service", "web")
        wait_for(lambda: not bird_paths(lan, web), 15, what="web withdrawn at BIRD")
        wait_for(lambda: not frr_route(frr, f"{web}/32"), 15, what="web withdrawn at FRR")
        wait_for(lambda: not bgp_status_for(c, "web"), 15, what="ServiceBGPStatus removed")
        assert any(
            ln.get("reason") == "serviceDeleted" and ln.get("service") == "default/web"
            for ln in log_events(c, "node1", "serviceWithdrawn")
        )

        # -- a conflicting peer (same address, same node) is ignored with a Warning event
        # naming the rule; the session it would have clashed with is untouched ---------------
        c.apply(
            metallb(
                "BGPPeer",
                "zz-duplicate",
                {"myASN": SPEAKER_AS, "peerASN": ROUTER_AS, "peerAddress": lan.router.ipv4},
                "v1beta2",
            )
        )

        def conflict_event() -> bool:
            return any(
                e.get("reason") == "ConfigurationProblem"
                and e.get("type") == "Warning"
                and (e.get("involvedObject") or {}).get("name") == "zz-duplicate"
                and "(rule " in e.get("message", "")
                for e in c.items("events", namespace=NS)
            )

        wait_for(conflict_event, 20, what="Warning event on the ignored BGPPeer")
        assert bird.protocol_state("node1") == "Established"
        c.delete("bgppeer", "zz-duplicate", NS)

        # -- a crashed speaker comes back with everything -------------------------------------
        c.speakers["node1"].kill()
        c.start_speaker("node1")
        c.wait_ready("node1", timeout=60)
        frr.wait_established(node1, 30)
        wait_for(lambda: bird_paths(lan, local_ip) == {node1}, 20, what="local route back")
        wait_for(
            lambda: len(c.items("servicebgpstatuses", selector="metallb.io/node=node1")) == 1,
            15,
            what="node1 status objects (no duplicates)",
        )

        # -- SIGTERM: exit within 2 s; FRR (no graceful restart) withdraws at once, BIRD
        # (graceful restart negotiated) keeps the routes for the restart time -----------------
        c.apply(service("last"), endpoint_slice("last", ["node1"]))
        (last,) = c.wait_ips("last")
        wait_for(lambda: bird_paths(lan, last) == {node1, node2}, 15, what="last via both")
        wait_for(lambda: frr_route(frr, f"{last}/32"), 15, what="last at FRR")
        for node in ("node1", "node2"):
            proc = c.speakers[node]
            started = time.monotonic()
            proc.signal(signal.SIGTERM)
            assert proc.wait(5) == 0
            assert time.monotonic() - started < 2.5, f"{node} took too long to stop"
        wait_for(lambda: not frr_route(frr, f"{last}/32"), 5, what="withdrawn at FRR")
        wait_for(
            lambda: all(bird.protocol_state(n) != "Established" for n in ("node1", "node2")),
            5,
            what="BIRD sessions down",
        )
        time.sleep(1)
        assert bird_paths(lan, last) == {node1, node2}, "graceful restart keeps the routes"
        assert any(
            ln.get("reason") == "speakerShutdown" and ln.get("gracefulRestart")
            for ln in log_events(c, "node1", "serviceWithdrawn")
        )
        del sessions
