"""Graceful restart's Restart State bit (RFC 4724 §4.1) in the OPENs we send.

Rule: with graceful restart configured, a session's OPENs carry R until that session is first
Established in this process, and never later than the restart time after the process started.
A peer that kept our routes across our restart then knows we restarted (GoBGP logs "restart flag
is not set" otherwise) and stops waiting for our End-of-RIB before sending us its own routes.
Two speakers over loopback: tests/interop/test_bgp_speaker_manager.py.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace
from typing import Any

from bgp import capabilities as C
from bgp import events as E
from bgp import messages as M
from bgp.context import EXTENDED_MAX_MESSAGE, CodecContext
from bgp.fsm import Session, SessionConfig

CFG = SessionConfig(
    local_as=64512,
    router_id=ipaddress.IPv4Address("198.51.100.11"),
    peer_as=64500,
    graceful_restart=True,
    restart_time=120,
    restarting=True,
)
PEER_OPEN = M.encode(
    M.Open(
        64500,
        30,
        ipaddress.IPv4Address("198.51.100.1"),
        (C.Multiprotocol(1, 1), C.FourOctetAS(64500), C.GracefulRestart(120)),
    )
)


def drain(s: Session) -> list[Any]:
    out: list[Any] = []
    while (ev := s.next_event()) is not None:
        out.append(ev)
    return out


def our_restart_bit(s: Session, conn: int) -> bool:
    """The R bit of the OPEN this connection sent."""
    buf = bytearray(s.data_to_send(conn))
    msgs = [
        M.decode(raw, CodecContext(extended_message=True))
        for raw in M.iter_messages(buf, EXTENDED_MAX_MESSAGE)
    ]
    opens = [m for m in msgs if isinstance(m, M.Open)]
    assert len(opens) == 1, msgs
    gr = opens[0].capability(C.CAP_GRACEFUL_RESTART)
    assert isinstance(gr, C.GracefulRestart)
    return gr.restart_state


def connect(s: Session, now: float) -> int:
    """The next outgoing connection, made at `now` (firing the retry timer when one is due)."""
    events = drain(s)
    if not any(isinstance(e, E.ConnectRequested) for e in events):
        due = s.get_timer()
        assert due is not None and due <= now, events
        s.handle_timer(now)
        events = drain(s)
    req = next(e for e in events if isinstance(e, E.ConnectRequested))
    s.connection_made(req.conn_id, now)
    return int(req.conn_id)


def test_capability_encoding_of_the_restart_state_bit() -> None:
    """Flags are the top 4 bits of the first 16: R = 0x8, N = 0x4; then the 12-bit time."""
    fam = (C.GracefulRestartFamily(1, 1, True),)
    restarting = C.GracefulRestart(120, restart_state=True, families=fam)
    assert restarting.encode_value() == bytes([0x80, 120, 0, 1, 1, 0x80])
    both = C.GracefulRestart(4095, restart_state=True, notification=True)
    assert both.encode_value() == bytes([0xCF, 0xFF])
    plain = C.GracefulRestart(300, restart_state=False, families=fam)
    assert plain.encode_value() == bytes([0x01, 0x2C, 0, 1, 1, 0x80])
    for cap in (restarting, both, plain):
        assert C.decode_capability(cap.code, cap.encode_value()) == cap


def test_r_bit_until_the_session_is_first_established() -> None:
    s = Session(CFG, random.Random(1))
    s.start(0.0)
    conn = connect(s, 0.0)
    assert our_restart_bit(s, conn) is True
    s.data_received(conn, PEER_OPEN + M.KEEPALIVE_BYTES, 0.1)
    (up,) = [e for e in drain(s) if isinstance(e, E.SessionEstablished)]
    ours = up.negotiated.local_graceful_restart
    assert ours is not None and ours.restart_state is True
    s.data_to_send(conn)
    # The peer goes away; our next OPEN is an ordinary one: we did not restart again.
    s.connection_lost(conn, 1.0)
    again = connect(s, 60.0)
    assert our_restart_bit(s, again) is False


def test_r_bit_stops_at_the_deadline() -> None:
    s = Session(replace(CFG, restart_deadline=100.0), random.Random(1))
    s.start(0.0)
    first = connect(s, 0.0)
    assert our_restart_bit(s, first) is True
    s.connection_lost(first, 90.0)
    second = connect(s, 100.0)
    assert our_restart_bit(s, second) is False


def test_no_r_bit_without_restarting_or_without_graceful_restart() -> None:
    s = Session(replace(CFG, restarting=False), random.Random(1))
    s.start(0.0)
    assert our_restart_bit(s, connect(s, 0.0)) is False
    s = Session(replace(CFG, graceful_restart=False), random.Random(1))
    s.start(0.0)
    buf = bytearray(s.data_to_send(connect(s, 0.0)))
    (open_msg,) = [M.decode(raw, CodecContext()) for raw in M.iter_messages(buf, 4096)]
    assert isinstance(open_msg, M.Open)
    assert open_msg.capability(C.CAP_GRACEFUL_RESTART) is None
