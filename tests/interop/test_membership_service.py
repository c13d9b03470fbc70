"""The membership shell on loopback: members find each other, notice a silent death and a
goodbye; and hostile traffic — garbage datagrams, packets under a foreign key, idle or endless TCP
connections — is dropped and counted without disturbing the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from metallb_py.membership import wire
from metallb_py.membership.config import fast
from metallb_py.membership.crypto import Keyring
from metallb_py.membership.messages import Ping
from metallb_py.membership.service import MAX_INBOUND_STREAMS, MembershipService

SECRET = "abcdefghijklmnopqrstuv"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_addrs(n: int) -> list[str]:
    """Addresses of their own per test worker, so parallel tests never share one."""
    base = 10 + (os.getpid() % 200)
    return [f"127.{base}.{os.getpid() % 250}.{i + 1}" for i in range(n)]


async def until(pred: Callable[[], bool], within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.01)


Cluster = Callable[[int], Awaitable[list[MembershipService]]]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    stop = asyncio.Event()
    services: list[MembershipService] = []
    tasks: list[asyncio.Task[None]] = []
    port = free_port()

    async def make(n: int) -> list[MembershipService]:
        addrs = loopback_addrs(n)
        for i, addr in enumerate(addrs):
            others = [a for a in addrs if a != addr]

            async def seeds(others: list[str] = others) -> list[str]:
                return others

            svc = MembershipService(
                f"node{i + 1}", addr, port, fast(), keyring=Keyring.from_secret(SECRET), seeds=seeds
            )
            await svc.start()
            services.append(svc)
        tasks.extend(asyncio.create_task(s.run(stop)) for s in services)
        for s in services:
            await until(
                lambda s=s: (s.members() or set()) == {f"node{i + 1}" for i in range(n)},
                10,
                "all members see each other",
            )
        return services

    yield make
    stop.set()
    for s in services:
        await s.close()
    for t in tasks:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


async def test_a_silent_death_and_a_goodbye_are_both_noticed(cluster: Cluster) -> None:
    a, b, c = await cluster(3)
    await c.close()  # sockets gone, nothing said: like kill -9
    await until(lambda: a.members() == {"node1", "node2"}, 5, "node3 declared dead")
    assert a.snapshot()["states"].get("dead") == 1
    await b.leave()
    await until(lambda: a.members() == {"node1"}, 2, "node2's goodbye heard")
    assert a.snapshot()["states"].get("left") == 1


async def test_garbage_and_foreign_keys_are_dropped_and_counted(cluster: Cluster) -> None:
    a, b = await cluster(2)
    target = (a.bind_addr, a.port)
    foreign = Keyring.from_secret("another-cluster-secret")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(200):
            s.sendto(os.urandom(1 + i % 300), target)
        for i in range(50):
            s.sendto(wire.encode_packet([Ping(seq_no=i, node="node1")], keyring=foreign), target)
        s.sendto(wire.encode_packet([Ping(seq_no=1, node="node1")]), target)  # no key at all
    await until(lambda: sum(a.dropped.values()) >= 251, 5, "every hostile packet counted")
    assert a.dropped["decrypt"] + a.dropped["unencrypted"] >= 51
    await asyncio.sleep(0.5)
    assert a.members() == {"node1", "node2"} and b.members() == {"node1", "node2"}


async def test_idle_and_endless_streams_are_cut_off(cluster: Cluster) -> None:
    (a, _) = await cluster(2)
    idle = []
    for _ in range(MAX_INBOUND_STREAMS + 8):
        _, w = await asyncio.open_connection(a.bind_addr, a.port)
        idle.append(w)
    await until(lambda: a.dropped["stream_limit"] >= 8, 5, "connections over the limit refused")
    # Every idle one is closed after the TCP timeout; the cluster went on meanwhile.
    await until(
        lambda: a.dropped["stream_timeout"] >= MAX_INBOUND_STREAMS,
        a.config.tcp_timeout + 5,
        "idle connections timed out",
    )
    for w in idle:
        w.close()
    # A stream that never ends its message is cut at the size limit or the timeout, not buffered.
    r, w = await asyncio.open_connection(a.bind_addr, a.port)
    with contextlib.suppress(ConnectionError):
        for _ in range(64):
            w.write(b"\x06" + b"\xff" * 65536)
            await w.drain()
    try:
        assert await asyncio.wait_for(r.read(), a.config.tcp_timeout + 5) == b""
    except ConnectionResetError:
        pass  # closed with our bytes unread: the kernel answers with a reset, also a cut
    w.close()
    assert a.members() == {"node1", "node2"}
