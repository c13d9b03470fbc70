"""BFD for BGP peers (MetalLB's `bfdProfile` on a BGPPeer), RFC 5882 and RFC 9384.

A BGP peer with a BFD profile gets a BFD session to the same address (multihop when the peer is
eBGP-multihop), from the address BGP would use. BGP never waits for BFD to come up. When an Up
session goes Down because the path failed (detection time, echo failure, the peer saying Down),
the BGP session is torn down at once with NOTIFICATION Cease, subcode 10 "BFD Down"; the peer then
reconnects after its ConnectRetry time, like any other failed session. A peer that takes BFD
administratively down (AdminDown) is not a path failure and leaves BGP alone (RFC 5882 §3.2).

An unnumbered peer (`interface`) gets a single-hop session between our link-local address and the
router's, both scoped to the interface (`fe80::1%eth0`), once the router has been found; when the
router's address changes the BFD session is replaced (`refresh`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from bfd.dispatch import SessionKey
from bfd.engine import Engine, ManagedSession
from bfd.events import Event, StateChanged
from bfd.packet import State
from bfd.profile import Profile
from bgp.errors import CEASE_BFD_DOWN
from bgp.speaker import Peer, PeerConfig, Speaker, route_source
from metallb_py.log import get_logger

log = get_logger("speaker")


@dataclass(frozen=True)
class BfdPeer:
    """One BGP peer and the BFD profile it names (None: no BFD for it)."""

    config: PeerConfig
    profile: Profile | None


class BfdBgp:
    """Keeps one BFD session per BGP peer that has a profile, and tears BGP down on BFD Down."""

    def __init__(self, speaker: Speaker, engine: Engine) -> None:
        self.speaker = speaker
        self.engine = engine
        self.bgp_key: dict[SessionKey, str] = {}  # BFD session -> BGP peer key (ADDR:PORT)
        self.teardowns = 0
        self.pending_restarts: dict[str, asyncio.TimerHandle] = {}
        self._peers: list[BfdPeer] = []
        engine.subscribe(self._on_bfd_event)

    # -- configuration ----------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Reconcile again with the last peers (an unnumbered peer's router changed)."""
        return self.set_peers(self._peers)

    def set_peers(self, peers: Iterable[BfdPeer]) -> list[str]:
        """Reconcile BFD sessions to these peers; returns one line per peer that failed."""
        self._peers = list(peers)
        wanted: dict[SessionKey, tuple[str, Profile]] = {}
        problems = []
        for peer in self._peers:
            if peer.profile is None:
                continue
            cfg = peer.config
            if cfg.interface:
                key = self._link_local_key(cfg)
                if key is not None:
                    wanted[key] = (cfg.key, peer.profile)
                continue
            local = cfg.local_address or route_source(cfg.address, cfg.port)
            if local is None:
                problems.append(f"peer {cfg.key}: no route to {cfg.address} for BFD")
                continue
            multihop = bool(cfg.ebgp_multihop and cfg.ebgp_multihop > 1)
            wanted[SessionKey(cfg.address, local, multihop)] = (cfg.key, peer.profile)
        for key in list(self.bgp_key):
            if key not in wanted:
                self.engine.remove(key)
                del self.bgp_key[key]
        for key, (bgp_key, profile) in wanted.items():
            try:
                if key in self.engine.sessions:
                    if self.engine.sessions[key].profile != profile:
                        self.engine.update(key, profile)
                else:
                    self.engine.add(key, profile)
            except (OSError, ValueError) as exc:
                problems.append(f"peer {bgp_key}: BFD session: {exc}")
                continue
            self.bgp_key[key] = bgp_key
        for problem in problems:
            log.error("bfdPeerFailed", error=problem)
        return problems

    def _link_local_key(self, cfg: PeerConfig) -> SessionKey | None:
        """The session to an unnumbered peer's router; None until it has been found."""
        bgp = self.speaker.peers.get(cfg.key)
        if bgp is None or bgp.router is None or not cfg.interface:
            return None
        local = self.speaker.router_finder().local(cfg.interface)
        return SessionKey(bgp.router, local, False) if local is not None else None

    def close(self) -> None:
        for handle in self.pending_restarts.values():
            handle.cancel()
        self.pending_restarts.clear()

    # -- BFD -> BGP ---------------------------------------------------------------------------
    def _on_bfd_event(self, ms: ManagedSession, event: Event) -> None:
        if not isinstance(event, StateChanged):
            return
        if event.old is not State.UP or event.new is not State.DOWN:
            return
        if event.remote_state is State.ADMIN_DOWN:
            return  # the peer turned BFD off on purpose: not a forwarding failure
        bgp_key = self.bgp_key.get(ms.key)
        peer = self.speaker.peers.get(bgp_key) if bgp_key else None
        if peer is None:
            return
        self.teardowns += 1
        log.warning(
            "bgpSessionTornDownByBfd",
            peer=peer.key,
            bfdDiag=event.diag.name.lower(),
        )
        peer.stop(subcode=CEASE_BFD_DOWN, message="BFD session down")
        delay = peer.config.connect_retry
        old = self.pending_restarts.pop(peer.key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self.pending_restarts[peer.key] = loop.call_later(delay, self._restart, peer)

    def _restart(self, peer: Peer) -> None:
        self.pending_restarts.pop(peer.key, None)
        if self.speaker.peers.get(peer.key) is peer:  # not removed or replaced meanwhile
            peer.start()
