"""A tiny TCP client/server with bgp.sockopts applied, run inside a lab namespace.

    python tests/lab/bgp_tcpprobe.py listen ADDR PORT PEER PASSWORD   # prints "ready", then
                                                                      # "accepted" on a connection
    python tests/lab/bgp_tcpprobe.py connect ADDR PORT SRC PASSWORD [TTL]  # exit 0 when connected

Used by the MD5/TTL interop tests so the options are exercised on real sockets between namespaces.
"""

from __future__ import annotations

import socket
import sys

from bgp import sockopts


def listen(addr: str, port: int, peer: str, password: str) -> int:
    with socket.socket(sockopts.family_of(addr), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sockopts.set_md5(s, peer, password or None)
        s.bind((addr, port))
        s.listen()
        print("ready", flush=True)
        s.settimeout(30)
        conn, remote = s.accept()
        print("accepted", remote[0], flush=True)
        conn.sendall(b"hello")
        conn.close()
    return 0


def connect(addr: str, port: int, src: str, password: str, ttl: int | None) -> int:
    with socket.socket(sockopts.family_of(addr), socket.SOCK_STREAM) as s:
        sockopts.set_md5(s, addr, password or None)
        if ttl is not None:
            sockopts.set_ttl(s, ttl)
        sockopts.bind_source(s, src)
        s.settimeout(1.5)
        try:
            s.connect((addr, port))
            data = s.recv(5)
        except OSError as exc:
            print("failed", exc, flush=True)
            return 1
        print("connected", data.decode(), flush=True)
    return 0


if __name__ == "__main__":
    mode, a, p, other, pw, *rest = sys.argv[1:]
    if mode == "listen":
        sys.exit(listen(a, int(p), other, pw))
    sys.exit(connect(a, int(p), other, pw, int(rest[0]) if rest else None))
