"""The sans-I/O session FSM driven with a fake clock: every state/event pair that matters."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgp import attributes as A
from bgp import capabilities as C
from bgp import events as E
from bgp import messages as M
from bgp.context import EXTENDED_MAX_MESSAGE, CodecContext
from bgp.fsm import Session, SessionConfig, SessionError, State
from bgp.nlri import Prefix

LOCAL_ID = ipaddress.IPv4Address("198.51.100.11")
PEER_ID = ipaddress.IPv4Address("198.51.100.1")
CFG = SessionConfig(local_as=64512, router_id=LOCAL_ID, peer_as=64500, hold_time=90)


def drain(s: Session) -> list[Any]:
    """All pending events (typed Any: tests pick fields after checking the kind)."""
    out: list[Any] = []
    while (ev := s.next_event()) is not None:
        out.append(ev)
    return out


def sent(s: Session, conn_id: int) -> list[M.Message]:
    buf = bytearray(s.data_to_send(conn_id))
    return [
        M.decode(raw, CodecContext(extended_message=True))
        for raw in M.iter_messages(buf, EXTENDED_MAX_MESSAGE)
    ]


def of(events: Iterable[object], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def peer_open(
    asn: int = 64500,
    hold: int = 30,
    rid: ipaddress.IPv4Address = PEER_ID,
    caps: tuple[C.Capability, ...] | None = None,
) -> bytes:
    if caps is None:
        caps = (C.Multiprotocol(1, 1), C.RouteRefresh(), C.FourOctetAS(asn), C.ExtendedMessage())
    return M.encode(M.Open(asn, hold, rid, caps))


KEEPALIVE = M.KEEPALIVE_BYTES


def establish(
    cfg: SessionConfig = CFG, open_bytes: bytes | None = None, now: float = 0.0
) -> tuple[Session, int]:
    s = Session(cfg, random.Random(1))
    s.start(now)
    if cfg.passive:
        conn = s.accept_connection(now)
    else:
        (req,) = drain(s)
        assert isinstance(req, E.ConnectRequested)
        conn = req.conn_id
        s.connection_made(conn, now)
    s.data_received(conn, (open_bytes or peer_open()) + KEEPALIVE, now)
    evs = drain(s)
    assert of(evs, E.SessionEstablished), evs
    s.data_to_send(conn)
    assert s.state == State.ESTABLISHED
    return s, conn


def update_bytes(*prefixes: str, attrs: bytes | None = None) -> bytes:
    nlri = b"".join(Prefix.parse(p).encode() for p in prefixes)
    if attrs is None:
        attrs = A.encode_attributes(
            (
                A.Origin(0),
                A.AsPath.sequence(64500),
                A.NextHop(ipaddress.IPv4Address("198.51.100.1")),
            )
        )
    return M.encode_update_raw(b"", attrs, nlri)


# ---------------------------------------------------------------- establishment


def test_active_establishment_step_by_step() -> None:
    s = Session(CFG, random.Random(1))
    assert s.state == State.IDLE
    s.start(0.0)
    (req,) = drain(s)
    assert isinstance(req, E.ConnectRequested) and s.state == State.CONNECT
    s.connection_made(req.conn_id, 0.1)
    (open_msg,) = sent(s, req.conn_id)
    assert isinstance(open_msg, M.Open) and open_msg.asn == 64512 and open_msg.hold_time == 90
    assert s.state == State.OPEN_SENT
    assert s.get_timer() == pytest.approx(0.1 + 240)  # large initial hold time
    s.data_received(req.conn_id, peer_open(hold=30), 0.2)
    assert sent(s, req.conn_id) == [M.Keepalive()]
    assert s.state == State.OPEN_CONFIRM
    s.data_received(req.conn_id, KEEPALIVE, 0.3)
    (est,) = drain(s)
    assert isinstance(est, E.SessionEstablished)
    neg = est.negotiated
    assert (neg.hold_time, neg.keepalive_time) == (30, 10)
    assert neg.peer_as == 64500 and neg.peer_router_id == PEER_ID
    assert neg.four_octet_as and neg.extended_message and neg.route_refresh
    assert neg.families == frozenset({(1, 1)})
    assert neg.max_message_size == 65535
    assert s.negotiated == neg and s.established_conn_id == req.conn_id
    c = s.counters
    assert (c.opens_sent, c.opens_received, c.keepalives_sent, c.keepalives_received) == (
        1,
        1,
        1,
        1,
    )
    assert (c.total_sent, c.total_received) == (2, 2)


def test_passive_waits_for_the_peer() -> None:
    cfg = replace(CFG, passive=True)
    s = Session(cfg)
    s.start(0.0)
    assert drain(s) == [] and s.state == State.ACTIVE and s.get_timer() is None
    s, _ = establish(cfg)
    assert s.state == State.ESTABLISHED


def wire_up(
    a: Session, b: Session, now: float
) -> list[tuple[tuple[Session, int], tuple[Session, int]]]:
    """Handle ConnectRequested on both sides by accepting on the other; return link pairs."""
    pairs = []
    for src, dst in ((a, b), (b, a)):
        for ev in drain(src):
            if isinstance(ev, E.ConnectRequested):
                incoming = dst.accept_connection(now)
                src.connection_made(ev.conn_id, now)
                pairs.append(((src, ev.conn_id), (dst, incoming)))
                pairs.append(((dst, incoming), (src, ev.conn_id)))
    return pairs


def run_pairs(pairs: list[tuple[tuple[Session, int], tuple[Session, int]]], now: float) -> None:
    for _ in range(50):
        moved = False
        for (src, sc), (dst, dc) in pairs:
            data = src.data_to_send(sc)
            if data:
                moved = True
                dst.data_received(dc, data, now)
        if not moved:
            return


def test_two_sessions_establish_with_each_other() -> None:
    a = Session(SessionConfig(64512, LOCAL_ID, 64500, hold_time=9), random.Random(1))
    b = Session(SessionConfig(64500, PEER_ID, 64512, passive=True, hold_time=30), random.Random(2))
    a.start(0)
    b.start(0)
    pairs = wire_up(a, b, 0)
    run_pairs(pairs, 0)
    assert a.state == b.state == State.ESTABLISHED
    assert a.negotiated is not None and a.negotiated.hold_time == 9
    assert a.negotiated.keepalive_time == 3


@pytest.mark.parametrize("a_id", ["198.51.100.11", "198.51.100.200"])
def test_collision_between_two_active_sessions_leaves_one_connection(a_id: str) -> None:
    a = Session(SessionConfig(64512, ipaddress.IPv4Address(a_id), 64500), random.Random(1))
    b = Session(
        SessionConfig(64500, ipaddress.IPv4Address("198.51.100.100"), 64512), random.Random(2)
    )
    a.start(0)
    b.start(0)
    pairs = wire_up(a, b, 0)
    assert len(pairs) == 4  # two TCP connections, both directions
    run_pairs(pairs, 0)
    a_events, b_events = drain(a), drain(b)
    assert a.state == b.state == State.ESTABLISHED
    assert len(of(a_events, E.SessionEstablished)) == 1 == len(of(b_events, E.SessionEstablished))
    # The surviving connection is the one initiated by the higher BGP identifier.
    a_higher = int(ipaddress.IPv4Address(a_id)) > int(ipaddress.IPv4Address("198.51.100.100"))
    a_initiated = a.established_conn_id == 1  # a's first ConnectRequested was conn 1
    assert a_initiated == a_higher
    closed = of(a_events + b_events, E.CloseConnection)
    assert len(closed) == 2  # each side closes the losing connection once


@pytest.mark.parametrize(
    ("peer_id", "keep_outgoing"), [("198.51.100.200", False), ("198.51.100.2", True)]
)
def test_collision_detection_by_bgp_identifier(peer_id: str, keep_outgoing: bool) -> None:
    s = Session(CFG, random.Random(1))
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    incoming = s.accept_connection(0)
    s.data_to_send(req.conn_id)
    s.data_to_send(incoming)
    rid = ipaddress.IPv4Address(peer_id)
    s.data_received(req.conn_id, peer_open(rid=rid), 1)
    s.data_received(incoming, peer_open(rid=rid), 1)
    loser = incoming if keep_outgoing else req.conn_id
    winner = req.conn_id if keep_outgoing else incoming
    assert M.Notification(6, 7) in sent(s, loser)
    events = drain(s)
    assert E.CloseConnection(loser, "connection collision resolution") in events
    assert not of(events, E.SessionDown)  # a collision is not a session failure
    s.data_received(winner, KEEPALIVE, 2)
    assert s.established_conn_id == winner


def test_collision_with_equal_identifiers_uses_as_numbers() -> None:
    s = Session(replace(CFG, peer_as=64500), random.Random(1))
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    incoming = s.accept_connection(0)
    s.data_received(req.conn_id, peer_open(rid=LOCAL_ID), 1)
    s.data_received(incoming, peer_open(rid=LOCAL_ID), 1)
    # Local AS 64512 > 64500: our outgoing connection survives (RFC 6286 §2.3).
    assert M.Notification(6, 7) in sent(s, incoming)
    assert req.conn_id in s.connection_ids and incoming not in s.connection_ids


def test_new_connection_while_established_is_refused_without_gr() -> None:
    s, conn = establish()
    incoming = s.accept_connection(5)
    s.data_received(incoming, peer_open(), 5)
    assert M.Notification(6, 7) in sent(s, incoming)
    assert s.established_conn_id == conn


def test_new_connection_while_established_replaces_it_when_peer_does_gr() -> None:
    gr_caps = (C.Multiprotocol(1, 1), C.FourOctetAS(64500), C.GracefulRestart(120, True))
    s, conn = establish(open_bytes=peer_open(caps=gr_caps))
    incoming = s.accept_connection(5)
    s.data_to_send(incoming)
    s.data_received(incoming, peer_open(caps=gr_caps) + KEEPALIVE, 5)
    events = drain(s)
    (down,) = of(events, E.SessionDown)
    assert down.conn_id == conn and down.peer_keeps_routes and down.was_established
    assert s.established_conn_id == incoming


# ---------------------------------------------------------------- timers


def test_keepalives_are_sent_every_hold_over_three() -> None:
    s, conn = establish()
    assert s.get_timer() == pytest.approx(10)
    s.handle_timer(10)
    assert sent(s, conn) == [M.Keepalive()]
    assert s.get_timer() == pytest.approx(20)
    s.handle_timer(20)
    s.data_received(conn, KEEPALIVE, 20)
    s.handle_timer(29.9)  # hold (30 s) restarted at 20 by the peer's keepalive
    assert s.state == State.ESTABLISHED
    assert s.counters.keepalives_sent == 3


def test_configured_keepalive_is_used_but_capped_at_a_third_of_hold() -> None:
    s, _ = establish(replace(CFG, keepalive_time=3))
    assert s.negotiated is not None and s.negotiated.keepalive_time == 3
    s, _ = establish(replace(CFG, keepalive_time=60))
    assert s.negotiated is not None and s.negotiated.keepalive_time == 10


def test_sending_an_update_postpones_the_keepalive() -> None:
    s, conn = establish()
    s.send_update(update_bytes("203.0.113.0/24"), now=8)
    assert s.get_timer() == pytest.approx(18)
    s.handle_timer(10)
    assert [type(m) for m in sent(s, conn)] == [M.Update]
    assert s.counters.updates_sent == 1


def test_hold_timer_expiry_sends_4_0_and_retries() -> None:
    s, conn = establish()
    for t in (10, 20):
        s.handle_timer(t)
    s.handle_timer(30)
    assert sent(s, conn)[-1] == M.Notification(4, 0)
    events = drain(s)
    (down,) = of(events, E.SessionDown)
    assert down.was_established and down.reason == "hold timer expired"
    assert (down.code, down.subcode) == (4, 0)
    assert E.CloseConnection(conn, "hold timer expired") in events
    assert s.state == State.ACTIVE
    deadline = s.get_timer()
    assert deadline is not None and 30 + 0.75 <= deadline <= 31
    s.handle_timer(deadline)
    assert of(drain(s), E.ConnectRequested) and s.state == State.CONNECT


def test_hold_time_zero_disables_keepalives_and_hold_timer() -> None:
    s, conn = establish(open_bytes=peer_open(hold=0))
    neg = s.negotiated
    assert neg is not None and (neg.hold_time, neg.keepalive_time) == (0, 0)
    assert s.get_timer() is None
    s.handle_timer(100000)
    assert s.state == State.ESTABLISHED and sent(s, conn) == []


def test_open_sent_times_out_with_the_large_hold_time() -> None:
    s = Session(CFG)
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    s.data_to_send(req.conn_id)
    s.handle_timer(239)
    assert s.state == State.OPEN_SENT
    s.handle_timer(240)
    assert sent(s, req.conn_id) == [M.Notification(4, 0)]


def test_connect_retry_backoff_grows_with_jitter_and_is_capped() -> None:
    cfg = replace(CFG, connect_retry_time=1.0, connect_retry_max=16.0)
    s = Session(cfg, random.Random(7))
    now = 0.0
    s.start(now)
    delays = []
    for attempt in range(8):
        (req,) = of(drain(s), E.ConnectRequested)
        s.connection_failed(req.conn_id, now)
        assert s.state == State.ACTIVE
        deadline = s.get_timer()
        assert deadline is not None
        delays.append(deadline - now)
        base = min(16.0, 2.0**attempt)
        assert 0.75 * base <= deadline - now <= base
        now = deadline
        s.handle_timer(now)
    assert delays[3] > delays[0] * 4
    assert max(delays) <= 16.0
    assert len({round(d, 6) for d in delays[-3:]}) == 3  # jittered, not identical


def test_backoff_resets_after_establishment() -> None:
    s = Session(CFG, random.Random(3))
    s.start(0)
    for _ in range(4):
        (req,) = of(drain(s), E.ConnectRequested)
        s.connection_failed(req.conn_id, 0)
        t = s.get_timer()
        assert t is not None
        s.handle_timer(t)
    (req,) = of(drain(s), E.ConnectRequested)
    s.connection_made(req.conn_id, 100)
    s.data_received(req.conn_id, peer_open() + KEEPALIVE, 100)
    assert s.state == State.ESTABLISHED
    s.connection_lost(req.conn_id, 101)
    t = s.get_timer()
    assert t is not None and t - 101 <= 1.0


def test_connect_timeout_cancels_and_retries() -> None:
    s = Session(replace(CFG, connect_timeout=5))
    s.start(0)
    (req,) = drain(s)
    s.handle_timer(5)
    events = drain(s)
    assert E.CloseConnection(req.conn_id, "connect timed out") in events
    assert s.state == State.ACTIVE and s.get_timer() is not None


# ---------------------------------------------------------------- bad OPENs


@pytest.mark.parametrize(
    ("cfg", "open_bytes", "code", "subcode"),
    [
        (CFG, peer_open(asn=64501), 2, 2),
        (replace(CFG, peer_as="internal"), peer_open(asn=64500), 2, 2),
        (replace(CFG, peer_as="external"), peer_open(asn=64512), 2, 2),
        (replace(CFG, peer_as=64512), peer_open(asn=64512, rid=LOCAL_ID), 2, 3),
        (replace(CFG, required_capabilities=(C.CAP_GRACEFUL_RESTART,)), peer_open(), 2, 7),
        (
            replace(CFG, families=((2, 1),), required_capabilities=(C.CAP_MULTIPROTOCOL,)),
            peer_open(caps=(C.FourOctetAS(64500),)),
            2,
            7,
        ),
        (CFG, peer_open()[:22] + b"\x00\x01" + peer_open()[24:], 2, 6),  # hold time 1
        (CFG, peer_open()[:19] + b"\x03" + peer_open()[20:], 2, 1),  # version 3
        (CFG, b"\x00" * 19, 1, 1),
        (CFG, M.encode(M.Keepalive()), 5, 1),
        (CFG, M.end_of_rib(), 5, 1),
    ],
    ids=[
        "wrong peer AS",
        "internal but eBGP",
        "external but iBGP",
        "iBGP with our identifier",
        "missing required GR",
        "missing multiprotocol",
        "hold time 1",
        "version 3",
        "bad marker",
        "keepalive in OpenSent",
        "update in OpenSent",
    ],
)
def test_bad_open_gets_its_notification(
    cfg: SessionConfig, open_bytes: bytes, code: int, subcode: int
) -> None:
    s = Session(cfg)
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    s.data_to_send(req.conn_id)
    s.data_received(req.conn_id, open_bytes, 1)
    msgs = sent(s, req.conn_id)
    assert len(msgs) == 1 and isinstance(msgs[0], M.Notification)
    assert (msgs[0].code, msgs[0].subcode) == (code, subcode)
    events = drain(s)
    (down,) = of(events, E.SessionDown)
    assert not down.was_established and down.notification_sent == msgs[0]
    assert of(events, E.CloseConnection)
    assert s.state == State.ACTIVE  # retrying
    assert s.counters.notifications_sent == 1


def test_missing_capability_notification_names_it() -> None:
    s = Session(
        replace(CFG, graceful_restart=True, required_capabilities=(C.CAP_GRACEFUL_RESTART,))
    )
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    s.data_to_send(req.conn_id)
    s.data_received(req.conn_id, peer_open(), 1)
    (note,) = sent(s, req.conn_id)
    assert isinstance(note, M.Notification) and note.data[0] == C.CAP_GRACEFUL_RESTART


def test_dynamic_peer_as_accepts_matching_peers() -> None:
    s, _ = establish(replace(CFG, peer_as="external"), peer_open(asn=4200000000))
    assert s.negotiated is not None and s.negotiated.peer_as == 4200000000
    s, _ = establish(replace(CFG, peer_as="internal"), peer_open(asn=64512))
    assert s.negotiated is not None and s.negotiated.ibgp


# ---------------------------------------------------------------- NOTIFICATION received


def _to_state(target: State) -> tuple[Session, int]:
    if target == State.ESTABLISHED:
        return establish()
    s = Session(CFG)
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    if target == State.OPEN_CONFIRM:
        s.data_received(req.conn_id, peer_open(), 0)
    s.data_to_send(req.conn_id)
    drain(s)
    assert s.state == target
    return s, req.conn_id


@pytest.mark.parametrize("state", [State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED])
def test_notification_received_in_each_state(state: State) -> None:
    s, conn = _to_state(state)
    note = M.Notification.cease(2, "going away")
    s.data_received(conn, M.encode(note), 5)
    events = drain(s)
    (down,) = of(events, E.SessionDown)
    assert down.notification_received == note and down.notification_sent is None
    assert down.was_established == (state == State.ESTABLISHED)
    assert "going away" in down.reason
    assert of(events, E.CloseConnection)
    assert sent(s, conn) == []  # never answer a NOTIFICATION with one
    assert s.counters.notifications_received == 1


@pytest.mark.parametrize(
    ("state", "message", "subcode"),
    [
        (State.OPEN_CONFIRM, M.end_of_rib(), 2),
        (State.OPEN_CONFIRM, None, 2),
        (State.ESTABLISHED, None, 3),
    ],
)
def test_unexpected_messages_are_fsm_errors(
    state: State, message: bytes | None, subcode: int
) -> None:
    s, conn = _to_state(state)
    s.data_received(conn, message or peer_open(), 5)
    assert sent(s, conn)[-1] == M.Notification(5, subcode)


# ---------------------------------------------------------------- shutdown and restart


def test_admin_shutdown_sends_cease_with_message() -> None:
    s, conn = establish()
    s.stop(5, message="maintenance window 42")
    (note,) = sent(s, conn)
    assert isinstance(note, M.Notification) and (note.code, note.subcode) == (6, 2)
    assert note.shutdown_message == "maintenance window 42"
    events = drain(s)
    (down,) = of(events, E.SessionDown)
    assert down.was_established and not down.peer_keeps_routes
    assert of(events, E.CloseConnection)
    assert s.state == State.IDLE and s.get_timer() is None


@pytest.mark.parametrize("subcode", [3, 6, 10])
def test_cease_subcode_chosen_by_the_caller(subcode: int) -> None:
    s, conn = establish()
    s.stop(5, subcode=subcode)
    assert sent(s, conn) == [M.Notification(6, subcode)]


GR_N = (
    C.Multiprotocol(1, 1),
    C.FourOctetAS(64500),
    C.GracefulRestart(120, False, True, (C.GracefulRestartFamily(1, 1, True),)),
)
GR_NO_N = (
    C.Multiprotocol(1, 1),
    C.FourOctetAS(64500),
    C.GracefulRestart(120, False, False, (C.GracefulRestartFamily(1, 1, True),)),
)


def test_admin_shutdown_is_hard_reset_when_rfc8538_negotiated() -> None:
    s, conn = establish(replace(CFG, graceful_restart=True), peer_open(caps=GR_N))
    assert s.negotiated is not None and s.negotiated.hard_reset
    s.stop(5, message="decommissioned")
    (note,) = sent(s, conn)
    assert isinstance(note, M.Notification) and (note.code, note.subcode) == (6, 9)
    assert note.inner is not None and (note.inner.code, note.inner.subcode) == (6, 2)
    assert note.shutdown_message == "decommissioned"


def test_planned_restart_closes_without_notification() -> None:
    s, conn = establish(replace(CFG, graceful_restart=True), peer_open(caps=GR_NO_N))
    neg = s.negotiated
    assert neg is not None and neg.graceful_restart and not neg.hard_reset
    assert neg.peer_graceful_restart is not None and neg.peer_graceful_restart.restart_time == 120
    s.stop(5, graceful=True)
    assert sent(s, conn) == []
    events = drain(s)
    (down,) = of(events, E.SessionDown)
    assert down.peer_keeps_routes and down.notification_sent is None
    assert of(events, E.CloseConnection)


def test_planned_restart_with_n_bit_sends_soft_cease() -> None:
    s, conn = establish(replace(CFG, graceful_restart=True), peer_open(caps=GR_N))
    s.stop(5, graceful=True)
    assert sent(s, conn) == [M.Notification(6, 4)]
    (down,) = of(drain(s), E.SessionDown)
    assert down.peer_keeps_routes


def test_planned_restart_without_gr_is_a_plain_shutdown() -> None:
    s, conn = establish()
    s.stop(5, graceful=True)
    assert sent(s, conn) == [M.Notification(6, 2)]


def test_our_gr_capability_is_advertised() -> None:
    cfg = replace(
        CFG, graceful_restart=True, restart_time=300, restarting=True, families=((1, 1), (2, 1))
    )
    s = Session(cfg)
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    (open_msg,) = sent(s, req.conn_id)
    assert isinstance(open_msg, M.Open)
    gr = open_msg.capability(C.CAP_GRACEFUL_RESTART)
    assert gr == C.GracefulRestart(
        300, True, True, (C.GracefulRestartFamily(1, 1, True), C.GracefulRestartFamily(2, 1, True))
    )


def test_stop_then_start_again() -> None:
    s, _ = establish()
    s.stop(5)
    drain(s)
    s.start(6)
    assert of(drain(s), E.ConnectRequested) and s.state == State.CONNECT


def test_connection_refused_when_not_started() -> None:
    s = Session(CFG)
    conn = s.accept_connection(0)
    assert drain(s) == [E.CloseConnection(conn, "session not started: connection refused")]


def test_connection_lost_reports_down_and_retries() -> None:
    s, conn = establish()
    s.connection_lost(conn, 5)
    (down,) = of(drain(s), E.SessionDown)
    assert down.reason == "connection closed by peer" and down.was_established
    assert s.state == State.ACTIVE and s.get_timer() is not None


# ---------------------------------------------------------------- UPDATE, EoR, route refresh


def test_updates_are_counted_and_dropped() -> None:
    s, conn = establish()
    data = update_bytes("203.0.113.0/24", "192.0.2.0/25") + M.encode_update_raw(
        Prefix.parse("198.51.100.0/24").encode(), b"", b""
    )
    s.data_received(conn, data, 1)
    (ev,) = drain(s)
    assert ev == E.UpdateReceived(conn, 2, 2, 1, frozenset({(1, 1)}))
    assert s.counters.updates_received == 2 and s.counters.prefixes_received == 2


def test_rfc7606_treat_as_withdraw_keeps_the_session() -> None:
    s, conn = establish()
    bad = b"\x40\x01\x01\x07" + A.encode_attributes(
        (A.AsPath.sequence(64500), A.NextHop(ipaddress.IPv4Address("198.51.100.1")))
    )
    s.data_received(conn, update_bytes("203.0.113.0/24", attrs=bad), 1)
    (ev,) = drain(s)
    assert isinstance(ev, E.UpdateReceived)
    assert (ev.announced, ev.withdrawn, ev.treated_as_withdraw) == (0, 1, 1)
    assert [(p.code, p.subcode) for p in ev.problems] == [(3, 6)]
    assert s.state == State.ESTABLISHED and sent(s, conn) == []
    assert s.counters.updates_treated_as_withdraw == 1


def test_fatal_update_error_resets_the_session() -> None:
    s, conn = establish()
    attrs = A.encode_attributes(
        (A.Origin(0), A.AsPath.sequence(64500), A.NextHop(ipaddress.IPv4Address("192.0.2.1")))
    )
    s.data_received(conn, M.encode_update_raw(b"", attrs, b"\x21" + bytes(5)), 1)  # a /33
    (note,) = sent(s, conn)
    assert note == M.Notification(3, 10)
    (down,) = of(drain(s), E.SessionDown)
    assert down.was_established


def test_broken_mp_reach_disables_its_family_only() -> None:
    s, conn = establish()
    mp = b"\x80\x0e\x0b\x00\x02\x01\x05" + bytes(5) + b"\x00\x00"
    attrs = b"\x40\x01\x01\x00" + A.encode_attribute(A.AsPath.sequence(64500)) + mp
    s.data_received(conn, M.encode_update_raw(b"", attrs, b""), 1)
    events = drain(s)
    assert of(events, E.FamilyDisabled) == [E.FamilyDisabled(2, 1, events[0].error)]
    assert s.state == State.ESTABLISHED and (2, 1) in s.disabled_families


def test_end_of_rib_is_reported() -> None:
    s, conn = establish()
    assert s.end_of_rib_pending == {(1, 1)}
    s.data_received(conn, M.end_of_rib(1, 1) + M.end_of_rib(2, 1), 1)
    assert s.end_of_rib_pending == frozenset()
    events = drain(s)
    assert E.EndOfRibReceived(1, 1) in events and E.EndOfRibReceived(2, 1) in events
    assert s.eor_received == {(1, 1), (2, 1)}
    s.send_end_of_rib(1, 1)
    assert s.eor_sent == {(1, 1)}
    assert sent(s, conn) == [M.decode(M.end_of_rib())]


def test_route_refresh_both_ways() -> None:
    s, conn = establish()
    s.data_received(conn, M.encode(M.RouteRefresh(1, 1)) + M.encode(M.RouteRefresh(2, 1)), 1)
    assert drain(s) == [E.RouteRefreshRequested(1, 1)]  # IPv6 was not negotiated: ignored
    s.send_route_refresh(1, 1)
    assert sent(s, conn) == [M.RouteRefresh(1, 1)]
    assert s.counters.route_refresh_received == 2 and s.counters.route_refresh_sent == 1


def test_route_refresh_needs_the_capability() -> None:
    s, _ = establish(open_bytes=peer_open(caps=(C.FourOctetAS(64500),)))
    with pytest.raises(SessionError):
        s.send_route_refresh(1, 1)


def test_send_update_requires_established() -> None:
    s = Session(CFG)
    with pytest.raises(SessionError):
        s.send_update(update_bytes("203.0.113.0/24"))


def test_large_update_in_the_same_segment_as_the_open() -> None:
    s = Session(CFG)
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    prefixes = [f"198.18.{i // 256}.{i % 256}/32" for i in range(1500)]
    big = update_bytes(*prefixes)
    assert len(big) > 4096
    s.data_received(req.conn_id, peer_open() + KEEPALIVE + big, 1)
    events = drain(s)
    (upd,) = of(events, E.UpdateReceived)
    assert upd.announced == 1500 and s.state == State.ESTABLISHED


def test_byte_at_a_time_delivery() -> None:
    s = Session(CFG)
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    for b in peer_open() + KEEPALIVE + update_bytes("203.0.113.0/24"):
        s.data_received(req.conn_id, bytes([b]), 1)
    assert s.state == State.ESTABLISHED and s.counters.prefixes_received == 1


def test_ipv6_and_extended_next_hop_negotiation() -> None:
    cfg = replace(CFG, families=((1, 1), (2, 1)), extended_next_hop=((1, 1, 2),))
    caps = (
        C.Multiprotocol(1, 1),
        C.Multiprotocol(2, 1),
        C.ExtendedNextHop(((1, 1, 2),)),
        C.FourOctetAS(64500),
    )
    s, _ = establish(cfg, peer_open(caps=caps))
    neg = s.negotiated
    assert neg is not None
    assert neg.families == frozenset({(1, 1), (2, 1)})
    assert neg.extended_next_hop == frozenset({(1, 1, 2)})
    assert not neg.extended_message and neg.max_message_size == 4096


def test_two_octet_peer_gets_as_trans() -> None:
    cfg = replace(CFG, local_as=4200000001)
    s = Session(cfg)
    s.start(0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0)
    raw = s.data_to_send(req.conn_id)
    assert raw[20:22] == (23456).to_bytes(2, "big")
    s.data_received(req.conn_id, M.encode(M.Open(64500, 90, PEER_ID, ())) + KEEPALIVE, 0)
    neg = s.negotiated
    assert neg is not None and not neg.four_octet_as and not neg.rx.four_octet_as


def test_hold_expiry_with_rfc8538_lets_the_peer_keep_our_routes() -> None:
    s, conn = establish(replace(CFG, graceful_restart=True), peer_open(caps=GR_N))
    for t in (10, 20, 30):
        s.handle_timer(t)
    assert sent(s, conn)[-1] == M.Notification(4, 0)  # not wrapped: a soft reset
    (down,) = of(drain(s), E.SessionDown)
    assert down.peer_keeps_routes


def test_enhanced_route_refresh_markers() -> None:
    cfg = replace(CFG, enhanced_route_refresh=True)
    caps = (C.Multiprotocol(1, 1), C.RouteRefresh(), C.EnhancedRouteRefresh(), C.FourOctetAS(64500))
    s, conn = establish(cfg, peer_open(caps=caps))
    assert s.negotiated is not None and s.negotiated.enhanced_route_refresh
    s.send_route_refresh(1, 1, subtype=1)
    s.send_route_refresh(1, 1, subtype=2)
    assert sent(s, conn) == [M.RouteRefresh(1, 1, 1), M.RouteRefresh(1, 1, 2)]
    s.data_received(conn, M.encode(M.RouteRefresh(1, 1, 1)), 1)  # peer's BoRR: no request
    assert drain(s) == []
    s2, _ = establish()
    with pytest.raises(SessionError):
        s2.send_route_refresh(1, 1, subtype=1)


# ---------------------------------------------------------------- random driving


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "start",
                "stop",
                "stop_graceful",
                "made",
                "failed",
                "lost",
                "accept",
                "open",
                "keepalive",
                "update",
                "notification",
                "garbage",
                "time",
                "send",
            ]
        ),
        st.integers(0, 3),
        st.floats(0, 200),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS, st.booleans())
def test_random_event_sequences_keep_the_invariants(
    ops: list[tuple[str, int, float]], passive: bool
) -> None:
    """Whatever the driver does, the session never raises (except SessionError for
    commands it cannot honour), keeps at most one established connection and never asks
    for a timer in the past."""
    cfg = replace(CFG, passive=passive, graceful_restart=True, hold_time=9)
    s = Session(cfg, random.Random(0))
    now = 0.0
    known: list[int] = []
    payloads = {
        "open": peer_open(caps=GR_N),
        "keepalive": KEEPALIVE,
        "update": update_bytes("203.0.113.0/24"),
        "notification": M.encode(M.Notification(6, 2)),
        "garbage": b"\x00" * 19,
    }
    for op, idx, dt in ops:
        conn = known[idx % len(known)] if known else 0
        if op == "start":
            s.start(now)
        elif op == "stop":
            s.stop(now, message="bye")
        elif op == "stop_graceful":
            s.stop(now, graceful=True)
        elif op == "made":
            s.connection_made(conn, now)
        elif op == "failed":
            s.connection_failed(conn, now)
        elif op == "lost":
            s.connection_lost(conn, now)
        elif op == "accept":
            known.append(s.accept_connection(now))
        elif op == "time":
            now += dt
            s.handle_timer(now)
            deadline = s.get_timer()
            assert deadline is None or deadline > now
        elif op == "send":
            try:
                s.send_update(update_bytes("198.51.100.0/24"), now=now)
            except SessionError:
                assert s.state != State.ESTABLISHED
        else:
            s.data_received(conn, payloads[op], now)
        for ev in drain(s):
            if isinstance(ev, E.ConnectRequested):
                known.append(ev.conn_id)
        established = [c for c in s._conns.values() if c.state == State.ESTABLISHED]
        assert len(established) <= 1
        for c in known:
            s.data_to_send(c)
        if s.state == State.IDLE:
            assert s.get_timer() is None


@pytest.mark.parametrize(
    "changes",
    [
        {"hold_time": 1},
        {"hold_time": 2},
        {"hold_time": 70000},
        {"local_as": 0},
        {"keepalive_time": -1},
        {"restart_time": 4096},
        {"connect_retry_time": 0},
        {"connect_retry_time": 10, "connect_retry_max": 5},
        {"connect_timeout": 0},
    ],
)
def test_invalid_session_config_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(CFG, **changes)
