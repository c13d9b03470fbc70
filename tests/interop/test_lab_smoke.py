"""The lab itself: namespaces, the LAN, loss injection, and each real daemon in it.

These prove the helpers other tests rely on; if they fail, every protocol test would fail for a
reason that has nothing to do with our code.
"""

from __future__ import annotations

import subprocess

from tests.lab.daemons import Bird, Frr, GoBGP
from tests.lab.netns import Lab, sh, wait_for
from tests.lab.topology import Lan, build_lan


def ping(lab: Lab, role: str, dst: str, count: int = 1, wait: float = 1) -> bool:
    argv = ["ping", "-n", "-c", str(count), "-W", str(wait), dst]
    if count > 1:
        argv[4:4] = ["-i", "0.01"]
    return lab.run(role, argv, timeout=count * wait + 10).returncode == 0


def test_lan_reaches_every_host_over_ipv4_and_ipv6(lan: Lan) -> None:
    for node in lan.nodes:
        assert ping(lan.lab, "client", node.ipv4)
        assert ping(lan.lab, "client", node.ipv6)
    assert ping(lan.lab, "node1", lan.router.ipv4)


def test_loss_injection_and_link_cut(lan: Lan) -> None:
    lab = lan.lab
    lan.drop("node1", 100)
    assert not ping(lab, "client", lan.nodes[0].ipv4, wait=0.5)
    assert ping(lab, "client", lan.nodes[1].ipv4), "loss leaked onto another port"
    lan.heal("node1")
    assert ping(lab, "client", lan.nodes[0].ipv4)

    lan.drop("node1", 50)
    out = lab.run(
        "client",
        ["ping", "-n", "-q", "-c", "200", "-i", "0.002", "-W", "0.2", lan.nodes[0].ipv4],
        timeout=30,
    ).stdout
    received = int(out.split(" received")[0].split(",")[-1])
    # Both directions lose 50 %, so ~25 % of echoes come back; anything between shows numgen works.
    assert 10 <= received <= 120, out
    lan.heal("node1")

    lan.cut("node1")
    wait_for(
        lambda: "NO-CARRIER" in lab.exec("node1", ["ip", "link", "show", "eth0"]),
        5,
        what="carrier loss on node1",
    )
    lan.restore("node1")
    wait_for(lambda: ping(lab, "client", lan.nodes[0].ipv4), 10, what="node1 back")


def rtt_ms(lab: Lab, role: str, dst: str) -> float:
    out = lab.exec(role, ["ping", "-n", "-q", "-c", "5", "-i", "0.05", "-W", "2", dst], timeout=30)
    # rtt min/avg/max/mdev = 0.040/0.052/0.071/0.010 ms
    return float(out.strip().splitlines()[-1].split("=")[1].split("/")[1])


def test_delay_injection_adds_latency_both_ways(lan: Lan) -> None:
    lab = lan.lab
    node = lan.nodes[0]
    assert rtt_ms(lab, "client", node.ipv4) < 20
    lan.delay("node1", 40)
    rtt = rtt_ms(lab, "client", node.ipv4)
    assert 80 <= rtt < 400, rtt  # 40 ms each way; generous upper bound for a loaded machine
    assert rtt_ms(lab, "client", lan.nodes[1].ipv4) < 40, "delay leaked onto another port"
    lan.undelay("node1")
    assert rtt_ms(lab, "client", node.ipv4) < 40


def test_teardown_removes_namespaces_and_processes() -> None:
    with Lab() as lab:
        lab.add_ns("solo")
        proc = lab.spawn("solo", ["sleep", "300"])
        name = lab.ns("solo")
        assert name in sh(["ip", "netns", "list"])
    assert proc.popen.poll() is not None
    assert name not in sh(["ip", "netns", "list"])


def test_bird_and_gobgp_exchange_routes(lan: Lan) -> None:
    lab = lan.lab
    node = lan.nodes[0]
    bird = Bird(
        lab,
        "router",
        lan.router.ipv4,
        f"""
        protocol static {{ ipv4; route 192.0.2.0/24 unreachable; }}
        protocol bgp node1 {{
          local {lan.router.ipv4} as 64500;
          neighbor {node.ipv4} as 64512;
          ipv4 {{ import all; export all; }};
        }}
        """,
    ).start()
    gobgp = GoBGP(
        lab,
        "node1",
        64512,
        node.ipv4,
        neighbors_toml=f"""
        [[neighbors]]
          [neighbors.config]
            neighbor-address = "{lan.router.ipv4}"
            peer-as = 64500
        """,
    ).start()
    bird.wait_established("node1")
    gobgp.wait_established(lan.router.ipv4)
    lab.exec(
        "node1",
        [
            "gobgp",
            "-u",
            "127.0.0.1",
            "-p",
            "50051",
            "global",
            "rib",
            "add",
            "203.0.113.7/32",
            "-a",
            "ipv4",
        ],
    )
    wait_for(lambda: "203.0.113.7/32" in bird.routes(), 10, what="route at BIRD")
    wait_for(lambda: "192.0.2.0/24" in gobgp.rib(), 10, what="route at GoBGP")


def test_frr_bgp_and_bfd_with_bird(lan: Lan) -> None:
    lab = lan.lab
    node = lan.nodes[0]
    bird = Bird(
        lab,
        "router",
        lan.router.ipv4,
        f"""
        protocol bfd {{
          interface "eth0" {{ interval 100 ms; multiplier 3; }};
          neighbor {node.ipv4};
        }}
        protocol bgp node1 {{
          local {lan.router.ipv4} as 64500;
          neighbor {node.ipv4} as 64512;
          ipv4 {{ import all; export none; }};
        }}
        """,
    ).start()
    frr = Frr(
        lab,
        "node1",
        f"""
        frr defaults datacenter
        !
        bfd
         peer {lan.router.ipv4}
          receive-interval 100
          transmit-interval 100
         !
        !
        router bgp 64512
         bgp router-id {node.ipv4}
         no bgp ebgp-requires-policy
         no bgp network import-check
         neighbor {lan.router.ipv4} remote-as 64500
         address-family ipv4 unicast
          network 203.0.113.9/32
         exit-address-family
        """,
    ).start()
    frr.wait_established(lan.router.ipv4)
    bird.wait_established("node1")
    wait_for(
        lambda: any(p.get("status") == "up" for p in frr.bfd_peers()), 15, what="FRR BFD peer up"
    )
    wait_for(lambda: "203.0.113.9/32" in bird.routes(), 10, what="route at BIRD")
    assert "Up" in bird.cmd("show bfd sessions")


def test_lan_with_multicast_snooping_builds(lab: Lab) -> None:
    lan = build_lan(lab, nodes=1, snooping=True, querier=True)
    out = lab.exec("switch", ["ip", "-d", "link", "show", "br0"])
    assert "mcast_snooping 1" in out and "mcast_querier 1" in out
    assert ping(lab, "client", lan.nodes[0].ipv6)


def test_commands_outside_a_namespace_are_not_needed() -> None:
    # Guard: the lab must not have left anything of ours behind in the host namespace.
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "p-node" not in out
