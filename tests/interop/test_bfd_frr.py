"""Our BFD (`python -m bfd session` in a node namespace) against FRR's bfdd in the router.

Detection is asserted with a generous bound (5x the detection time): these tests catch a broken
mechanism; the exact figures belong to the benchmark (tests/perf/test_bfd_scale.py).
"""

from __future__ import annotations

import signal
import time
from functools import partial

from tests.lab.bfd_lab import OurBfd, frr_bfd, frr_peer, frr_status, log_time
from tests.lab.daemons import Frr
from tests.lab.netns import wait_for
from tests.lab.topology import Lan

DETECT_S = 0.9  # 300 ms x 3, FRR's defaults and ours
BOUND_S = 5 * DETECT_S


def _frr_peer_block(peer: str, extra: str = "") -> str:
    return f" peer {peer}\n  receive-interval 300\n  transmit-interval 300\n{extra} !\n"


def _both_up(ours: OurBfd, frr: Frr, lan: Lan, peer_ip: str, our_ip: str) -> None:
    ours.wait_state(peer_ip, "up", 20)
    wait_for(lambda: frr_status(frr, our_ip) == "up", 20, what="FRR peer up")


def _frr_tx_is(frr: Frr, peer: str, interval: int) -> bool:
    return frr_peer(frr, peer).get("transmit-interval") == interval


def test_session_comes_up_and_link_faults_are_detected_by_both_sides(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    frr = frr_bfd(lan.lab, "router", _frr_peer_block(node.ipv4))
    ours = OurBfd.start(lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4])
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)
    peer = frr_peer(frr, node.ipv4)
    # FRR sees our timers and multiplier after the Poll Sequence that follows Up.
    wait_for(
        lambda: frr_peer(frr, node.ipv4).get("remote-transmit-interval") == 300,
        10,
        what="FRR learns our 300 ms transmit interval",
    )
    assert peer["remote-detect-multiplier"] == 3

    for fault, undo in (
        (lambda: lan.cut("node1"), lambda: lan.restore("node1")),
        (lambda: lan.drop("node1", 100), lambda: lan.heal("node1")),
    ):
        downs_before = len([c for c in ours.changes(router.ipv4) if c["state"] == "down"])
        start_wall, start = time.time(), time.monotonic()
        fault()
        wait_for(lambda: frr_status(frr, node.ipv4) == "down", BOUND_S + 5, what="FRR down")
        assert time.monotonic() - start < BOUND_S
        line = ours.wait_state(router.ipv4, "down", BOUND_S + 5)
        assert line["diag"] == "control_detection_expired"
        assert log_time(line) - start_wall < BOUND_S
        assert len([c for c in ours.changes(router.ipv4) if c["state"] == "down"]) > downs_before
        undo()
        _both_up(ours, frr, lan, router.ipv4, node.ipv4)


def test_process_death_is_detected_by_both_sides(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    frr = frr_bfd(lan.lab, "router", _frr_peer_block(node.ipv4))
    ours = OurBfd.start(lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4])
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)

    # kill -9 our process: FRR notices by detection time (no AdminDown was sent).
    start = time.monotonic()
    ours.proc.signal(signal.SIGKILL)
    wait_for(lambda: frr_status(frr, node.ipv4) == "down", BOUND_S + 5, what="FRR down")
    assert time.monotonic() - start < BOUND_S
    assert frr_peer(frr, node.ipv4)["diagnostic"] == "control detection time expired"

    # A new process comes up again, then kill -9 FRR's bfdd: we notice by detection time.
    ours = OurBfd.start(
        lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4], name="bfd2"
    )
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)
    start_wall = time.time()
    frr.procs["bfdd"].signal(signal.SIGKILL)
    line = ours.wait_state(router.ipv4, "down", BOUND_S + 5)
    assert line["diag"] == "control_detection_expired"
    assert log_time(line) - start_wall < BOUND_S


def test_sigterm_sends_admin_down_and_exits_zero(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    frr = frr_bfd(lan.lab, "router", _frr_peer_block(node.ipv4))
    ours = OurBfd.start(lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4])
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)
    assert ours.proc.stop(timeout=5) == 0
    wait_for(lambda: frr_status(frr, node.ipv4) == "down", 3, what="FRR down at once")
    assert frr_peer(frr, node.ipv4)["remote-diagnostic"] == "administratively down"


def test_parameter_change_on_frr_is_taken_without_a_flap(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    frr = frr_bfd(lan.lab, "router", _frr_peer_block(node.ipv4))
    ours = OurBfd.start(
        lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4, "--tx-ms", "100"]
    )
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)
    for interval in (100, 500, 200):
        frr.apply(
            f"bfd\n peer {node.ipv4}\n  receive-interval {interval}\n"
            f"  transmit-interval {interval}\n !\n!\n"
        )
        wait_for(partial(_frr_tx_is, frr, node.ipv4, interval), 10, what=f"FRR at {interval} ms")
    time.sleep(2)
    assert [c["state"] for c in ours.changes(router.ipv4)] == ["up"], "no flap on our side"
    assert frr_status(frr, node.ipv4) == "up"
    assert "downtime" not in frr_peer(frr, node.ipv4)
    # Our transmit interval is max(our 100 ms, FRR's RequiredMinRx 200 ms).
    wait_for(
        lambda: frr_peer(frr, node.ipv4).get("remote-transmit-interval") == 100,
        5,
        what="FRR sees our desired tx",
    )


def test_ipv6_session(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    frr = frr_bfd(lan.lab, "router", _frr_peer_block(node.ipv6))
    ours = OurBfd.start(lan.lab, "node1", ["--local", node.ipv6, "--peer", router.ipv6])
    _both_up(ours, frr, lan, router.ipv6, node.ipv6)
    start_wall = time.time()
    lan.drop("router", 100)
    line = ours.wait_state(router.ipv6, "down", BOUND_S + 5)
    assert log_time(line) - start_wall < BOUND_S


def test_multihop_session_through_the_router(lan: Lan) -> None:
    """node1 -> router -> client (FRR on the client, 192.0.2.100 behind the router)."""
    lab, node, router = lan.lab, lan.nodes[0], lan.router
    far = "192.0.2.100"
    lab.exec("client", ["ip", "addr", "add", f"{far}/32", "dev", "lo"])
    lab.exec("client", ["ip", "route", "add", f"{node.ipv4}/32", "via", router.ipv4])
    lab.exec("router", ["ip", "route", "add", f"{far}/32", "via", lan.client.ipv4])
    lab.exec("node1", ["ip", "route", "add", "192.0.2.0/24", "via", router.ipv4])
    frr = frr_bfd(
        lab,
        "client",
        f" peer {node.ipv4} multihop local-address {far}\n"
        "  receive-interval 300\n  transmit-interval 300\n  minimum-ttl 250\n !\n",
    )
    ours = OurBfd.start(
        lab, "node1", ["--local", node.ipv4, "--peer", far, "--multihop", "--min-ttl", "250"]
    )
    ours.wait_state(far, "up", 20)
    wait_for(lambda: frr_status(frr, node.ipv4) == "up", 20, what="FRR multihop peer up")
    assert frr_peer(frr, node.ipv4)["multihop"] is True
    start_wall = time.time()
    lan.drop("client", 100)
    line = ours.wait_state(far, "down", BOUND_S + 5)
    assert log_time(line) - start_wall < BOUND_S


def test_passive_mode_waits_for_frr_to_speak(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    ours = OurBfd.start(
        lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4, "--passive"]
    )
    time.sleep(1.5)
    wait_for(lambda: ours.session_counters(router.ipv4), 5, what="stats")
    assert ours.session_counters(router.ipv4)["control_packet_output"] == 0
    frr = frr_bfd(lan.lab, "router", _frr_peer_block(node.ipv4))
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)


def test_frr_passive_and_ours_active(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    frr = frr_bfd(lan.lab, "router", _frr_peer_block(node.ipv4, "  passive-mode\n"))
    ours = OurBfd.start(lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4])
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)
    assert frr_peer(frr, node.ipv4)["passive-mode"] is True


def test_echo_mode_against_frr(lan: Lan) -> None:
    """Both sides echo: each side's kernel forwards the other's echo packets straight back."""
    lab, node, router = lan.lab, lan.nodes[0], lan.router
    lab.exec("node1", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    for role in ("node1", "router"):
        lab.exec(role, ["sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0"])
        lab.exec(role, ["sysctl", "-qw", "net.ipv4.conf.eth0.send_redirects=0"])
    frr = frr_bfd(
        lab,
        "router",
        _frr_peer_block(
            node.ipv4, "  echo-mode\n  echo transmit-interval 100\n  echo receive-interval 100\n"
        ),
    )
    ours = OurBfd.start(
        lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4, "--echo-ms", "100"]
    )
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)
    wait_for(
        lambda: ours.session_counters(router.ipv4).get("echo_packet_input", 0) >= 10,
        15,
        what="our echoes looped back by FRR's kernel",
    )
    counters = ours.session_counters(router.ipv4)
    assert counters["echo_packet_output"] >= counters["echo_packet_input"]
    wait_for(
        lambda: frr.json(f"show bfd peer {node.ipv4} counters").get("echo-packet-input", 0) >= 10,
        15,
        what="FRR's echoes looped back by our node",
    )
    # Our echoes are lost in the router's forwarding while control packets (and FRR's own
    # echoes) still flow: our side declares the path down with diag 2 (echo function failed).
    lab.nft(
        "router",
        "table inet bfdecho {\n chain drop_echo {\n  type filter hook forward priority 0;\n"
        f"  ip saddr {node.ipv4} udp dport 3785 drop\n }}\n}}\n",
    )
    # (The session then flaps: control packets bring it back up, echo fails again.)
    wait_for(
        lambda: any(c["diag"] == "echo_failed" for c in ours.changes(router.ipv4)),
        10,
        what="our session down with diag echo_failed",
    )


def test_our_parameter_changes_and_admin_down_at_run_time(lan: Lan) -> None:
    node, router = lan.nodes[0], lan.router
    frr = frr_bfd(lan.lab, "router", _frr_peer_block(node.ipv4))
    ours = OurBfd.start(
        lan.lab, "node1", ["--local", node.ipv4, "--peer", router.ipv4], commands=True
    )
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)
    for tx, rx in ((100, 100), (1000, 600), (200, 200)):
        ours.command(f"set --tx-ms {tx} --rx-ms {rx}")
        wait_for(partial(_frr_sees, frr, node.ipv4, tx, rx), 10, what=f"FRR sees our {tx}/{rx} ms")
    time.sleep(1)
    assert [c["state"] for c in ours.changes(router.ipv4)] == ["up"], "no flap"
    assert frr_status(frr, node.ipv4) == "up"
    assert frr_peer(frr, node.ipv4)["detect-multiplier"] == 3

    ours.command("admin-down")
    wait_for(lambda: frr_status(frr, node.ipv4) == "down", 5, what="FRR down")
    assert frr_peer(frr, node.ipv4)["remote-diagnostic"] == "administratively down"
    assert ours.state(router.ipv4) == "admin_down"
    ours.command("admin-up")
    _both_up(ours, frr, lan, router.ipv4, node.ipv4)


def _frr_sees(frr: Frr, peer: str, tx: int, rx: int) -> bool:
    view = frr_peer(frr, peer)
    return view.get("remote-transmit-interval") == tx and view.get("remote-receive-interval") == rx
