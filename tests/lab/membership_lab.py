"""A layer-2 cluster whose speakers run membership, and a client that watches who answers ARP.

`membership_cluster(lan)` starts the API server, the controller, a pool and an L2Advertisement,
gives each Node object its LAN address (the speakers seed membership from the Nodes, as speakers
run by systemd do) and starts one speaker per node with `--ml-bind-addr`. `ArpWatch` runs
`tests/lab/arp_watch.py` in the client namespace.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab.netns import Lab, LabProcess, wait_for
from tests.lab.speaker_lab import Cluster, cluster, endpoint_slice, metallb, service
from tests.lab.topology import L2_POOL4, Lan

ROOT = Path(__file__).resolve().parents[2]
WATCHER = ROOT / "tests" / "lab" / "arp_watch.py"
SECRET = "c2VjcmV0LWZvci10aGUtbGFi"  # any string; each speaker derives the same key from it


def give_node_addresses(c: Cluster) -> None:
    for host in c.lan.nodes:
        patch = {"status": {"addresses": [{"type": "InternalIP", "address": host.ipv4}]}}
        c.kubectl(
            "patch",
            "node",
            host.role,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(patch),
        )


def speaker_args(c: Cluster, role: str, *extra: str) -> list[str]:
    host = c.lan.host(role)
    key = c.workdir / "ml-secret"
    key.mkdir(exist_ok=True)
    (key / "secretkey").write_text(SECRET)
    return ["--ml-bind-addr", host.ipv4, "--ml-secret-key-path", str(key), *extra]


def members_alive(c: Cluster, role: str) -> int:
    m = re.search(r'metallb_membership_members\{state="alive"\} (\d+)', c.metrics(role))
    return int(m.group(1)) if m else -1


@contextmanager
def membership_cluster(lan: Lan, *extra: str) -> Iterator[Cluster]:
    nodes = [h.role for h in lan.nodes]
    with cluster(lan) as c:
        give_node_addresses(c)
        c.start_controller()
        c.apply(
            metallb("IPAddressPool", "l2", {"addresses": [L2_POOL4]}),
            metallb("L2Advertisement", "all", {"ipAddressPools": ["l2"]}),
        )
        for role in nodes:
            c.start_speaker(role, *speaker_args(c, role, *extra))
        c.wait_ready(timeout=60)
        for role in nodes:
            wait_for(
                lambda role=role: members_alive(c, role) == len(nodes),
                30,
                what=f"{role} sees every speaker alive",
            )
        yield c


def l2_service(c: Cluster, name: str) -> str:
    nodes = [h.role for h in c.lan.nodes]
    c.apply(service(name), endpoint_slice(name, nodes))
    (ip,) = c.wait_ips(name)
    return ip


@dataclass
class ArpWatch:
    proc: LabProcess
    lan: Lan

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.proc.output().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def answers(self) -> list[tuple[float, str]]:
        """(time, node role) of each change of the answering MAC."""
        roles = {h.mac: h.role for h in self.lan.nodes}
        return [(x["t"], roles.get(x["mac"], x["mac"])) for x in self.lines() if "mac" in x]

    def current(self) -> str | None:
        a = self.answers()
        return a[-1][1] if a else None

    def settle(self, role: str, quiet: float = 1.0, timeout: float = 20.0) -> None:
        """Wait until `role` alone has answered for `quiet` seconds: right after a heal two
        owners overlap for a moment (one probe round), then one of them withdraws."""

        def settled() -> bool:
            a = self.answers()
            return bool(a) and a[-1][1] == role and time.monotonic() - a[-1][0] >= quiet

        wait_for(settled, timeout, what=f"{role} alone answers for {quiet} s")

    def first_answer_from(self, role: str, after: float) -> float | None:
        for t, who in self.answers():
            if who == role and t >= after:
                return t
        return None


def watch_arp(
    lab: Lab, lan: Lan, ip: str, duration: float = 600, interval: float = 0.01
) -> ArpWatch:
    proc = lab.spawn(
        "client",
        [
            sys.executable,
            str(WATCHER),
            "--src-ip",
            lan.client.ipv4,
            "--target",
            ip,
            "--interval",
            str(interval),
            "--duration",
            str(duration),
        ],
        name="arpwatch",
    )
    w = ArpWatch(proc, lan)
    wait_for(lambda: any("ready" in x for x in w.lines()), 15, what="arp watcher started")
    return w
