"""Run our BGP speaker with BFD glued to it, inside a lab namespace (for tests only).

    python -m tests.lab.bfd_bgp_runner --local-as 64512 --router-id IP --peer-as 64500 \
        (--peer IP | --interface IFNAME) [--connect-retry S] [--tx-ms 300] [--rx-ms 300]

Logs JSON lines (the speaker's sessionEstablished/sessionDown, BFD's bfdStateChange, and the
glue's bgpSessionTornDownByBfd); SIGTERM shuts everything down.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from bfd.engine import Engine
from bfd.profile import Profile
from bgp.speaker import PeerAddressChanged, PeerConfig, Speaker, SpeakerEvent
from metallb_py.log import configure
from metallb_py.speaker.bfd_bgp import BfdBgp, BfdPeer


async def main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    glue: BfdBgp | None = None

    def on_event(event: SpeakerEvent) -> None:
        if isinstance(event, PeerAddressChanged) and glue is not None:  # the router moved
            glue.refresh()

    speaker = Speaker(args.local_as, args.router_id, listen_port=None, on_event=on_event)
    engine = Engine()
    await engine.start()
    glue = BfdBgp(speaker, engine)
    peer_as = int(args.peer_as) if args.peer_as.isdigit() else args.peer_as
    config = PeerConfig(
        args.peer or "",
        peer_as,
        interface=args.interface,
        connect_retry=args.connect_retry,
    )
    speaker.start()
    speaker.add_peer(config)
    profile = Profile(receive_interval_ms=args.rx_ms, transmit_interval_ms=args.tx_ms)
    glue.set_peers([BfdPeer(config, profile)])
    await stop.wait()
    glue.close()
    await speaker.shutdown("test over")
    await engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--local-as", type=int, required=True)
    parser.add_argument("--router-id", required=True)
    parser.add_argument("--peer-as", required=True, help="a number, internal or external")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--peer")
    where.add_argument("--interface", help="unnumbered: the router on this link")
    parser.add_argument("--connect-retry", type=float, default=2.0)
    parser.add_argument("--tx-ms", type=int, default=300)
    parser.add_argument("--rx-ms", type=int, default=300)
    configure("info")  # the speaker's glue logs through metallb_py.log, as in the product
    asyncio.run(main(parser.parse_args()))
