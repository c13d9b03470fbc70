"""TCP MD5 and TTL on real connections between lab namespaces (the kernel enforces them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.lab.netns import Lab, LabProcess, wait_for
from tests.lab.topology import Lan

PROBE = str(Path(__file__).resolve().parents[1] / "lab" / "bgp_tcpprobe.py")


def _listener(lab: Lab, addr: str, peer: str, password: str, role: str = "node1") -> LabProcess:
    proc = lab.spawn(role, [sys.executable, PROBE, "listen", addr, "1179", peer, password])
    wait_for(lambda: "ready" in proc.output(), 10, what="probe listener")
    return proc


def _connect(lab: Lab, addr: str, src: str, password: str) -> bool:
    argv = [sys.executable, PROBE, "connect", addr, "1179", src, password]
    return lab.run("node2", argv, timeout=20).returncode == 0


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_md5_matching_keys_connect_and_wrong_key_does_not(lan: Lan, family: str) -> None:
    lab = lan.lab
    server, client = lan.nodes
    s_addr, c_addr = getattr(server, family), getattr(client, family)

    listener = _listener(lab, s_addr, c_addr, "right")
    assert not _connect(lab, s_addr, c_addr, "wrong"), "a wrong MD5 key must not connect"
    assert not _connect(lab, s_addr, c_addr, ""), "no MD5 key must not connect"
    assert _connect(lab, s_addr, c_addr, "right")
    wait_for(lambda: "accepted" in listener.output(), 5, what="accept logged")


def test_ttl_one_stops_at_the_first_router_and_two_crosses_it(lan: Lan) -> None:
    """Single-hop eBGP (TTL 1) cannot reach a peer behind a router; multihop 2 can."""
    lab = lan.lab
    far = "192.0.2.100"
    lab.exec("client", ["ip", "addr", "add", f"{far}/32", "dev", "lo"])
    lab.exec("router", ["ip", "route", "add", f"{far}/32", "via", lan.client.ipv4])
    lab.exec("node2", ["ip", "route", "add", f"{far}/32", "via", lan.router.ipv4])
    # The client answers node2 through its default gateway, the router.
    _listener(lab, far, lan.nodes[1].ipv4, "", role="client")
    base = [sys.executable, PROBE, "connect", far, "1179", lan.nodes[1].ipv4, ""]
    assert lab.run("node2", [*base, "1"], timeout=20).returncode != 0
    assert lab.run("node2", [*base, "2"], timeout=20).returncode == 0
