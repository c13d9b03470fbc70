"""Benchmark: N BFD sessions at 50 ms x 3 against FRR bfdd; FRR's default 300 ms x 3 as anchor.

Counts false downs (target 0; ours split by diagnostic), measures our CPU use and FRR bfdd's in
the same run, and the worst timer lateness our engine observed. One extra busy process keeps the
2-core machine loaded. Smoke size by default (10 sessions, 10 s); METALLB_BENCH=full runs 100
sessions for 10 minutes each: 50 ms x 3, 50 ms x 3 with --rt-priority 50, and FRR's default
300 ms x 3 as the anchor.
Results are printed as JSON lines (`pytest -s`) and summarised in docs/bench-bfd.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lab.bfd_lab import OurBfd, frr_bfd
from tests.lab.daemons import Frr
from tests.lab.netns import wait_for
from tests.lab.topology import Lan

FULL = os.environ.get("METALLB_BENCH") == "full"
SESSIONS = 100 if FULL else 10
DURATION_S = 600.0 if FULL else 10.0
ROUTER_ADDR = "203.0.113.254"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _frr_downs(frr: Frr) -> int:
    return sum(int(p.get("session-down", 0)) for p in frr.json("show bfd peers counters"))


def _frr_all_up(frr: Frr, n: int) -> bool:
    peers = frr.bfd_peers()
    return len(peers) == n and all(p.get("status") == "up" for p in peers)


def _ours_all_up(ours: OurBfd, n: int) -> bool:
    sessions = ours.stats().get("sessions", {})
    return len(sessions) == n and all(s["session_up"] == 1 for s in sessions.values())


def _our_downs(ours: OurBfd) -> int:
    return sum(s["session_down_events"] for s in ours.stats().get("sessions", {}).values())


def _our_down_lines(ours: OurBfd) -> list[dict[str, Any]]:
    return [
        line
        for line in ours.lines()
        if line.get("event") == "bfdStateChange" and line.get("state") == "down"
    ]


def run_scale(
    lan: Lan, interval_ms: int, sessions: int, duration_s: float, rt_priority: int = 0
) -> dict[str, Any]:
    lab = lan.lab
    lab.addr("router", "eth0", f"{ROUTER_ADDR}/24")
    locals_ = [f"203.0.113.{i}" for i in range(1, sessions + 1)]
    for addr in locals_:
        lab.addr("node1", "eth0", f"{addr}/24")
    body = "".join(
        f" peer {addr} local-address {ROUTER_ADDR}\n"
        f"  receive-interval {interval_ms}\n  transmit-interval {interval_ms}\n"
        "  detect-multiplier 3\n !\n"
        for addr in locals_
    )
    frr = frr_bfd(lab, "router", body)
    args = [f"--local={a}" for a in locals_]
    args += ["--peer", ROUTER_ADDR, "--tx-ms", str(interval_ms), "--rx-ms", str(interval_ms)]
    if rt_priority:
        args += ["--rt-priority", str(rt_priority)]
    ours = OurBfd.start(lab, "node1", args)
    lab.spawn("client", [sys.executable, "-c", "while True: pass"], name="burner")
    wait_for(lambda: _ours_all_up(ours, sessions), 60, 0.5, what="all our sessions up")
    wait_for(lambda: _frr_all_up(frr, sessions), 60, 0.5, what="all FRR sessions up")
    time.sleep(2)  # let every Poll Sequence settle on the fast timers
    bfdd_pid = frr.procs["bfdd"].pid
    our_downs0, frr_downs0 = _our_downs(ours), _frr_downs(frr)
    down_lines0 = len(_our_down_lines(ours))
    cpu_ours0, cpu_frr0 = _cpu_seconds(ours.proc.pid), _cpu_seconds(bfdd_pid)
    start = time.monotonic()
    while time.monotonic() - start < duration_s:
        time.sleep(min(5.0, max(0.0, duration_s - (time.monotonic() - start))))
        assert ours.proc.alive() and frr.procs["bfdd"].alive()
    elapsed = time.monotonic() - start
    cpu_ours = _cpu_seconds(ours.proc.pid) - cpu_ours0
    cpu_frr = _cpu_seconds(bfdd_pid) - cpu_frr0
    time.sleep(0.6)  # one more stats line
    stats = ours.stats()
    by_diag: dict[str, int] = {}
    for line in _our_down_lines(ours)[down_lines0:]:
        by_diag[line["diag"]] = by_diag.get(line["diag"], 0) + 1
    result = {
        "interval_ms": interval_ms,
        "rt_priority": rt_priority,
        "multiplier": 3,
        "sessions": sessions,
        "duration_s": round(elapsed, 1),
        "false_downs_ours": _our_downs(ours) - our_downs0,
        "false_downs_frr": _frr_downs(frr) - frr_downs0,
        # detection_expired: we stopped hearing FRR in time; neighbor_down: FRR did first.
        "our_downs_by_diag": by_diag,
        "cpu_ours_pct": round(100 * cpu_ours / elapsed, 1),
        "cpu_frr_bfdd_pct": round(100 * cpu_frr / elapsed, 1),
        "lateness": stats.get("lateness", {}),
        "drops": stats.get("drops", {}),
        "all_up_at_end": _ours_all_up(ours, sessions) and _frr_all_up(frr, sessions),
    }
    print("BFD-BENCH " + json.dumps(result))
    return result


def run_frr_pair(lan: Lan, interval_ms: int, sessions: int, duration_s: float) -> dict[str, Any]:
    """The anchor: FRR bfdd on both ends, same sessions, same load, same duration.

    FRR keys a single-hop session by peer address, so each session gets its own address pair:
    203.0.113.i on node1 <-> 203.0.113.(100+i) on the router.
    """
    lab = lan.lab
    pairs = [(f"203.0.113.{i}", f"203.0.113.{100 + i}") for i in range(1, sessions + 1)]
    for near, far in pairs:
        lab.addr("node1", "eth0", f"{near}/24")
        lab.addr("router", "eth0", f"{far}/24")
    timers = (
        f"  receive-interval {interval_ms}\n  transmit-interval {interval_ms}\n"
        "  detect-multiplier 3\n !\n"
    )
    router = frr_bfd(
        lab, "router", "".join(f" peer {n} local-address {f}\n{timers}" for n, f in pairs)
    )
    node = frr_bfd(
        lab, "node1", "".join(f" peer {f} local-address {n}\n{timers}" for n, f in pairs)
    )
    lab.spawn("client", [sys.executable, "-c", "while True: pass"], name="burner")
    wait_for(lambda: _frr_all_up(router, sessions), 60, 0.5, what="all router sessions up")
    wait_for(lambda: _frr_all_up(node, sessions), 60, 0.5, what="all node sessions up")
    time.sleep(2)
    downs0 = _frr_downs(router), _frr_downs(node)
    pids = router.procs["bfdd"].pid, node.procs["bfdd"].pid
    cpu0 = [_cpu_seconds(p) for p in pids]
    start = time.monotonic()
    time.sleep(duration_s)
    elapsed = time.monotonic() - start
    cpu = [_cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
    result = {
        "anchor": "frr-frr",
        "interval_ms": interval_ms,
        "multiplier": 3,
        "sessions": sessions,
        "duration_s": round(elapsed, 1),
        "false_downs_router": _frr_downs(router) - downs0[0],
        "false_downs_node": _frr_downs(node) - downs0[1],
        "cpu_router_bfdd_pct": round(100 * cpu[0] / elapsed, 1),
        "cpu_node_bfdd_pct": round(100 * cpu[1] / elapsed, 1),
    }
    print("BFD-BENCH " + json.dumps(result))
    return result


RUNS = [(50, 0), (50, 50), (300, 0)] if FULL else [(50, 0)]
pytestmark = pytest.mark.timeout(DURATION_S + 600)  # a full run holds the sessions 10 minutes


@pytest.mark.parametrize(("interval_ms", "rt_priority"), RUNS)
def test_bfd_sessions_stay_up_at_fast_timers(lan: Lan, interval_ms: int, rt_priority: int) -> None:
    result = run_scale(lan, interval_ms, SESSIONS, DURATION_S, rt_priority)
    # The mechanism must hold: every session came up (run_scale waits for it) and no packet of
    # FRR's was dropped as malformed. False downs, CPU and lateness depend on the machine's
    # load: they are the benchmark's figures (docs/bench-bfd.md), not pass/fail criteria.
    assert result["sessions"] == SESSIONS
    assert result["drops"] == {}, result


@pytest.mark.parametrize("interval_ms", [50])
def test_frr_to_frr_anchor_same_load(lan: Lan, interval_ms: int) -> None:
    result = run_frr_pair(lan, interval_ms, SESSIONS, DURATION_S)
    assert result["sessions"] == SESSIONS
