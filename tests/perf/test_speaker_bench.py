"""Speaker benchmark: service created -> route at a real BIRD, and the speaker's RSS and CPU with
many services and 4 peers.

One speaker (node1) peers with BIRD over 4 sessions (4 router addresses); BIRD exports what it
learns to the router's kernel table, where a netlink subscription timestamps each route
(tests/lab/speaker_bench.py, run inside the router namespace). The controller allocates the
requested IPs. Smoke size by default (200 services); METALLB_BENCH=full runs 10 000 services.
Prints `BENCH ...` lines (see -s) and a Markdown table; only correctness is asserted (every route
arrives, at every peer); the figures belong in docs/bench-speaker.md. The anchor, MetalLB's FRR
mode, waits a fixed 3 s debounce before reloading FRR (`--bgp-debounce-timeout`, 3000 ms); it
cannot run here (no cluster, no container runtime), so it is quoted, not measured.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import pytest

from tests.lab.daemons import Bird
from tests.lab.netns import wait_for
from tests.lab.speaker_lab import ROUTER_AS, SPEAKER_AS, Cluster, cluster, metallb
from tests.lab.topology import Lan

FULL = os.environ.get("METALLB_BENCH") == "full"
pytestmark = pytest.mark.timeout(3600 if FULL else 600)
SERVICES = 10_000 if FULL else 200
LATENCY_SAMPLES = 100 if FULL else 20
PEERS = 4
ROOT = Path(__file__).resolve().parents[2]


def proc_stats(pid: int) -> tuple[float, float, float]:
    """(CPU seconds, RSS MB, peak RSS MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return cpu, rss, hwm


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def imported(bird: Bird, proto: str) -> int:
    for line in bird.cmd(f"show protocols all {proto}").splitlines():
        parts = line.split()
        if parts[:1] == ["Routes:"]:
            return int(parts[1])
    return 0


def drive(c: Cluster, mode: str, count: int, first: str, prefix: str) -> dict[str, object]:
    out = c.workdir / f"{prefix}.json"
    c.lab.exec(
        "router",
        [
            sys.executable,
            "-m",
            "tests.lab.speaker_bench",
            mode,
            "--kubeconfig",
            str(c.api.kubeconfig),
            "--count",
            str(count),
            "--first",
            first,
            "--prefix",
            prefix,
            "--out",
            str(out),
        ],
        timeout=1800,
    )
    result: dict[str, object] = json.loads(out.read_text())
    return result


def line(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{name}: n={len(ms)} p50={statistics.median(ms):.1f} ms "
        f"p99={percentile(ms, 0.99):.1f} ms max={max(ms):.1f} ms"
    )


def test_speaker_latency_and_scale(lan: Lan) -> None:
    lab, router = lan.lab, lan.router
    # BIRD runs one session per neighbor address: 4 router and 4 node addresses.
    addrs = [router.ipv4] + [f"198.51.100.{i}" for i in range(2, PEERS + 1)]
    sources = [lan.nodes[0].ipv4] + [f"198.51.100.{i}" for i in range(21, 20 + PEERS)]
    for a in addrs[1:]:
        lab.addr("router", "eth0", f"{a}/24")
    for a in sources[1:]:
        lab.addr("node1", "eth0", f"{a}/24")
    body = "protocol kernel { ipv4 { export all; }; merge paths on; }\n"
    for i, (a, src) in enumerate(zip(addrs, sources, strict=True), 1):
        body += (
            f"protocol bgp p{i} {{ local {a} as {ROUTER_AS}; neighbor {src} as "
            f"{SPEAKER_AS}; connect retry time 1; ipv4 {{ import all; export none; }}; }}\n"
        )
    bird = Bird(lab, "router", router.ipv4, body).start()
    report = _Report()
    with cluster(lan, nodes={"node1": {}}) as c:
        c.start_controller()
        objs = [
            metallb("IPAddressPool", "quiet", {"addresses": ["203.0.113.0/24"]}),
            metallb("IPAddressPool", "scale", {"addresses": ["198.18.0.0/16"]}),
            metallb("BGPAdvertisement", "all", {}),
        ]
        objs += [
            metallb(
                "BGPPeer",
                f"p{i}",
                {
                    "myASN": SPEAKER_AS,
                    "peerASN": ROUTER_AS,
                    "peerAddress": a,
                    "sourceAddress": src,
                },
                "v1beta2",
            )
            for i, (a, src) in enumerate(zip(addrs, sources, strict=True), 1)
        ]
        c.apply(*objs)
        speaker = c.start_speaker("node1")
        c.wait_ready("node1", timeout=60)
        for i in range(1, PEERS + 1):
            bird.wait_established(f"p{i}", 30)

        # 1. Latency on a quiet system.
        # The two latency phases ask for disjoint addresses (.10-.109 and .120-.219 at full
        # size): an address already taken would never be allocated, so never routed.
        quiet = drive(c, "latency", LATENCY_SAMPLES, "203.0.113.10", "quiet")
        assert quiet["missed"] == 0, quiet["late"]
        report.append(line("quiet create->route", quiet["create_to_route"]))  # type: ignore[arg-type]
        report.append(line("quiet status->route", quiet["status_to_route"]))  # type: ignore[arg-type]

        # 2. Many services: time until every peer holds every prefix; CPU and memory.
        cpu0, rss0, _ = proc_stats(speaker.pid)
        started = time.monotonic()
        created = drive(c, "bulk", SERVICES, "198.18.0.1", "scale")
        total = SERVICES + LATENCY_SAMPLES
        for i in range(1, PEERS + 1):
            proto = f"p{i}"

            def arrived(proto: str = proto) -> bool:
                return imported(bird, proto) >= total

            wait_for(arrived, 600 if FULL else 120, interval=0.5, what=f"{total} routes at {proto}")
        converged = time.monotonic() - started

        cpu_routes, rss_routes, _ = proc_stats(speaker.pid)
        report.append(
            f"{SERVICES} services x {PEERS} peers: API create {created['seconds']:.1f} s, "
            f"all routes at all peers after {converged:.1f} s; speaker CPU "
            f"{cpu_routes - cpu0:.1f} s, RSS {rss_routes:.0f} MB ({rss0:.0f} MB before: "
            f"{(rss_routes - rss0) / SERVICES * 1000:.1f} MB per 1 000 services)"
        )

        # ServiceBGPStatus objects (two writes each) go at the API server's pace: report it.
        def written() -> int:
            # One unpaginated list: paginated lists of the embedded API server skip objects
            # while they are being written (seen with kubectl get: counts jumping up and down).
            path = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicebgpstatuses"
            out = c.kubectl("get", "--raw", f"{path}?limit=1000000")
            return len(json.loads(out).get("items") or [])

        deadline = time.monotonic() + (600 if FULL else 120)
        count = written()
        while count < total and time.monotonic() < deadline:
            time.sleep(5)
            count = written()
        settled = time.monotonic() - started
        cpu1, _, hwm1 = proc_stats(speaker.pid)
        time.sleep(10)
        cpu2, rss2, _ = proc_stats(speaker.pid)
        still = written()
        report.append(
            f"ServiceBGPStatus objects: {count}/{total} after {settled:.1f} s, {still} 10 s "
            f"later; speaker CPU "
            f"{cpu1 - cpu0:.1f} s since the bulk started, then {(cpu2 - cpu1) / 10 * 100:.1f}% "
            f"over 10 s{'' if count >= total else ' (still writing status)'}; RSS {rss2:.0f} MB "
            f"(peak {hwm1:.0f} MB; {(rss2 - rss0) / SERVICES * 1000:.1f} MB per 1 000 services "
            "with their status objects)"
        )
        assert count >= total and still >= total  # every status object exists, and stays

        # 3. Latency with all those services present.
        loaded = drive(c, "latency", LATENCY_SAMPLES, "203.0.113.120", "loaded")
        report.append(line(f"with {SERVICES} services create->status", loaded["create_to_status"]))  # type: ignore[arg-type]
        assert loaded["missed"] == 0, loaded["late"]
        report.append(line(f"with {SERVICES} services create->route", loaded["create_to_route"]))  # type: ignore[arg-type]
        report.append(line(f"with {SERVICES} services status->route", loaded["status_to_route"]))  # type: ignore[arg-type]
        reconciles = [ln for ln in c.speaker_log("node1") if ln.get("event") == "serviceAnnounced"]
        assert len(reconciles) >= total
    print("BENCH speaker summary:\n" + "\n".join(report))


class _Report(list[str]):
    """Print each figure as it is measured, so a later failure loses nothing."""

    def append(self, item: str) -> None:
        print("BENCH speaker", item, flush=True)
        super().append(item)
