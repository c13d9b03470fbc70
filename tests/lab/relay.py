"""A userspace wire with delay, jitter and loss between two interfaces of one namespace.

This kernel has no netem, so `Lan.delay()` splices this relay into a switch port: every frame is
read from one side with an AF_PACKET socket and written to the other after the configured delay.
Run as a script inside the switch namespace: `python -m tests.lab.relay IF_A IF_B DELAY_MS
[JITTER_MS] [LOSS_PERCENT]`. Frames keep their order when jitter is 0.
"""

from __future__ import annotations

import heapq
import os
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def open_raw(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, 0))
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


def relay(if_a: str, if_b: str, delay_ms: float, jitter_ms: float, loss_pct: float) -> None:
    a, b = open_raw(if_a), open_raw(if_b)
    peer = {a.fileno(): b, b.fileno(): a}
    socks = {a.fileno(): a, b.fileno(): b}
    queue: list[tuple[float, int, socket.socket, bytes]] = []
    seq = 0
    last_due = {a.fileno(): 0.0, b.fileno(): 0.0}
    poller = select.poll()
    for fd in socks:
        poller.register(fd, select.POLLIN)
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("relay ready", flush=True)
    while running:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError:
                pass
        timeout_ms = max(0, int((queue[0][0] - now) * 1000)) if queue else 200
        for fd, _ in poller.poll(timeout_ms):
            while True:
                try:
                    frame, addr = socks[fd].recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own transmission on this side
                if loss_pct and random.random() * 100 < loss_pct:
                    continue
                due = time.monotonic() + (delay_ms + random.uniform(-jitter_ms, jitter_ms)) / 1000
                if not jitter_ms:
                    due = max(due, last_due[fd])  # keep per-direction order
                last_due[fd] = due
                seq += 1
                heapq.heappush(queue, (due, seq, peer[fd], frame))


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 3:
        print("usage: relay IF_A IF_B DELAY_MS [JITTER_MS] [LOSS_PERCENT]", file=sys.stderr)
        sys.exit(2)
    os.nice(-5) if os.geteuid() == 0 else None
    relay(
        args[0],
        args[1],
        float(args[2]),
        float(args[3]) if len(args) > 3 else 0.0,
        float(args[4]) if len(args) > 4 else 0.0,
    )
