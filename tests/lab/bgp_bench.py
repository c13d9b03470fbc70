"""Benchmark harness for BGP route origination: a real BIRD receives, a sender originates.

The receiver is BIRD 2 in the router namespace (passive, import all). Senders run in a node
namespace: ExaBGP (the anchor) or our own `python -m bgp speak`. Three measurements:

- cold start: N /32 prefixes from 198.18.0.0/15 in the sender's configuration (ExaBGP's static
  routes, our --announce-file); wall time from process start until BIRD holds all N, and the
  sender's peak RSS (VmHWM) at that moment;
- run time: the session is up with nothing announced, then N `announce` commands arrive one per
  line (ExaBGP's process API, our --stdin); prefixes/s until BIRD holds all N;
- communities: the cold start, with the prefixes spread over 1 000 distinct community sets, so
  UPDATE packing has real work to do.

Sizes: METALLB_BENCH=full runs N=100 000 (the targets in docs/benchmarks.md); otherwise a smoke
size.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.daemons import Bird, ExaBGP
from tests.lab.netns import LabProcess, wait_for
from tests.lab.topology import Host, Lan

FULL = os.environ.get("METALLB_BENCH", "").lower() == "full"
BENCH_NET = ipaddress.ip_network("198.18.0.0/15")
ROUTER_AS = 64500
SENDER_AS = 64512
COMMUNITY_SETS = 1000


def bench_size(smoke: int = 2000) -> int:
    return 100_000 if FULL else smoke


def prefixes(n: int) -> list[str]:
    base = int(BENCH_NET.network_address)
    if n > BENCH_NET.num_addresses:
        raise ValueError("more prefixes than 198.18.0.0/15 holds")
    return [f"{ipaddress.IPv4Address(base + i)}/32" for i in range(n)]


def community_set(i: int) -> list[str]:
    """The i-th prefix's communities: one of COMMUNITY_SETS distinct pairs."""
    k = i % COMMUNITY_SETS
    return [f"65000:{k}", f"65001:{k % 7}"]


@dataclass
class Result:
    sender: str
    scenario: str
    prefixes: int
    seconds: float
    peak_rss_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.prefixes / self.seconds if self.seconds > 0 else float("inf")


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process (the high-water mark of its resident set), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


@dataclass
class Receiver:
    """BIRD in the router namespace with one passive session per sender node."""

    lan: Lan
    senders: Sequence[Host]
    bird: Bird | None = None

    def start(self) -> Receiver:
        protos = "".join(
            f"""
            protocol bgp {h.role} {{
              local {self.lan.router.ipv4} as {ROUTER_AS};
              neighbor {h.ipv4} as {SENDER_AS};
              passive on;
              ipv4 {{ import all; export none; }};
            }}
            """
            for h in self.senders
        )
        self.bird = Bird(self.lan.lab, "router", self.lan.router.ipv4, protos).start()
        return self

    def count(self) -> int:
        assert self.bird is not None
        return self.bird.route_count()

    def check_communities(self, n: int) -> None:
        """The last prefix arrived with its own community set (the variant really varies)."""
        assert self.bird is not None
        i = n - 1
        out = self.bird.cmd(f"show route {prefixes(n)[i]} all")
        want = " ".join(f"({c.replace(':', ',')})" for c in community_set(i))
        if want not in out:
            raise AssertionError(f"expected communities {want} in:\n{out}")

    def wait_count(self, n: int, timeout: float, alive: Callable[[], bool]) -> float:
        """Poll until BIRD holds exactly `n` routes; returns the monotonic time it was seen."""

        def done() -> bool:
            if not alive():
                raise RuntimeError("sender exited")
            return self.count() == n

        wait_for(done, timeout, interval=0.05, what=f"BIRD to hold {n} routes")
        return time.monotonic()


# -- ExaBGP ------------------------------------------------------------------------------------

_EXA_ENV = {
    "exabgp.api.ack": "false",
    "exabgp.api.cli": "false",
    "exabgp.log.level": "WARNING",
}

FEEDER = """
import os, sys, time
lines, go, started = sys.argv[1:4]
while not os.path.exists(go):
    time.sleep(0.01)
with open(lines) as f:
    data = f.read()
with open(started, "w") as f:
    f.write(repr(time.monotonic()))
sys.stdout.write(data)
sys.stdout.flush()
sys.stdin.read()  # stay until ExaBGP closes the pipe
"""


def _exa_neighbor(lan: Lan, node: Host, body: str) -> str:
    return (
        textwrap.dedent(
            f"""
        neighbor {lan.router.ipv4} {{
            router-id {node.ipv4};
            local-address {node.ipv4};
            local-as {SENDER_AS};
            peer-as {ROUTER_AS};
            hold-time 90;
            family {{ ipv4 unicast; }}
        """
        )
        + textwrap.indent(body, "    ")
        + "}\n"
    )


def exabgp_cold_start(lan: Lan, rx: Receiver, node: Host, n: int, communities: bool) -> Result:
    nh = node.ipv4
    routes = []
    for i, p in enumerate(prefixes(n)):
        extra = f" community [{' '.join(community_set(i))}]" if communities else ""
        routes.append(f"    route {p} next-hop {nh}{extra};\n")
    config = _exa_neighbor(lan, node, "static {\n" + "".join(routes) + "}\n")
    t0 = time.monotonic()
    exa = ExaBGP(lan.lab, node.role, config).start(env=_EXA_ENV)
    assert exa.proc is not None
    proc = exa.proc
    t1 = rx.wait_count(n, 600 if FULL else 90, proc.alive)
    rss = peak_rss_mb(proc.pid)
    if communities:
        rx.check_communities(n)
    proc.stop()
    rx.wait_count(0, 60, lambda: True)
    return Result("ExaBGP", "cold+communities" if communities else "cold", n, t1 - t0, rss)


def exabgp_run_time(lan: Lan, rx: Receiver, node: Host, n: int) -> Result:
    d = lan.lab.workdir / "exa-feed"
    d.mkdir(exist_ok=True)
    lines = d / "lines"
    lines.write_text("".join(f"announce route {p} next-hop self\n" for p in prefixes(n)))
    go, started, feeder = d / "go", d / "started", d / "feeder.py"
    feeder.write_text(FEEDER)
    config = textwrap.dedent(
        f"""
        process feed {{
            run {sys.executable} {feeder} {lines} {go} {started};
            encoder text;
        }}
        """
    ) + _exa_neighbor(lan, node, "api {\n    processes [ feed ];\n}\n")
    exa = ExaBGP(lan.lab, node.role, config).start(env=_EXA_ENV)
    assert exa.proc is not None and rx.bird is not None
    rx.bird.wait_established(node.role, timeout=30)
    go.write_text("go")
    wait_for(lambda: started.exists() and started.read_text(), 10, what="feeder start")
    t1 = rx.wait_count(n, 600 if FULL else 90, exa.proc.alive)
    t0 = float(started.read_text())
    exa.proc.stop()
    rx.wait_count(0, 60, lambda: True)
    return Result("ExaBGP", "run time", n, t1 - t0)


# -- our speaker -------------------------------------------------------------------------------


def speak_argv(lan: Lan, node: Host, extra: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bgp",
        "speak",
        "--local-as",
        str(SENDER_AS),
        "--router-id",
        node.ipv4,
        "--local-address",
        node.ipv4,
        "--peer",
        f"{ROUTER_AS}@{lan.router.ipv4}",
        *extra,
    ]


def speaker_cold_start(lan: Lan, rx: Receiver, node: Host, n: int, communities: bool) -> Result:
    d = lan.lab.workdir / "speak-cold"
    d.mkdir(exist_ok=True)
    path = d / f"prefixes-{int(communities)}"
    if communities:
        path.write_text(
            "".join(
                f"{p} " + " ".join(f"community {c}" for c in community_set(i)) + "\n"
                for i, p in enumerate(prefixes(n))
            )
        )
    else:
        path.write_text("".join(f"{p}\n" for p in prefixes(n)))
    t0 = time.monotonic()
    proc = lan.lab.spawn(node.role, speak_argv(lan, node, ["--announce-file", str(path)]))
    t1 = rx.wait_count(n, 600 if FULL else 90, proc.alive)
    rss = peak_rss_mb(proc.pid)
    if communities:
        rx.check_communities(n)
    proc.stop()
    rx.wait_count(0, 60, lambda: True)
    return Result("metallb-py", "cold+communities" if communities else "cold", n, t1 - t0, rss)


def speaker_run_time(lan: Lan, rx: Receiver, node: Host, n: int) -> Result:
    proc: LabProcess = lan.lab.spawn(
        node.role, speak_argv(lan, node, ["--stdin"]), stdin=subprocess.PIPE
    )
    assert rx.bird is not None and proc.popen.stdin is not None
    rx.bird.wait_established(node.role, timeout=30)
    data = "".join(f"announce {p}\n" for p in prefixes(n)).encode()
    stdin = proc.popen.stdin
    t0 = time.monotonic()
    writer = threading.Thread(target=lambda: (stdin.write(data), stdin.flush()), daemon=True)
    writer.start()
    t1 = rx.wait_count(n, 600 if FULL else 90, proc.alive)
    writer.join(10)
    proc.stop()
    rx.wait_count(0, 60, lambda: True)
    return Result("metallb-py", "run time", n, t1 - t0)


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    ratios: list[tuple[str, float, str]] = field(default_factory=list)

    def ratio(self, what: str, value: float, target: str) -> None:
        self.ratios.append((what, value, target))
        print(f"BENCH ratio {what}: {value:.3f} (target {target})", flush=True)

    def add(self, r: Result) -> Result:
        self.results.append(r)
        print(
            f"BENCH {r.sender:10s} {r.scenario:17s} n={r.prefixes:6d} {r.seconds:7.2f}s "
            f"{r.rate:9.0f}/s rss={r.peak_rss_mb or 0:.0f}MB",
            flush=True,
        )
        return r

    def markdown(self) -> str:
        rows = [
            "| sender | scenario | prefixes | seconds | prefixes/s | peak RSS MB |",
            "|---" * 6 + "|",
        ]
        for r in self.results:
            rss = f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb is not None else ""
            cells = [
                r.sender,
                r.scenario,
                str(r.prefixes),
                f"{r.seconds:.2f}",
                f"{r.rate:.0f}",
                rss,
            ]
            rows.append("| " + " | ".join(cells) + " |")
        for what, value, target in self.ratios:
            rows.append(f"| ratio: {what} | {value:.3f} (target {target}) | | | | |")
        return "\n".join(rows) + "\n"

    def write(self) -> None:
        out = os.environ.get("BENCH_BGP_OUT")
        if out:
            with open(out, "a") as f:
                f.write(self.markdown())
