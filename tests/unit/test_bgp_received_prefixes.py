"""The session's count of the prefixes a peer advertises now (BGPSessionState.prefixesReceived)."""

from __future__ import annotations

import ipaddress
import random
from types import SimpleNamespace
from typing import Any

import pytest

from bgp import attributes as A
from bgp import capabilities as C
from bgp import events as E
from bgp import fsm
from bgp import messages as M
from bgp.fsm import Session, SessionConfig
from bgp.nlri import Prefix
from metallb_py.speaker.bgp_shell import BgpShell

CFG = SessionConfig(
    local_as=64512,
    router_id=ipaddress.IPv4Address("198.51.100.11"),
    peer_as=64500,
    families=((1, 1), (2, 1)),
)
PEER_OPEN = M.encode(
    M.Open(
        64500,
        30,
        ipaddress.IPv4Address("198.51.100.1"),
        (C.Multiprotocol(1, 1), C.Multiprotocol(2, 1), C.FourOctetAS(64500)),
    )
)
BASE = (A.Origin(0), A.AsPath.sequence(64500))


def drain(s: Session) -> list[Any]:
    out: list[Any] = []
    while (ev := s.next_event()) is not None:
        out.append(ev)
    return out


def establish() -> tuple[Session, int]:
    s = Session(CFG, random.Random(1))
    s.start(0.0)
    (req,) = drain(s)
    s.connection_made(req.conn_id, 0.0)
    s.data_received(req.conn_id, PEER_OPEN + M.KEEPALIVE_BYTES, 0.0)
    assert any(isinstance(e, E.SessionEstablished) for e in drain(s))
    return s, int(req.conn_id)


def v4(*texts: str) -> tuple[Prefix, ...]:
    return tuple(Prefix.parse(t) for t in texts)


def update(
    nlri: tuple[Prefix, ...] = (),
    withdrawn: tuple[Prefix, ...] = (),
    v6: tuple[Prefix, ...] = (),
    v6_withdrawn: tuple[Prefix, ...] = (),
) -> bytes:
    attrs: list[Any] = []
    if nlri or v6:
        attrs.extend(BASE)
    if nlri:
        attrs.append(A.NextHop(ipaddress.IPv4Address("192.0.2.1")))
    if v6:
        attrs.append(A.MpReachNlri.build(2, 1, ["2001:db8::1"], v6))
    if v6_withdrawn:
        attrs.append(A.MpUnreachNlri(2, 1, v6_withdrawn))
    return M.encode(M.Update(withdrawn=withdrawn, attributes=tuple(attrs), nlri=nlri))


def test_count_follows_the_peers_table() -> None:
    s, conn = establish()
    assert s.received_count == 0
    s.data_received(conn, update(nlri=v4("10.0.0.0/24", "10.0.1.0/24")), 1.0)
    s.data_received(conn, update(v6=v4("2001:db8:1::/48")), 1.0)
    assert s.received_count == 3
    # A re-announcement replaces the route: still three prefixes, four announcements counted.
    s.data_received(conn, update(nlri=v4("10.0.0.0/24")), 2.0)
    assert s.received_count == 3 and s.counters.prefixes_received == 4
    s.data_received(conn, update(withdrawn=v4("10.0.1.0/24", "10.9.9.0/24")), 3.0)
    s.data_received(conn, update(v6_withdrawn=v4("2001:db8:1::/48")), 3.0)
    assert s.received_count == 1
    drain(s)


def test_session_down_empties_the_table() -> None:
    s, conn = establish()
    s.data_received(conn, update(nlri=v4("10.0.0.0/24")), 1.0)
    assert s.received_count == 1
    s.connection_lost(conn, 2.0)
    assert s.received_count == 0


def test_limit_makes_the_count_a_lower_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsm, "MAX_RECEIVED_TRACKED", 2)
    s, conn = establish()
    s.data_received(conn, update(nlri=v4("10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24")), 1.0)
    assert s.received_count == 2 and s.received_overflow
    # Known prefixes are still replaced and withdrawn.
    s.data_received(conn, update(nlri=v4("10.0.0.0/24")), 2.0)
    assert s.received_count == 2
    s.data_received(conn, update(withdrawn=v4("10.0.0.0/24")), 3.0)
    assert s.received_count == 1
    assert fsm.MAX_RECEIVED_TRACKED == 2
    monkeypatch.undo()
    assert fsm.MAX_RECEIVED_TRACKED == 100_000


def test_the_speaker_reports_it_in_the_session_status() -> None:
    """BgpShell.sessions() is what the speaker writes into BGPSessionState.status."""
    shell = BgpShell("node1")
    session, conn = establish()
    session.data_received(conn, update(nlri=v4("10.0.0.0/24", "10.0.1.0/24")), 1.0)
    peer = SimpleNamespace(
        session=session,
        address="192.0.2.1",
        config=SimpleNamespace(address="192.0.2.1", vrf=None, interface=None),
        ribout=SimpleNamespace(announced=5),
    )
    shell.speaker.peers = {"192.0.2.1:179": peer}  # type: ignore[dict-item]
    (info,) = shell.sessions()
    assert info.state == "Established"
    assert (info.prefixes_sent, info.prefixes_received) == (5, 2)
