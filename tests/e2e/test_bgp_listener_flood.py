"""`python -m bgp speak --passive` under a connection flood (issue 16, item 15), as a process.

One address opens hundreds of idle connections; then the process runs out of file descriptors
(its RLIMIT_NOFILE is lowered to what it already holds) while connections keep arriving. The
speaker must neither spin (CPU read from /proc) nor flood its log, must hold only a bounded
number of descriptors for the flooding address, and a legitimate peer from another address must
connect during the flood and again once descriptors are free. Everything stays on 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bgp.messages import Keepalive, Open, decode, encode, iter_messages
from bgp.transport import ACCEPT_BACKOFF_MAX, MAX_CONN_PER_ADDRESS

FLOODER = "127.0.0.1"  # a configured peer's address, so its connections are not reset at once
LEGIT = "127.0.0.2"  # the other configured peer
STRANGER = "127.0.0.3"


class SpeakProc:
    def __init__(self, tmp: Path) -> None:
        self.log = tmp / "speak.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bgp", "speak", "--local-as", "64512",
             "--router-id", "10.0.0.1", "--peer", f"64500@{FLOODER}",
             "--peer", f"64501@{LEGIT}", "--passive", "--listen-port", "0",
             "--announce", "198.51.100.0/24"],
            stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.pid = self.proc.pid

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.lines() if e.get("event") == name or e.get("msg") == name]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def speak(tmp_path: Path) -> Iterator[SpeakProc]:
    sp = SpeakProc(tmp_path)
    try:
        wait_for(lambda: sp.events("speakerStarted"), 20, "speakerStarted")
        yield sp
    finally:
        sp.stop()


def _port(sp: SpeakProc) -> int:
    return int(sp.events("speakerStarted")[0]["listenPort"])


def _open_from(source: str, port: int, timeout: float = 5.0) -> socket.socket | None:
    """A TCP connection from `source`, or None when refused, reset or not answered."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def _bgp_handshake(source: str, asn: int, port: int) -> bool:
    """Act as the peer at `source`: send OPEN, expect OPEN + KEEPALIVE, answer KEEPALIVE."""
    s = _open_from(source, port)
    if s is None:
        return False
    try:
        s.sendall(encode(Open(asn, 90, ipaddress.IPv4Address("10.0.0.2"), ())))
        buf = bytearray()
        got: list[object] = []
        deadline = time.monotonic() + 10
        while not any(isinstance(m, Keepalive) for m in got) and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                return False
            buf += chunk
            got += [decode(m) for m in iter_messages(buf)]
        s.sendall(encode(Keepalive()))
        return isinstance(got[0], Open) and got[0].asn == 64512
    except OSError:
        return False
    finally:
        s.close()


def test_flood_from_one_address_is_bounded_and_another_peer_connects(speak: SpeakProc) -> None:
    port = _port(speak)
    base_fds = speak.fds()
    cpu0 = speak.cpu_seconds()
    flood = [s for s in (_open_from(FLOODER, port, 2) for _ in range(300)) if s is not None]
    try:
        time.sleep(1.0)
        # The kernel completes every handshake; the speaker keeps at most the limit.
        held = speak.fds() - base_fds
        assert held <= MAX_CONN_PER_ADDRESS, held
        assert _bgp_handshake(LEGIT, 64501, port), "the peer at another address was locked out"
        wait_for(lambda: speak.events("sessionEstablished"), 10, "the legitimate session")
        assert speak.cpu_seconds() - cpu0 < 3.0
        limited = speak.events("connectionLimited")
        assert 1 <= len(limited) <= 2, len(limited)  # one line per 30 s, with a count
    finally:
        for s in flood:
            s.close()


def test_out_of_descriptors_backs_off_and_recovers(speak: SpeakProc) -> None:
    port = _port(speak)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # No descriptor left: every accept() fails with EMFILE while connections queue up.
    resource.prlimit(speak.pid, resource.RLIMIT_NOFILE, (speak.fds(), hard))
    flood: list[socket.socket] = []
    try:
        for _ in range(40):
            s = _open_from(STRANGER, port, 0.5)
            if s is not None:
                flood.append(s)
        wait_for(lambda: speak.events("acceptFailed"), 5, "acceptFailed")
        cpu0 = speak.cpu_seconds()
        time.sleep(5.0)
        spent = speak.cpu_seconds() - cpu0
        assert spent < 0.5, f"{spent:.2f} s of CPU in 5 s: accept() spins"
        failed = speak.events("acceptFailed")
        assert len(failed) == 1, len(failed)
        assert "Too many open files" in failed[0]["error"]
        assert len(speak.lines()) < 50
        # The flood stops and descriptors are there again: the listener picks up within its
        # back-off cap, says so once, and a legitimate peer gets its session.
        for s in flood:
            s.close()
        flood.clear()
        resource.prlimit(speak.pid, resource.RLIMIT_NOFILE, (soft, hard))
        wait_for(lambda: speak.events("acceptRecovered"), ACCEPT_BACKOFF_MAX + 3, "acceptRecovered")
        assert speak.events("acceptRecovered")[0]["failures"] >= 2
        assert wait_for(lambda: _bgp_handshake(LEGIT, 64501, port), 10, "a session after")
        assert speak.proc.poll() is None
    finally:
        for s in flood:
            s.close()
