"""The standard test LAN: a switch, N nodes, a router and a client on one segment.

    node1 .11 ::11 ─┐
    node2 .12 ::12 ─┤
      ...           ├── br0 (namespace "switch")
    router .1  ::1 ─┤
    client .100 ::100┘

IPv4 198.51.100.0/24 and IPv6 2001:db8:100::/64 (documentation ranges). Every host's LAN
interface is `eth0`; the switch's port towards a host is `p-<role>`. Service IPs: layer-2 tests
use the top of the LAN (L2_POOL4/L2_POOL6, on-link for the client); BGP tests use 203.0.113.0/24 and
2001:db8:200::/64, which the client reaches through the router (its default gateway).
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.netns import Lab, LabProcess, wait_for

LAN4 = ipaddress.ip_network("198.51.100.0/24")
LAN6 = ipaddress.ip_network("2001:db8:100::/64")
SERVICE4 = ipaddress.ip_network("203.0.113.0/24")
SERVICE6 = ipaddress.ip_network("2001:db8:200::/64")
L2_POOL4 = "198.51.100.200-198.51.100.250"
L2_POOL6 = "2001:db8:100::200-2001:db8:100::2ff"
SWITCH = "switch"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Host:
    role: str
    ns: str
    ipv4: str
    ipv6: str
    mac: str
    iface: str = "eth0"


@dataclass
class Lan:
    lab: Lab
    router: Host
    client: Host
    nodes: list[Host] = field(default_factory=list)
    _relays: dict[str, LabProcess] = field(default_factory=dict)

    def host(self, role: str) -> Host:
        for h in [self.router, self.client, *self.nodes]:
            if h.role == role:
                return h
        raise KeyError(role)

    def cut(self, role: str) -> None:
        """Pull the host's cable at the switch: the host sees its carrier go down."""
        self.lab.link_set(SWITCH, f"p-{role}", up=False)

    def restore(self, role: str) -> None:
        self.lab.link_set(SWITCH, f"p-{role}", up=True)

    def drop(self, role: str, percent: int, *, direction: str = "both") -> None:
        """Drop `percent`% of frames to/from a host at the switch (nftables numgen, no netem).

        The carrier stays up, so only protocol timers can notice — the case BFD exists for.
        """
        if not 0 <= percent <= 100:
            raise ValueError("percent must be in 0..100")
        port = f"p-{role}"
        table = f"loss_{role.replace('-', '_')}"
        match = {
            "both": [f'iifname "{port}"', f'oifname "{port}"'],
            "from": [f'iifname "{port}"'],
            "to": [f'oifname "{port}"'],
        }[direction]
        verdict = (
            "counter drop" if percent == 100 else f"numgen random mod 100 < {percent} counter drop"
        )
        rules = "\n".join(f"    {m} {verdict}" for m in match)
        self.lab.exec(SWITCH, ["nft", "delete", "table", "bridge", table], check=False)
        if percent == 0:
            return
        self.lab.nft(
            SWITCH,
            f"table bridge {table} {{\n  chain forward_loss {{\n"
            f"    type filter hook forward priority 0; policy accept;\n{rules}\n  }}\n}}\n",
        )

    def heal(self, role: str) -> None:
        self.drop(role, 0)

    def delay(self, role: str, ms: float, *, jitter_ms: float = 0, loss_percent: float = 0) -> None:
        """Delay every frame to and from a host by `ms` (each direction), netem-style.

        This kernel has no netem and nftables cannot hold packets, so the host's switch port is
        taken out of the bridge and spliced to it through a userspace relay (tests/lab/relay.py)
        that forwards frames after the delay. `undelay()` puts the port back.
        """
        self.undelay(role)
        port, inner, outer = f"p-{role}", f"d-{role}", f"e-{role}"
        lab = self.lab
        lab.exec(SWITCH, ["ip", "link", "set", port, "nomaster"])
        lab.exec(SWITCH, ["ip", "link", "add", inner, "type", "veth", "peer", "name", outer])
        for dev in (port, inner):
            lab.exec(SWITCH, ["ip", "link", "set", dev, "promisc", "on", "up"])
            lab.exec(SWITCH, ["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], check=False)
        lab.exec(SWITCH, ["ip", "link", "set", outer, "master", "br0", "up"])
        proc = lab.spawn(
            SWITCH,
            [
                sys.executable,
                "-m",
                "tests.lab.relay",
                port,
                inner,
                str(ms),
                str(jitter_ms),
                str(loss_percent),
            ],
            name=f"relay-{role}",
            env={"PYTHONPATH": str(REPO_ROOT)},
        )
        self._relays[role] = proc
        wait_for(lambda: "relay ready" in proc.output() or not proc.alive(), 10, what="relay")
        if not proc.alive():
            raise RuntimeError(f"delay relay failed: {proc.output()}")

    def undelay(self, role: str) -> None:
        proc = self._relays.pop(role, None)
        if proc is None:
            return
        proc.stop()
        self.lab.exec(SWITCH, ["ip", "link", "del", f"d-{role}"], check=False)
        self.lab.exec(SWITCH, ["ip", "link", "set", f"p-{role}", "master", "br0"])


def build_lan(lab: Lab, nodes: int = 2, *, snooping: bool = False, querier: bool = False) -> Lan:
    """Create the switch, hosts and addresses; returns a description of the LAN."""
    lab.add_ns(SWITCH)
    snoop = ["mcast_snooping", "1" if snooping else "0"]
    if querier:
        snoop += ["mcast_querier", "1"]
    lab.exec(SWITCH, ["ip", "link", "add", "br0", "type", "bridge", *snoop])
    lab.exec(SWITCH, ["ip", "link", "set", "br0", "up"])

    def attach(role: str, index: int) -> Host:
        lab.add_ns(role)
        lab.veth(role, "eth0", SWITCH, f"p-{role}")
        lab.exec(SWITCH, ["ip", "link", "set", f"p-{role}", "master", "br0"])
        v4 = str(LAN4.network_address + index)
        v6 = str(LAN6.network_address + index)
        lab.addr(role, "eth0", f"{v4}/{LAN4.prefixlen}")
        lab.addr(role, "eth0", f"{v6}/{LAN6.prefixlen}")
        return Host(role, lab.ns(role), v4, v6, lab.mac(role, "eth0"))

    router = attach("router", 1)
    node_hosts = [attach(f"node{i}", 10 + i) for i in range(1, nodes + 1)]
    client = attach("client", 100)
    # The client reaches layer-2 service IPs on-link and BGP service IPs through the router.
    lab.exec("client", ["ip", "route", "add", "default", "via", router.ipv4])
    lab.exec("client", ["ip", "-6", "route", "add", "default", "via", router.ipv6])
    lab.exec("router", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    lab.exec("router", ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
    return Lan(lab, router, client, node_hosts)
