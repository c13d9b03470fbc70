"""ARP load generator for the layer-2 benchmark; runs as a script inside a lab namespace.

    python tests/lab/l2_loadgen.py arp --mac M --src-ip S --target T --rate R --duration D
    python tests/lab/l2_loadgen.py flood --iface eth0 --mac M --rate R --duration D

`arp` sends broadcast ARP requests for T at R per second and counts the replies for T addressed
to S (one reply per request is the goal). `flood` sends frames nobody should answer: ARP requests
for addresses nobody owns and IPv6 UDP to a multicast group nobody joined. Frames are built with
scapy (not with the code under test). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import time

from scapy.layers.inet6 import UDP, IPv6
from scapy.layers.l2 import ARP, Ether

ETH_P_ARP = 0x0806


def arp_request(mac: str, src_ip: str, target: str) -> bytes:
    return bytes(
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=src_ip, pdst=target)
    )


def flood_frames(mac: str) -> list[bytes]:
    frames = [arp_request(mac, "198.51.100.100", f"198.51.100.{i}") for i in range(150, 200)]
    frames += [
        bytes(
            Ether(src=mac, dst="33:33:00:01:00:03")
            / IPv6(src="2001:db8:100::64", dst="ff02::1:3")
            / UDP(sport=5355, dport=5355)
            / (b"x" * 20)
        )
        for _ in range(50)
    ]
    return frames


def run(
    iface: str, frames: list[bytes], rate: int, duration: float, count: tuple[bytes, bytes] | None
) -> dict[str, float]:
    """Send `frames` round-robin at `rate`/s for `duration`; count ARP replies matching `count`
    ((sender IP, target IP) packed), while sending and for up to two seconds after."""
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((iface, 0))
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    rx.setsockopt(socket.SOL_SOCKET, 33, 16 * 1024 * 1024)  # SO_RCVBUFFORCE
    rx.bind((iface, ETH_P_ARP))
    rx.setblocking(False)
    replies = 0

    def drain() -> None:
        nonlocal replies
        while True:
            try:
                data = rx.recv(2048)
            except BlockingIOError:
                return
            if count is None or len(data) < 42 or data[20:22] != b"\x00\x02":
                continue
            if data[28:32] == count[0] and data[38:42] == count[1]:
                replies += 1

    sent = 0
    start = time.perf_counter()
    slot = 0.001
    per_slot = max(1, round(rate * slot))
    next_slot = start
    end = start + duration
    n = len(frames)
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if now < next_slot:
            drain()
            time.sleep(max(0.0, min(next_slot - now, 0.0005)))
            continue
        due = min(round((now - start) * rate) - sent, per_slot * 20)
        for _ in range(max(0, due)):
            tx.send(frames[sent % n])
            sent += 1
        next_slot += slot
    elapsed = time.perf_counter() - start
    # Late replies still count (a loaded machine may delay the responder); stop early once all
    # are in, so the wait only costs time when something is actually missing.
    settle = time.perf_counter() + (2.0 if count is not None else 0.2)
    while time.perf_counter() < settle and not (count is not None and replies >= sent):
        drain()
        time.sleep(0.01)
    drain()
    return {"sent": sent, "replies": replies, "elapsed": elapsed, "rate": sent / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["arp", "flood"])
    parser.add_argument("--iface", default="eth0")
    parser.add_argument("--mac", required=True)
    parser.add_argument("--src-ip", default="198.51.100.100")
    parser.add_argument("--target", default="198.51.100.200")
    parser.add_argument("--rate", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    args = parser.parse_args()
    if args.mode == "arp":
        frames = [arp_request(args.mac, args.src_ip, args.target)]
        key = (ipaddress.IPv4Address(args.target).packed, ipaddress.IPv4Address(args.src_ip).packed)
        result = run(args.iface, frames, args.rate, args.duration, key)
    else:
        result = run(args.iface, flood_frames(args.mac), args.rate, args.duration, None)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
