"""`python -m l2 announce` in a lab node, asked by real clients on the LAN.

Service addresses come from the lab's layer-2 range (docs/testing.md). Every check is made with a
tool a user would run (arping, ndisc6, ping, ip neigh) or with scapy, never with our own codec.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab.l2_tools import (
    VIP4,
    VIP4_OTHER,
    VIP6,
    VIP6_OTHER,
    announce,
    arping,
    ndisc6,
    neigh_mac,
    ping,
    scapy_ns_without_slla,
    scapy_send,
)
from tests.lab.netns import Lab, wait_for
from tests.lab.topology import Lan, build_lan


def test_arping_gets_exactly_one_reply_from_the_announcing_node(lan: Lan) -> None:
    lab, node1 = lan.lab, lan.nodes[0]
    ann = announce(lab, "node1", "--ip", VIP4, "--ip", VIP6, "--burst-count", "0")
    replies = arping(lab, "client", VIP4, count=3)
    assert sorted(index for _, index in replies) == [0, 1, 2], replies  # one per request
    assert {mac for mac, _ in replies} == {node1.mac}
    unicast = arping(lab, "client", VIP4, count=2, unicast_to=node1.mac)
    assert sorted(unicast) == [(node1.mac, 0), (node1.mac, 1)]
    # Nothing answers for an address that is not announced.
    assert arping(lab, "client", VIP4_OTHER, count=2) == []
    assert ndisc6(lab, "client", VIP6_OTHER, tries=2) is None
    status, stopped = ann.stop()
    assert status == 0
    assert stopped["requestsReceived"][VIP4] >= 3
    assert stopped["responsesSent"][VIP4] >= 3
    assert VIP4_OTHER not in stopped["responsesSent"]
    # Stopped means silent.
    assert arping(lab, "client", VIP4, count=2) == []


@pytest.mark.parametrize("snooping", [False, True], ids=["plain-bridge", "mld-snooping"])
def test_ndisc6_and_ping6_resolve_the_announced_ipv6_address(lab: Lab, snooping: bool) -> None:
    lan = build_lan(lab, nodes=1, snooping=snooping, querier=snooping)
    node1 = lan.nodes[0]
    # The address lives on the node's loopback, as kube-proxy puts service IPs on a dummy
    # device: the kernel accepts the traffic but does not answer NDP for it on eth0.
    lab.exec("node1", ["ip", "-6", "addr", "add", f"{VIP6}/128", "dev", "lo"])
    ann = announce(lab, "node1", "--interface", "eth0", "--ip", VIP6, "--burst-count", "0")
    if snooping:
        # Our solicited-node join produced an MLD report the switch learned from.
        wait_for(
            lambda: re.search(r"p-node1 .*ff02::1:ff00:200", lab.exec("switch", ["bridge", "mdb"])),
            10,
            what="solicited-node group in the bridge's mdb on p-node1",
        )
    assert ndisc6(lab, "client", VIP6) == node1.mac
    assert ping(lab, "client", VIP6, wait=2)
    assert neigh_mac(lab, "client", VIP6) == node1.mac
    status, stopped = ann.stop()
    assert status == 0 and stopped["responsesSent"][VIP6] >= 2


def test_unicast_ns_without_slla_is_answered(lan: Lan) -> None:
    """MetalLB #2920: a NUD probe without SLLA gets an NA back to the frame's source MAC."""
    lab, node1, client = lan.lab, lan.nodes[0], lan.client
    ann = announce(lab, "node1", "--ip", VIP6, "--burst-count", "0")
    na = scapy_ns_without_slla(
        lab, "client", src_mac=client.mac, dst_mac=node1.mac, src_ip=client.ipv6, target=VIP6
    )
    assert na is not None, ann.proc.output()
    assert na["eth_dst"] == client.mac and na["eth_src"] == node1.mac
    assert na["target"] == VIP6 and na["tlla"] == node1.mac
    assert (na["solicited"], na["override"], na["hlim"]) == (1, 1, 255)
    # Malformed solicitations for our address pass the BPF filter, are dropped and counted.
    base = (
        f"Ether(src={client.mac!r}, dst={node1.mac!r})"
        f"/IPv6(src={client.ipv6!r}, dst={VIP6!r}, hlim={{hlim}})"
        f"/ICMPv6ND_NS(tgt={VIP6!r}, cksum={{cksum}})"
    )
    bad_checksum = base.format(hlim=255, cksum="0x1234")
    forwarded = base.format(hlim=64, cksum="None")  # hop limit < 255: not from this link
    scapy_send(lab, "client", f"[{bad_checksum}] * 2 + [{forwarded}] * 3")
    status, stopped = ann.stop()
    assert status == 0
    assert stopped["malformed"] == {"icmpv6-bad-checksum": 2, "ndp-hop-limit": 3}
    assert stopped["responsesSent"] == {VIP6: stopped["requestsReceived"][VIP6]}


def test_takeover_burst_updates_the_clients_neighbour_table(lan: Lan) -> None:
    lab, node1, node2 = lan.lab, lan.nodes[0], lan.nodes[1]
    first = announce(lab, "node1", "--ip", VIP4, "--ip", VIP6, "--burst-count", "1")
    # The client resolves through its kernel (the ping itself goes unanswered: no one owns it).
    ping(lab, "client", VIP4, wait=0.5)
    ping(lab, "client", VIP6, wait=0.5)
    assert neigh_mac(lab, "client", VIP4) == node1.mac
    assert neigh_mac(lab, "client", VIP6) == node1.mac
    assert first.stop()[0] == 0
    second = announce(lab, "node2", "--ip", VIP4, "--ip", VIP6)
    # No client traffic from here on: only the burst can change the client's table.
    wait_for(lambda: neigh_mac(lab, "client", VIP4) == node2.mac, 10, what="IPv4 entry moved")
    wait_for(lambda: neigh_mac(lab, "client", VIP6) == node2.mac, 10, what="IPv6 entry moved")
    wait_for(lambda: len(second.find("ipAnnounced")) == 2, 5, what="announce log")
    status, stopped = second.stop()
    assert status == 0
    # ARP: request and reply form per round; NDP: one unsolicited NA per round.
    assert stopped["gratuitousSent"][VIP4] % 2 == 0 and stopped["gratuitousSent"][VIP4] >= 2
    assert stopped["gratuitousSent"][VIP6] >= 1


def test_burst_is_sent_once_and_paced(lan: Lan) -> None:
    lab = lan.lab
    ann = announce(
        lab,
        "node1",
        "--ip",
        VIP4,
        "--burst-count",
        "3",
        "--burst-interval",
        "0.3",
        "--log-level",
        "debug",
    )
    wait_for(lambda: len(ann.find("gratuitousSent")) >= 3, 10, what="three rounds")
    rounds = ann.find("gratuitousSent")
    assert [r["round"] for r in rounds] == [1, 2, 3]
    status, stopped = ann.stop()
    assert status == 0 and stopped["gratuitousSent"] == {VIP4: 6}


DRIVER = Path(__file__).resolve().parents[1] / "lab" / "l2_driver.py"


def test_burst_only_on_becoming_the_announcer_never_on_reconcile(lan: Lan) -> None:
    """The library as the speaker drives it: repeated identical reconciles send nothing (MetalLB
    re-sends its burst on every reconcile of a service it owns); a new or regained address
    bursts."""
    lab, node1 = lan.lab, lan.nodes[0]
    proc = lab.spawn(
        "node1",
        [sys.executable, str(DRIVER), VIP4, VIP4_OTHER],
        name="l2-driver",
        stdin=subprocess.PIPE,
        env={"PYTHONPATH": str(DRIVER.parents[2])},
    )

    def steps() -> dict[str, dict[str, Any]]:
        out = {}
        for line in proc.output().splitlines():
            if line.startswith('{"step"'):
                record = json.loads(line)
                out[record["step"]] = record
        return out

    wait_for(lambda: "withdrawn" in steps() or not proc.alive(), 20, what="driver steps")
    got = steps()
    assert "withdrawn" in got, proc.output()
    # Two rounds, ARP request + reply form each: 4 frames per burst.
    assert got["announced"]["gratuitousSent"] == {VIP4: 4}
    assert got["reconciled"]["gratuitousSent"] == {VIP4: 4}
    assert got["added"]["gratuitousSent"] == {VIP4: 4, VIP4_OTHER: 4}
    assert arping(lab, "client", VIP4, count=2) == []  # withdrawn: silent at once
    assert {m for m, _ in arping(lab, "client", VIP4_OTHER, count=2)} == {node1.mac}
    assert proc.popen.stdin is not None
    proc.popen.stdin.write(b"\n")
    proc.popen.stdin.flush()
    wait_for(lambda: "reannounced" in steps() or not proc.alive(), 20, what="reannounced")
    assert steps()["reannounced"]["gratuitousSent"] == {VIP4: 8, VIP4_OTHER: 4}
    assert proc.wait(timeout=10) == 0


def test_interface_that_appears_after_start_is_served(lan: Lan) -> None:
    lab = lan.lab
    ann = announce(lab, "node1", "--ip", VIP4, "--burst-count", "0")
    assert ann.find("ready")[-1]["interfaces"] == ["eth0"]
    # A second segment, plugged in after the announcer started, straight to the client.
    lab.veth("node1", "eth1", "client", "eth1")
    lab.addr("client", "eth1", "192.0.2.100/24")  # arping needs a source address
    mac = lab.mac("node1", "eth1")
    wait_for(
        lambda: any(e["interface"] == "eth1" for e in ann.find("interfaceServed")),
        10,
        what="eth1 served",
    )
    assert {m for m, _ in arping(lab, "client", VIP4, count=2, iface="eth1")} == {mac}
    # And when it goes away, the announcer lets go of it.
    lab.exec("node1", ["ip", "link", "del", "eth1"])
    wait_for(lambda: ann.find("interfaceReleased"), 10, what="eth1 released")
    assert ann.proc.alive()


def test_carrier_loss_and_return_sends_the_burst_again(lan: Lan) -> None:
    """A cable pulled and plugged back (MetalLB #2823: L2 not recovering after a network
    disruption): the interface is released, then served again with a fresh takeover burst."""
    lab, node1 = lan.lab, lan.nodes[0]
    ann = announce(lab, "node1", "--ip", VIP4, "--burst-count", "1")
    wait_for(lambda: len(ann.find("ipAnnounced")) == 1, 5, what="first announcement")
    lan.cut("node1")
    wait_for(lambda: ann.find("interfaceReleased"), 10, what="eth0 released on carrier loss")
    lan.restore("node1")
    wait_for(lambda: len(ann.find("ipAnnounced")) == 2, 10, what="announced again")
    assert {m for m, _ in arping(lab, "client", VIP4, count=2)} == {node1.mac}
    status, stopped = ann.stop()
    assert status == 0 and stopped["gratuitousSent"] == {VIP4: 4}  # one round, twice


def test_bridge_ports_and_excluded_names_are_skipped(lan: Lan) -> None:
    lab = lan.lab
    for argv in (
        ["ip", "link", "add", "br9", "type", "bridge"],
        ["ip", "link", "add", "port9", "type", "veth", "peer", "name", "veth9"],
        ["ip", "link", "set", "port9", "master", "br9"],
        ["ip", "link", "set", "br9", "up"],
        ["ip", "link", "set", "port9", "up"],
        ["ip", "link", "set", "veth9", "up"],
        ["ip", "link", "add", "up9", "type", "veth", "peer", "name", "noarp9"],
        ["ip", "link", "set", "noarp9", "arp", "off"],
        ["ip", "link", "set", "up9", "up"],
        ["ip", "link", "set", "noarp9", "up"],
    ):
        lab.exec("node1", argv)
    ann = announce(lab, "node1", "--ip", VIP4, "--burst-count", "0")
    # The bridge is served; its port, the veth-named peer and the NOARP one are not; eth0 (a
    # veth device, but not veth-named) is.
    assert ann.find("ready")[-1]["interfaces"] == ["br9", "eth0", "up9"]
    explicit = announce(lab, "node1", "--interface", "veth9", "--ip", VIP4_OTHER)
    assert explicit.find("ready")[-1]["interfaces"] == ["veth9"]
    # Announced, but only on veth9: never answered on the unselected eth0.
    assert arping(lab, "client", VIP4_OTHER, count=2) == []
    assert {m for m, _ in arping(lab, "client", VIP4, count=1)} == {lan.nodes[0].mac}


def test_warns_when_the_kernel_also_answers(lan: Lan) -> None:
    """MetalLB #153: an address on a local interface with arp_ignore=0 (kube-proxy IPVS without
    strictARP) makes the kernel answer too; we say so."""
    lab = lan.lab
    ann = announce(lab, "node1", "--ip", VIP4, "--burst-count", "0")
    assert ann.find("kernelAlsoAnswers") == []
    # Added after start (kube-proxy syncing a service): noticed through the netlink event.
    lab.exec("node1", ["ip", "addr", "add", f"{VIP4}/32", "dev", "lo"])
    warning = ann.wait_event("kernelAlsoAnswers")
    assert (
        warning["ip"] == VIP4 and warning["level"] == "warn" and "arp_ignore=0" in warning["reason"]
    )
    ann.stop()
    lab.exec("node1", ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"])  # strictARP
    strict = announce(lab, "node1", "--ip", VIP4, "--burst-count", "0")
    assert strict.find("kernelAlsoAnswers") == []


def test_conflicting_mac_is_counted_and_logged(lan: Lan) -> None:
    lab = lan.lab
    ann = announce(lab, "node1", "--ip", VIP4, "--burst-count", "0")
    # Another station announces our address (arping -U: unsolicited, i.e. gratuitous, ARP).
    lab.run("client", ["arping", "-U", "-c", "2", "-W", "0.2", "-i", "eth0", "-S", VIP4, VIP4])
    event = ann.wait_event("addressConflict")
    assert event["ip"] == VIP4 and event["mac"] == lan.client.mac
    status, stopped = ann.stop()
    assert status == 0 and stopped["conflicts"][VIP4] >= 1


def test_answers_while_the_link_local_address_is_tentative(lan: Lan) -> None:
    """MetalLB #2685: its NDP responder binds to the link-local address and fails while DAD
    runs. Ours sends raw frames; even asked to source NAs from the link-local, it falls back to
    the target address while the link-local is tentative."""
    lab, node1 = lan.lab, lan.nodes[0]
    for key in ("accept_dad=1", "dad_transmits=60"):
        lab.exec("node1", ["sysctl", "-qw", f"net.ipv6.conf.eth0.{key}"])
    lab.exec("node1", ["ip", "link", "set", "eth0", "down"])
    lab.exec("node1", ["ip", "link", "set", "eth0", "up"])
    wait_for(
        lambda: "tentative" in lab.exec("node1", ["ip", "-6", "addr", "show", "dev", "eth0"]),
        10,
        what="tentative link-local",
    )
    announce(lab, "node1", "--ip", VIP6, "--na-source", "link-local", "--burst-count", "0")
    assert ndisc6(lab, "client", VIP6) == node1.mac
    assert "tentative" in lab.exec(
        "node1", ["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"]
    )


def test_without_cap_net_raw_it_says_which_capability_is_missing(lan: Lan) -> None:
    lab = lan.lab
    proc = lab.spawn(
        "node1",
        [
            "capsh",
            "--drop=cap_net_raw",
            "--",
            "-c",
            f"exec {sys.executable} -m l2 announce --ip {VIP4}",
        ],
        name="l2-nocap",
    )
    assert proc.wait(timeout=30) == 1
    out = proc.output()
    assert "missingCapability" in out and "CAP_NET_RAW" in out
    assert "Traceback" not in out


def test_sigint_stops_cleanly(lan: Lan) -> None:
    ann = announce(lan.lab, "node1", "--ip", VIP4, "--burst-count", "0")
    ann.proc.signal(signal.SIGINT)
    assert ann.proc.wait(timeout=10) == 0
    assert ann.find("stopped")


def test_cap_net_raw_alone_is_enough(lab: Lab) -> None:
    """Every capability but CAP_NET_RAW dropped (bounding set): ARP, NDP and the MLD join that a
    snooping switch needs all still work."""
    lan = build_lan(lab, nodes=1, snooping=True, querier=True)
    node1 = lan.nodes[0]
    proc = lab.spawn(
        "node1",
        [
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-all,+net_raw",
            "--",
            sys.executable,
            "-m",
            "l2",
            "announce",
            "--ip",
            VIP4,
            "--ip",
            VIP6,
            "--burst-count",
            "0",
        ],
        name="l2-netraw",
    )
    wait_for(lambda: '"ready"' in proc.output() or not proc.alive(), 15, what="ready")
    status = Path(f"/proc/{proc.pid}/status").read_text()
    assert "CapEff:\t0000000000002000" in status  # CAP_NET_RAW (bit 13) and nothing else
    wait_for(
        lambda: "p-node1 grp ff02::1:ff00:200" in lab.exec("switch", ["bridge", "mdb"]),
        10,
        what="MLD join seen by the snooping bridge",
    )
    assert ndisc6(lab, "client", VIP6) == node1.mac
    assert {m for m, _ in arping(lab, "client", VIP4, count=1)} == {node1.mac}
