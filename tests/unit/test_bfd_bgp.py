"""The BFD-to-BGP glue on loopback: path failure tears BGP down, a peer's AdminDown does not."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from bfd.dispatch import SessionKey
from bfd.engine import Engine
from bfd.packet import State
from bfd.profile import Profile
from bgp.speaker import PeerConfig, Speaker
from metallb_py.speaker.bfd_bgp import BfdBgp, BfdPeer

FAST = Profile(receive_interval_ms=200, transmit_interval_ms=200)


async def until(predicate: Callable[[], object], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("admin_down", "torn_down"), [(False, 1), (True, 0)])
async def test_bfd_down_tears_bgp_down_unless_the_peer_said_admin_down(
    admin_down: bool, torn_down: int
) -> None:
    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    ours, theirs = f"{base}.1", f"{base}.2"
    speaker = Speaker(64512, ours, listen_port=None)
    ours_engine, their_engine = Engine(), Engine()
    await ours_engine.start()
    await their_engine.start()
    glue = BfdBgp(speaker, ours_engine)
    try:
        config = PeerConfig(theirs, 64500, local_address=ours, connect_retry=0.2)
        speaker.start()
        peer = speaker.add_peer(config)
        assert glue.set_peers([BfdPeer(config, FAST)]) == []
        their_key = SessionKey(ours, theirs)
        their_engine.add(their_key, FAST)
        ms = ours_engine.sessions[SessionKey(theirs, ours)]
        await until(lambda: ms.state is State.UP)
        their_engine.remove(their_key, admin_down=admin_down)
        await until(lambda: ms.state is State.DOWN)
        await asyncio.sleep(0.05)
        assert glue.teardowns == torn_down
        if torn_down:
            # BGP does not wait for BFD: the peer is started again after ConnectRetry.
            await until(lambda: peer.key not in glue.pending_restarts, 3)
            assert speaker.peers[peer.key] is peer
        # Peers without a profile lose their BFD session.
        assert glue.set_peers([BfdPeer(config, None)]) == []
        assert not ours_engine.sessions
    finally:
        glue.close()
        await speaker.shutdown()
        await ours_engine.close()
        await their_engine.close()
