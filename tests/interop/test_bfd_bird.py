"""Our BFD against BIRD 2's BFD (a `protocol bfd` with an explicit neighbor, no BGP needed)."""

from __future__ import annotations

import signal
import time

from tests.lab.bfd_lab import OurBfd, bird_bfd, bird_bfd_state, log_time
from tests.lab.daemons import Bird
from tests.lab.netns import wait_for
from tests.lab.topology import Lan

DETECT_S = 0.9  # 300 ms x 3 on both sides
BOUND_S = 5 * DETECT_S


def _bird_up(bird: Bird, peer: str) -> None:
    wait_for(lambda: bird_bfd_state(bird, peer) == "Up", 20, what=f"BIRD session {peer} Up")


def test_session_with_bird_and_faults_detected_by_both_sides(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    bird = bird_bfd(lan.lab, "router", router.ipv4, f"  neighbor {node.ipv4};")
    ours = OurBfd.start(lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4])
    ours.wait_state(router.ipv4, "up", 20)
    _bird_up(bird, node.ipv4)

    for fault, undo in (
        (lambda: lan.drop("router", 100), lambda: lan.heal("router")),
        (lambda: lan.cut("node1"), lambda: lan.restore("node1")),
    ):
        start_wall, start = time.time(), time.monotonic()
        fault()
        wait_for(lambda: bird_bfd_state(bird, node.ipv4) != "Up", BOUND_S + 5, what="BIRD down")
        assert time.monotonic() - start < BOUND_S
        line = ours.wait_state(router.ipv4, "down", BOUND_S + 5)
        assert line["diag"] == "control_detection_expired"
        assert log_time(line) - start_wall < BOUND_S
        undo()
        ours.wait_state(router.ipv4, "up", 20)
        _bird_up(bird, node.ipv4)

    # kill -9 BIRD: we notice by detection time.
    start_wall = time.time()
    assert bird.proc is not None
    bird.proc.signal(signal.SIGKILL)
    line = ours.wait_state(router.ipv4, "down", BOUND_S + 5)
    assert log_time(line) - start_wall < BOUND_S


def test_bird_notices_our_process_killed(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    bird = bird_bfd(lan.lab, "router", router.ipv4, f"  neighbor {node.ipv4};")
    ours = OurBfd.start(lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4])
    _bird_up(bird, node.ipv4)
    start = time.monotonic()
    ours.proc.signal(signal.SIGKILL)
    wait_for(lambda: bird_bfd_state(bird, node.ipv4) != "Up", BOUND_S + 5, what="BIRD down")
    assert time.monotonic() - start < BOUND_S


def test_ipv6_session_with_bird(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    bird = bird_bfd(lan.lab, "router", router.ipv4, f"  neighbor {node.ipv6};")
    ours = OurBfd.start(lan.lab, "node1", ["--local", node.ipv6, "--peer", router.ipv6])
    ours.wait_state(router.ipv6, "up", 20)
    _bird_up(bird, node.ipv6)
    assert ours.proc.stop(timeout=5) == 0
    wait_for(lambda: bird_bfd_state(bird, node.ipv6) != "Up", 3, what="BIRD sees AdminDown")
