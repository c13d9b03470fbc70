"""Who answers ARP for an address, every few milliseconds; runs as a script in a lab namespace.

    python tests/lab/arp_watch.py --iface eth0 --src-ip S --target T --interval 0.01 --duration D

Sends a broadcast ARP request for T every `interval` seconds from the interface's MAC and S, and
prints one JSON line whenever the MAC answering for T changes (and for the first answer):
`{"t": <CLOCK_MONOTONIC seconds>, "mac": "..."}`. CLOCK_MONOTONIC is one clock for the whole
machine, so the test that kills a speaker can subtract its own timestamp. Frames are built here
by hand, not with the code under test. Prints `{"done": true, "sent": N}` at the end.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time

ETH_P_ARP = 0x0806


def mac_of(iface: str) -> bytes:
    with open(f"/sys/class/net/{iface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def request(mac: bytes, src_ip: str, target: str) -> bytes:
    eth = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    arp += mac + socket.inet_aton(src_ip) + b"\x00" * 6 + socket.inet_aton(target)
    return eth + arp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--src-ip", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args()
    mac = mac_of(args.iface)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind((args.iface, 0))
    frame = request(mac, args.src_ip, args.target)
    target = socket.inet_aton(args.target)
    end = time.monotonic() + args.duration
    next_send = time.monotonic()
    last = b""
    sent = 0
    print(json.dumps({"ready": True, "t": time.monotonic()}), flush=True)
    while (now := time.monotonic()) < end:
        if now >= next_send:
            sock.send(frame)
            sent += 1
            next_send = now + args.interval
        ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
        if not ready:
            continue
        data = sock.recv(2048)
        if len(data) < 42 or data[12:14] != b"\x08\x06":
            continue
        op = struct.unpack("!H", data[20:22])[0]
        if op != 2 or data[28:32] != target:
            continue
        sender = data[22:28]
        if sender != last:
            last = sender
            print(json.dumps({"t": time.monotonic(), "mac": sender.hex(":")}), flush=True)
    print(json.dumps({"done": True, "sent": sent}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
