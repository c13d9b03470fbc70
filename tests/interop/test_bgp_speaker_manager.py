"""The peer manager over loopback: two of our speakers peer with each other.

Speaker A dials, speaker B listens (passive) on a kernel-chosen port of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import AsyncIterator, Callable

import pytest

from bgp.errors import CEASE_PEER_DECONFIGURED
from bgp.fsm import Session
from bgp.packing import RouteAttrs, prefix_key
from bgp.speaker import (
    METRIC_NAMES,
    PeerConfig,
    PeerDown,
    PeerEstablished,
    Speaker,
    SpeakerEvent,
    TableSent,
)


async def until(pred: Callable[[], object], limit: float = 10.0) -> None:
    """Poll a condition on the speakers' state (they offer no awaitable for every fact)."""
    async with asyncio.timeout(limit):
        while not pred():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class Pair:
    def __init__(self) -> None:
        self.events_a: list[SpeakerEvent] = []
        self.events_b: list[SpeakerEvent] = []
        self.b = Speaker(
            64500,
            "192.0.2.2",
            listen_port=0,
            listen_addresses=("127.0.0.1",),
            on_event=self.events_b.append,
        )
        self.a = Speaker(64512, "192.0.2.1", on_event=self.events_a.append)

    async def start(self, hold_time: int = 9) -> PeerConfig:
        self.b.start()
        assert self.b.listener is not None
        self.b.add_peer(PeerConfig("127.0.0.1", 64512, passive=True, hold_time=hold_time))
        cfg = PeerConfig("127.0.0.1", 64500, port=self.b.listener.bound_port, hold_time=hold_time)
        self.a.add_peer(cfg)
        return cfg

    def up(self, events: list[SpeakerEvent], n: int = 1) -> bool:
        return sum(isinstance(e, PeerEstablished) for e in events) >= n


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    p = Pair()
    yield p
    await p.a.shutdown("test over")
    await p.b.shutdown("test over")


async def test_session_up_table_sent_and_counters(pair: Pair) -> None:
    for i in range(300):
        pair.a.announce(prefix_key(f"198.18.{i // 256}.{i % 256}/32"))
    pair.a.announce(prefix_key("2001:db8:200::1/128"), RouteAttrs(communities=(1,)))
    cfg = await pair.start()
    await until(lambda: pair.up(pair.events_a) and pair.up(pair.events_b))
    await until(lambda: any(isinstance(e, TableSent) for e in pair.events_a))
    sent = next(e for e in pair.events_a if isinstance(e, TableSent))
    assert sent.prefixes == 301
    m = pair.a.metrics()[cfg.key]
    assert set(m) == set(METRIC_NAMES)
    assert m["session_up"] == 1 and m["announced_prefixes_total"] == 301
    assert m["pending_prefixes_total"] == 0
    assert m["opens_sent"] == 1 and m["opens_received"] == 1
    assert m["updates_total"] >= 3  # IPv4, IPv6 and two End-of-RIB markers, at least
    assert pair.a.peers[cfg.key].session.eor_sent == {(1, 1), (2, 1)}
    await until(lambda: pair.b.peers["127.0.0.1:179"].session.counters.prefixes_received == 301)


async def test_unchanged_peer_keeps_its_session_and_a_changed_one_resets(pair: Pair) -> None:
    cfg = await pair.start()
    await until(lambda: pair.up(pair.events_a))
    peer = pair.a.peers[cfg.key]
    opens = peer.session.counters.opens_sent

    same = pair.a.add_peer(dataclasses.replace(cfg, name="renamed"))
    pair.a.set_peers([cfg])
    await asyncio.sleep(0.2)
    assert same is peer and pair.a.peers[cfg.key] is peer
    assert peer.session.counters.opens_sent == opens
    assert not any(isinstance(e, PeerDown) for e in pair.events_a)

    pair.a.add_peer(dataclasses.replace(cfg, hold_time=30))
    assert pair.a.peers[cfg.key] is not peer
    await until(lambda: any(isinstance(e, PeerDown) for e in pair.events_b))
    await until(lambda: pair.up(pair.events_a, 2))
    neg = pair.a.peers[cfg.key].negotiated
    assert neg is not None and neg.hold_time == 9  # min(30, B's 9)


async def test_removed_peer_gets_cease_peer_deconfigured(pair: Pair) -> None:
    cfg = await pair.start()
    await until(lambda: pair.up(pair.events_b))
    pair.a.set_peers([])
    assert cfg.key not in pair.a.peers
    await until(lambda: any(isinstance(e, PeerDown) for e in pair.events_b))
    down = next(e for e in pair.events_b if isinstance(e, PeerDown))
    assert isinstance(down, PeerDown)
    assert "De-configured" in down.reason or "deconfigured" in down.reason.lower()
    note = pair.b.peers["127.0.0.1:179"].session.last_down
    assert note is not None and note.notification_received is not None
    assert note.notification_received.subcode == CEASE_PEER_DECONFIGURED


async def test_announce_withdraw_to_named_peers_at_run_time(pair: Pair) -> None:
    cfg = await pair.start()
    await until(lambda: pair.up(pair.events_a))
    rx = pair.b.peers["127.0.0.1:179"].session.counters
    pair.a.announce("203.0.113.1/32", peers=["nobody:179"])
    pair.a.announce(ipaddress.ip_network("203.0.113.2/32"), peers=[cfg.key])
    pair.a.announce(prefix_key("203.0.113.3"))
    await until(lambda: rx.prefixes_received >= 2)
    await asyncio.sleep(0.1)
    assert rx.prefixes_received == 2
    assert pair.a.metrics()[cfg.key]["announced_prefixes_total"] == 2
    pair.a.withdraw(prefix_key("203.0.113.2"))
    await until(lambda: rx.prefixes_withdrawn_received == 1)
    assert pair.a.metrics()[cfg.key]["announced_prefixes_total"] == 1


async def test_planned_restart_leaves_routes_with_the_peer(pair: Pair) -> None:
    """Both sides set the RFC 8538 N bit here, so the soft form (Cease 6/4, not a Hard
    Reset) is used; against routers without it the session closes without NOTIFICATION
    (tests/interop/test_bgp_frr.py)."""
    pair.a.peers.clear()
    pair.b.start()
    assert pair.b.listener is not None
    pair.b.add_peer(PeerConfig("127.0.0.1", 64512, passive=True, graceful_restart=True))
    pair.a.add_peer(
        PeerConfig("127.0.0.1", 64500, port=pair.b.listener.bound_port, graceful_restart=True)
    )
    await until(lambda: pair.up(pair.events_a) and pair.up(pair.events_b))
    await pair.a.shutdown("planned", graceful=True)
    await until(lambda: any(isinstance(e, PeerDown) for e in pair.events_b))
    down = next(e for e in pair.events_b if isinstance(e, PeerDown))
    assert isinstance(down, PeerDown) and down.peer_keeps_routes is True
    last = pair.b.peers["127.0.0.1:179"].session.last_down
    assert last is not None and last.notification_received is not None
    assert (last.notification_received.code, last.notification_received.subcode) == (6, 4)


async def test_speaker_sets_r_after_process_start_only() -> None:
    """Graceful restart's Restart State bit (RFC 4724 §4.1; the pure rule is in
    tests/unit/test_bgp_restart_bit.py): B sees R in A's first OPEN, not after a reconnect."""
    b = Speaker(64500, "192.0.2.2", listen_port=0, listen_addresses=("127.0.0.1",))
    a = Speaker(64512, "192.0.2.1")
    try:
        b.start()
        assert b.listener is not None
        b.add_peer(PeerConfig("127.0.0.1", 64512, passive=True, graceful_restart=True))
        cfg = PeerConfig(
            "127.0.0.1", 64500, port=b.listener.bound_port, graceful_restart=True, restart_time=90
        )
        peer_a = a.add_peer(cfg)
        assert peer_a.session.config.restarting is True
        assert peer_a.session.config.restart_deadline == a.started + 90
        peer_b = b.peers["127.0.0.1:179"]
        await until(lambda: peer_b.negotiated is not None)
        assert peer_b.negotiated is not None
        seen = peer_b.negotiated.peer_graceful_restart
        assert seen is not None and seen.restart_state is True
        assert cfg.key in a.established_keys
        # A configuration change recreates the peer: it is not a restart of the process.
        changed = dataclasses.replace(cfg, hold_time=60)
        peer_a = a.add_peer(changed)
        assert peer_a.session.config.restarting is False
        await until(lambda: b.peers["127.0.0.1:179"].negotiated is not None)
        await until(
            lambda: (n := b.peers["127.0.0.1:179"].negotiated) is not None and n.hold_time == 60
        )
        again = b.peers["127.0.0.1:179"].negotiated
        assert again is not None and again.peer_graceful_restart is not None
        assert again.peer_graceful_restart.restart_state is False
        # Without graceful restart there is no capability, hence no R bit.
        plain = Speaker(64512, "192.0.2.3")
        assert Session is type(
            plain.add_peer(dataclasses.replace(cfg, graceful_restart=False)).session
        )
        assert plain.peers[cfg.key].session.config.restarting is False
        await plain.shutdown("test over")
    finally:
        await a.shutdown("test over")
        await b.shutdown("test over")
