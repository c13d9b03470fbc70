"""The asyncio engine over real UDP sockets on loopback (no namespace needed).

Each test picks its own 127.x.y.0/24 addresses, so parallel test workers never share a socket.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from bfd.dispatch import SessionKey
from bfd.engine import Engine, ManagedSession
from bfd.events import Event, StateChanged
from bfd.packet import ControlPacket, Diag, State
from bfd.profile import Profile

# Fast enough for quick tests, slow enough that a loaded CI machine never flaps them.
FAST = Profile(receive_interval_ms=100, transmit_interval_ms=100, detect_multiplier=3)


def _pair() -> tuple[str, str]:
    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    return f"{base}.1", f"{base}.2"


async def until(predicate: Callable[[], object], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


@pytest.fixture
async def engines() -> AsyncIterator[tuple[Engine, Engine, str, str]]:
    a, b = Engine(), Engine()
    await a.start()
    await b.start()
    addr_a, addr_b = _pair()
    try:
        yield a, b, addr_a, addr_b
    finally:
        await a.close()
        await b.close()


async def test_two_engines_come_up_and_admin_down_is_seen(
    engines: tuple[Engine, Engine, str, str],
) -> None:
    a, b, addr_a, addr_b = engines
    seen: list[tuple[str, Event]] = []

    def record(ms: ManagedSession, ev: Event) -> None:
        seen.append((ms.key.peer, ev))

    a.subscribe(record)
    key_a = SessionKey(addr_b, addr_a)
    sa = a.add(key_a, FAST)
    sb = b.add(SessionKey(addr_a, addr_b), FAST)
    await until(lambda: sa.state is State.UP and sb.state is State.UP)
    assert 49152 <= sa.source_port <= 65535 and sa.source_port != sb.source_port
    await until(lambda: not sa.session.poll_active and sa.session.tx_interval_us == 100_000)
    assert sa.metrics()["session_up"] == 1 and sa.metrics()["session_up_events"] == 1

    b.remove(SessionKey(addr_a, addr_b))
    await until(lambda: sa.state is State.DOWN, 2)
    assert sa.session.local_diag is Diag.NEIGHBOR_DOWN
    downs = [ev for _, ev in seen if isinstance(ev, StateChanged) and ev.new is State.DOWN]
    assert downs and downs[-1].remote_diag is Diag.ADMIN_DOWN
    assert sa.metrics()["session_down_events"] == 1
    assert a.lateness.samples > 0


async def test_peer_silence_is_detected_within_a_generous_bound(
    engines: tuple[Engine, Engine, str, str],
) -> None:
    a, b, addr_a, addr_b = engines
    sa = a.add(SessionKey(addr_b, addr_a), FAST)
    sb = b.add(SessionKey(addr_a, addr_b), FAST)
    await until(lambda: sa.state is State.UP and sb.state is State.UP)
    await until(lambda: not sa.session.poll_active and not sb.session.poll_active)
    loop = asyncio.get_running_loop()
    b.remove(SessionKey(addr_a, addr_b), admin_down=False)  # b vanishes without a word
    start = loop.time()
    await until(lambda: sa.state is State.DOWN, 5)
    assert sa.session.local_diag is Diag.CONTROL_DETECTION_EXPIRED
    assert loop.time() - start < 5 * 0.300


async def test_profile_change_at_run_time_does_not_flap(
    engines: tuple[Engine, Engine, str, str],
) -> None:
    a, b, addr_a, addr_b = engines
    key = SessionKey(addr_b, addr_a)
    sa = a.add(key, FAST)
    sb = b.add(SessionKey(addr_a, addr_b), FAST)
    await until(lambda: sa.state is State.UP and sb.state is State.UP)
    await until(lambda: not sa.session.poll_active)
    ups = sa.counters.session_up_events
    a.update(key, Profile(receive_interval_ms=400, transmit_interval_ms=400))
    await until(lambda: not sa.session.poll_active and sb.session.detection_time_us == 1_200_000)
    await asyncio.sleep(0.5)
    assert sa.state is State.UP and sb.state is State.UP
    assert sa.counters.session_up_events == ups and sa.counters.session_down_events == 0


async def test_bad_ttl_and_garbage_are_dropped_and_counted(
    engines: tuple[Engine, Engine, str, str],
) -> None:
    a, _b, addr_a, addr_b = engines
    sa = a.add(SessionKey(addr_b, addr_a), FAST)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.bind((addr_b, 0))
        good = ControlPacket(state=State.DOWN, my_discriminator=5).encode()
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
        sender.sendto(good, (addr_a, 3784))  # one hop claimed, but not TTL 255: GTSM says drop
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        sender.sendto(b"\x20" * 10, (addr_a, 3784))
        await until(lambda: sum(a.dispatcher.drops.values()) >= 2, 2)
    finally:
        sender.close()
    assert a.dispatcher.drops == {"bad_ttl": 1, "too_short": 1}
    assert sa.state is State.DOWN and sa.counters.control_packet_input == 0


async def test_profile_below_the_floor_is_raised_and_logged(
    engines: tuple[Engine, Engine, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    a, _b, addr_a, addr_b = engines
    with caplog.at_level(logging.WARNING, logger="bfd"):
        sa = a.add(
            SessionKey(addr_b, addr_a), Profile(receive_interval_ms=10, transmit_interval_ms=10)
        )
    assert sa.session.params.required_min_rx_us == a.floor_ms * 1000
    assert sa.session.params.desired_min_tx_us == a.floor_ms * 1000
    assert [r.getMessage() for r in caplog.records] == ["bfdIntervalFloorApplied"]


async def test_duplicate_and_mixed_family_sessions_are_refused(
    engines: tuple[Engine, Engine, str, str],
) -> None:
    a, _b, addr_a, addr_b = engines
    a.add(SessionKey(addr_b, addr_a))
    with pytest.raises(ValueError, match="already exists"):
        a.add(SessionKey(addr_b, addr_a))
    with pytest.raises(ValueError, match="same family"):
        a.add(SessionKey("::1", addr_a))
    with pytest.raises(ValueError, match="multihop"):
        a.add(SessionKey(addr_b, addr_a, multihop=True), Profile(echo_mode=True))
    with pytest.raises(ValueError, match="IPv4"):
        a.add(SessionKey("::1", "::1"), Profile(echo_mode=True))
    assert list(a.sessions) == [SessionKey(addr_b, addr_a)], "refusals leave nothing behind"
    with pytest.raises(OSError):
        a.add(SessionKey(addr_b, "192.0.2.77"))  # not a local address: bind fails
    assert len(a.sessions) == 1 and ("192.0.2.77", 3784) not in a._rx
