"""Echo packets (built for the peer's forwarding plane) and the echo timing, with a fake clock."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from scapy.layers.inet import IP, UDP

from bfd.echo import EchoTracker, build_echo, parse_returned_echo
from bfd.echo_path import neighbour

LOCAL = "198.51.100.11"


def test_echo_packet_is_valid_ipv4_udp_from_us_to_us_on_port_3785() -> None:
    raw = build_echo(LOCAL, 0xDEADBEEF, 7, 123456789, 42)
    pkt = IP(raw)
    assert pkt.src == pkt.dst == LOCAL and pkt.ttl == 255 and pkt.tos == 0xC0
    assert pkt[UDP].dport == 3785
    # Checksums as the kernels on the path verify them: recomputed by scapy, they match.
    rebuilt = IP(raw)
    del rebuilt.chksum
    del rebuilt[UDP].chksum
    rebuilt = IP(bytes(rebuilt))
    assert (rebuilt.chksum, rebuilt[UDP].chksum) == (pkt.chksum, pkt[UDP].chksum)


def test_only_our_echo_forwarded_once_is_accepted() -> None:
    raw = bytearray(build_echo(LOCAL, 99, 3, 555, 1))
    assert parse_returned_echo(bytes(raw), LOCAL) is None, "TTL 255: not looped yet"
    raw[8] = 254
    echo = parse_returned_echo(bytes(raw), LOCAL)
    assert echo is not None and (echo.discriminator, echo.sequence, echo.sent_ns) == (99, 3, 555)
    assert parse_returned_echo(bytes(raw), "198.51.100.12") is None
    assert parse_returned_echo(bytes(raw[:30]), LOCAL) is None


def test_echo_tracker_sends_jittered_and_fails_after_detect_mult_intervals() -> None:
    t = EchoTracker(interval_us=50_000, detect_mult=3, rng=random.Random(3))
    assert t.get_timer() is None
    t.activate(10.0, remote_min_echo_rx_us=100_000)  # the peer loops no faster than 100 ms
    sent = []
    now = 10.0
    while now < 10.25:
        if t.due(now, 100_000):
            sent.append(now)
        now = t.get_timer() or now + 1
        if t.failed(now):
            break
        t.returned(now, 100_000)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert gaps and all(0.075 - 1e-9 <= g <= 0.100 + 1e-9 for g in gaps)
    last = now
    assert not t.failed(last + 0.29)
    assert t.failed(last + 0.30)
    t.deactivate()
    assert t.get_timer() is None and not t.failed(last + 10)


def test_neighbour_reads_a_resolved_arp_entry(tmp_path: Path) -> None:
    table = tmp_path / "arp"
    table.write_text(
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "198.51.100.1     0x1         0x2         02:00:00:00:00:01     *        eth0\n"
        "198.51.100.9     0x1         0x0         00:00:00:00:00:00     *        eth0\n"
    )
    assert neighbour("198.51.100.1", table) == ("eth0", "02:00:00:00:00:01")
    assert neighbour("198.51.100.9", table) is None
    assert neighbour("198.51.100.2", table) is None
