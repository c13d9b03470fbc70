"""Lab helpers for layer-2 tests: run `python -m l2 announce` in a node, ask with real clients.

Clients are the real tools a user would run (`arping`, `ndisc6`, `ping`, `ip neigh`), plus scapy
for frames those tools cannot craft (a Neighbor Solicitation without SLLA). None of them use our
codec.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from dataclasses import dataclass
from typing import Any

from tests.lab.netns import Lab, LabProcess, wait_for

VIP4 = "198.51.100.200"
VIP4_OTHER = "198.51.100.201"
VIP6 = "2001:db8:100::200"
VIP6_OTHER = "2001:db8:100::201"

_ARPING_REPLY = re.compile(r"bytes from ([0-9a-f:]{17}) \(([0-9.]+)\): index=(\d+)")
_NDISC_MAC = re.compile(r"Target link-layer address: ([0-9A-Fa-f:]{17})")


@dataclass
class Announce:
    """One `python -m l2 announce` process in a lab namespace."""

    proc: LabProcess

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.proc.output().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def find(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def wait_event(self, event: str, timeout: float = 15) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            hits = self.find(event)
            if hits:
                return hits[-1]
            if not self.proc.alive():
                raise AssertionError(f"announcer exited early:\n{self.proc.output()}")
            return None

        result = wait_for(found, timeout, what=f"{event} in announcer log")
        assert isinstance(result, dict)
        return result

    def stop(self) -> tuple[int | None, dict[str, Any]]:
        """SIGTERM; returns the exit status and the final `stopped` record (counters)."""
        status = self.proc.stop(timeout=10)
        stopped = self.find("stopped")
        return status, (stopped[-1] if stopped else {})


def announce(lab: Lab, role: str, *args: str, ready: bool = True) -> Announce:
    proc = lab.spawn(role, [sys.executable, "-m", "l2", "announce", *args], name="l2-announce")
    ann = Announce(proc)
    if ready:
        ann.wait_event("ready")
    return ann


def arping(
    lab: Lab, role: str, ip: str, *, count: int = 3, iface: str = "eth0", unicast_to: str = ""
) -> list[tuple[str, int]]:
    """(MAC, request index) for every reply arping saw; `unicast_to` sends the requests to that
    MAC instead of broadcast (as a client refreshing its cache does)."""
    extra = ["-t", unicast_to] if unicast_to else []
    result = lab.run(
        role,
        ["arping", "-c", str(count), "-W", "0.2", "-w", str(count + 2), "-i", iface, *extra, ip],
        timeout=count + 15,
    )
    return [(m.group(1), int(m.group(3))) for m in _ARPING_REPLY.finditer(result.stdout)]


def ndisc6(lab: Lab, role: str, ip: str, iface: str = "eth0", tries: int = 3) -> str | None:
    """The MAC `ndisc6` resolves `ip` to, lowercase, or None."""
    result = lab.run(role, ["ndisc6", "-1", "-r", str(tries), ip, iface], timeout=tries + 10)
    m = _NDISC_MAC.search(result.stdout)
    return m.group(1).lower() if m else None


def neigh_mac(lab: Lab, role: str, ip: str, iface: str = "eth0") -> str | None:
    out = lab.exec(role, ["ip", "neigh", "show", ip, "dev", iface])
    m = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return m.group(1) if m else None


def ping(lab: Lab, role: str, ip: str, wait: float = 1) -> bool:
    argv = ["ping", "-n", "-c", "1", "-W", str(wait), ip]
    return lab.run(role, argv, timeout=wait + 10).returncode == 0


def scapy_ns_without_slla(
    lab: Lab,
    role: str,
    *,
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    target: str,
    iface: str = "eth0",
) -> dict[str, Any] | None:
    """Send a unicast NS without a Source Link-Layer Address option (a NUD probe, as Juniper and
    Linux send them) crafted with scapy; return the NA that came back, or None."""
    script = textwrap.dedent(
        f"""
        import json
        from scapy.all import conf, srp1
        from scapy.layers.inet6 import IPv6, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
        from scapy.layers.l2 import Ether
        conf.verb = 0
        probe = (Ether(src={src_mac!r}, dst={dst_mac!r})
                 / IPv6(src={src_ip!r}, dst={target!r}, hlim=255)
                 / ICMPv6ND_NS(tgt={target!r}))
        assert not probe.haslayer("ICMPv6NDOptSrcLLAddr")
        answer = None
        for _ in range(3):
            answer = srp1(probe, iface={iface!r}, timeout=2,
                          filter="icmp6 and ip6[40] == 136", nofilter=0)
            if answer is not None:
                break
        if answer is None:
            print(json.dumps(None))
        else:
            na = answer[ICMPv6ND_NA]
            print(json.dumps({{
                "eth_dst": answer.dst, "eth_src": answer.src, "target": na.tgt,
                "solicited": na.S, "override": na.O, "hlim": answer[IPv6].hlim,
                "tlla": answer[ICMPv6NDOptDstLLAddr].lladdr
                if answer.haslayer(ICMPv6NDOptDstLLAddr) else None,
            }}))
        """
    )
    result = lab.run(role, [sys.executable, "-c", script], timeout=30)
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout.strip().splitlines()[-1])
    assert value is None or isinstance(value, dict)
    return value


def scapy_send(lab: Lab, role: str, expression: str, iface: str = "eth0", count: int = 1) -> None:
    """Send the frame a scapy `expression` builds (names from scapy.all are in scope)."""
    script = (
        "from scapy.all import *\n"
        "conf.verb = 0\n"
        f"sendp({expression}, iface={iface!r}, count={count})\n"
    )
    result = lab.run(role, [sys.executable, "-c", script], timeout=30)
    assert result.returncode == 0, result.stderr
