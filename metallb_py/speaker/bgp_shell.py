"""Apply the desired BGP state to the `bgp` speaker (and BFD to the `bfd` engine).

Sessions are keyed by `ADDR:PORT`; `bgp.Speaker.add_peer` keeps a session whose parameters did not
change, so a configuration edit resets only the peers it touched. Routes are always announced to
named peers (per-peer tables: BGPAdvertisement.peers lists differ per peer), and only the
difference from what was applied last is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from bfd.engine import Engine
from bfd.profile import Profile
from bgp.fsm import State
from bgp.packing import PrefixError, RouteAttrs, prefix_key
from bgp.speaker import (
    PeerAddressChanged,
    PeerConfig,
    PeerDown,
    PeerEstablished,
    Speaker,
    SpeakerEvent,
    TableSent,
)
from metallb_py.config.model import BFDProfile, Config, Peer
from metallb_py.log import get_logger
from metallb_py.objects import rfc3339
from metallb_py.speaker.bfd_bgp import BfdBgp, BfdPeer

log = get_logger("speaker")
PLACEHOLDER_AS = 65535  # every PeerConfig carries its own local AS; the speaker's is unused


def peer_config(peer: Peer) -> PeerConfig | None:
    """A BGPPeer as the bgp library's PeerConfig (None: a form we cannot run, e.g. no ASN).

    An `interface` peer (unnumbered) has no address: the bgp speaker finds the router's
    link-local address on that link."""
    if peer.address is None and not peer.interface:
        return None
    peer_as: int | str
    if peer.peer_asn is not None:
        peer_as = peer.peer_asn
    elif peer.dynamic_asn in ("internal", "external"):
        peer_as = peer.dynamic_asn
    else:
        return None
    return PeerConfig(
        address=str(peer.address) if peer.address is not None else "",
        interface=peer.interface if peer.address is None else None,
        peer_as=peer_as,  # type: ignore[arg-type]
        port=peer.port,
        local_as=peer.local_asn or peer.my_asn,
        router_id=str(peer.router_id) if peer.router_id is not None else None,
        local_address=str(peer.source_address) if peer.source_address is not None else None,
        hold_time=peer.hold_time,
        keepalive=float(peer.keepalive_time) if peer.hold_time else None,
        password=peer.password or None,
        ebgp_multihop=255 if peer.ebgp_multihop else None,
        vrf=peer.vrf or None,
        graceful_restart=peer.enable_graceful_restart,
        connect_retry=float(peer.connect_time) if peer.connect_time else 1.0,
        connect_retry_max=float(peer.connect_time) if peer.connect_time else 30.0,
        name=peer.name,
    )


def bfd_profile(profile: BFDProfile) -> Profile:
    return Profile(
        name=profile.name,
        receive_interval_ms=profile.receive_interval,
        transmit_interval_ms=profile.transmit_interval,
        detect_multiplier=profile.detect_multiplier,
        echo_interval_ms=profile.echo_interval,
        echo_mode=profile.echo_mode,
        passive_mode=profile.passive_mode,
        minimum_ttl=profile.minimum_ttl,
    )


@dataclass
class SessionInfo:
    """What BGPSessionState reports for one peer."""

    name: str
    key: str
    address: str
    vrf: str
    interface: str
    state: str
    established_since: str
    last_error: str
    last_error_time: str
    prefixes_sent: int
    prefixes_received: int
    bfd_state: str


class BgpShell:
    def __init__(self, node_name: str, on_session_change: Callable[[], None] | None = None) -> None:
        self.speaker = Speaker(
            PLACEHOLDER_AS, node_name=node_name, listen_port=None, on_event=self._on_event
        )
        self.engine = Engine()
        self.bfd = BfdBgp(self.speaker, self.engine)
        self.on_session_change = on_session_change
        self.names: dict[str, str] = {}  # peer key -> BGPPeer name
        self.keys: dict[str, str] = {}  # BGPPeer name -> peer key
        self.applied: dict[str, dict[tuple[int, bytes], RouteAttrs]] = {}  # peer key -> routes
        self.established_since: dict[str, str] = {}
        self.last_error: dict[str, tuple[str, str]] = {}
        self.unsupported: set[str] = set()
        self._started = False
        self._peer_ids: dict[str, int] = {}
        self._prefix_keys: dict[str, tuple[int, bytes]] = {}
        # peer key -> the table (prefix text -> attributes) applied last, to diff the next one
        self._last_tables: dict[str, Mapping[str, RouteAttrs]] = {}
        self._last_routes: object = None  # the whole `routes` applied last (its identity)

    async def start(self) -> None:
        if not self._started:
            await self.engine.start()
            self.speaker.start()
            self._started = True

    def _on_event(self, event: SpeakerEvent) -> None:
        if isinstance(event, PeerAddressChanged):  # an unnumbered peer's router moved: BFD follows
            self.bfd.refresh()
        elif isinstance(event, PeerEstablished):
            self.established_since[event.peer] = rfc3339()
        elif isinstance(event, PeerDown):
            self.established_since.pop(event.peer, None)
            self.last_error[event.peer] = (event.reason, rfc3339())
        if self.on_session_change is not None and not isinstance(event, TableSent):
            self.on_session_change()

    def apply(
        self,
        config: Config | None,
        peers: Mapping[str, Peer],
        routes: Mapping[str, Mapping[str, RouteAttrs]],
        changes: frozenset[tuple[str, str]] | None = None,
        base: Mapping[str, Mapping[str, RouteAttrs]] | None = None,
    ) -> None:
        """Reconcile sessions to `peers` (BGPPeer name -> Peer) and tables to `routes`.

        `changes`: the (peer name, prefix) pairs that may differ from `base`; when `base` is
        what was applied last, only those are compared (one new service among 10 000: a few
        lookups instead of a pass over every peer's table)."""
        configs: dict[str, PeerConfig] = {}
        bfd_peers: list[BfdPeer] = []
        for name, peer in sorted(peers.items()):
            cfg = peer_config(peer)
            if cfg is None:
                if name not in self.unsupported:
                    self.unsupported.add(name)
                    log.error(
                        "peerUnsupported",
                        peer=name,
                        reason="no peer ASN",
                    )
                continue
            if cfg.key in configs:
                continue
            configs[cfg.key] = cfg
            profile = None
            if peer.bfd_profile and config is not None:
                bp = config.bfd_profile(peer.bfd_profile)
                profile = bfd_profile(bp) if bp is not None else None
            bfd_peers.append(BfdPeer(cfg, profile))
        self.unsupported &= set(peers)
        for key in list(self.speaker.peers):
            if key not in configs:
                log.info("peerRemoved", peer=key)
                self.speaker.remove_peer(key)
                self.applied.pop(key, None)
                self._last_tables.pop(key, None)
                self._peer_ids.pop(key, None)
                self.established_since.pop(key, None)
        for key, cfg in configs.items():
            peer_obj = self.speaker.add_peer(cfg)
            if self._peer_ids.get(key) != id(peer_obj):
                if key in self._peer_ids:
                    log.info("peerReset", peer=key, reason="configuration changed")
                else:
                    log.info("peerAdded", peer=key, bgpPeer=cfg.name)
                self._peer_ids[key] = id(peer_obj)
                self.applied[key] = {}  # a new session: its table starts empty
                self._last_tables.pop(key, None)
        if len(self._prefix_keys) > 4 * sum(len(t) for t in routes.values()) + 1000:
            self._prefix_keys.clear()
        self.names = {k: c.name for k, c in configs.items()}
        self.keys = {c.name: k for k, c in configs.items()}
        self.bfd.set_peers(bfd_peers)
        hinted: dict[str, list[str]] | None = None
        if changes is not None and base is not None and base is self._last_routes:
            hinted = {}
            for name, prefix in changes:
                hinted.setdefault(name, []).append(prefix)
        self._last_routes = routes
        for name, key in self.keys.items():
            table = routes.get(name, {})
            if hinted is not None and key in self._last_tables:
                self._apply_prefixes(key, table, hinted.get(name, ()))
            else:
                self._apply_table(key, table)

    def _prefix_key(self, prefix: str) -> tuple[int, bytes] | None:
        pk = self._prefix_keys.get(prefix)
        if pk is None:
            try:
                pk = self._prefix_keys[prefix] = prefix_key(prefix)
            except PrefixError:
                log.error("badPrefix", prefix=prefix)
        return pk

    def _apply_table(self, key: str, table: Mapping[str, RouteAttrs]) -> None:
        last = self._last_tables.get(key)
        self._last_tables[key] = table
        if last is None:
            self._apply_whole_table(key, table)
            return
        # Diff against the table applied last: a pass with 10 000 routes and one new one costs
        # a set difference and one identity check per route (unchanged services hand over the
        # very same attribute objects), not a rebuild of the whole table.
        applied = self.applied.setdefault(key, {})
        for prefix in last.keys() - table.keys():
            pk = self._prefix_key(prefix)
            if pk is not None and applied.pop(pk, None) is not None:
                self.speaker.withdraw(pk, [key])
        for prefix, attrs in table.items():
            before = last.get(prefix)
            if before is attrs or (before is not None and before == attrs):
                continue
            pk = self._prefix_key(prefix)
            if pk is not None and applied.get(pk) != attrs:
                applied[pk] = attrs
                self.speaker.announce(pk, attrs, [key])

    def _apply_prefixes(
        self, key: str, table: Mapping[str, RouteAttrs], prefixes: Iterable[str]
    ) -> None:
        """Apply `table` to a peer whose last table differs from it in `prefixes` at most."""
        self._last_tables[key] = table
        applied = self.applied.setdefault(key, {})
        for prefix in prefixes:
            pk = self._prefix_key(prefix)
            if pk is None:
                continue
            attrs = table.get(prefix)
            if attrs is None:
                if applied.pop(pk, None) is not None:
                    self.speaker.withdraw(pk, [key])
            elif applied.get(pk) != attrs:
                applied[pk] = attrs
                self.speaker.announce(pk, attrs, [key])

    def _apply_whole_table(self, key: str, table: Mapping[str, RouteAttrs]) -> None:
        wanted: dict[tuple[int, bytes], RouteAttrs] = {}
        cache = self._prefix_keys
        for prefix, attrs in table.items():
            pk = cache.get(prefix)
            if pk is None:
                try:
                    pk = cache[prefix] = prefix_key(prefix)
                except PrefixError:
                    log.error("badPrefix", prefix=prefix)
                    continue
            wanted[pk] = attrs
        old = self.applied.get(key, {})
        for pk in old.keys() - wanted.keys():
            self.speaker.withdraw(pk, [key])
        for pk, attrs in wanted.items():
            if old.get(pk) != attrs:
                self.speaker.announce(pk, attrs, [key])
        self.applied[key] = wanted

    def sessions(self) -> list[SessionInfo]:
        out = []
        bfd_by_peer = {k.peer: ms.state for k, ms in self.engine.sessions.items()}
        for key, peer in sorted(self.speaker.peers.items()):
            state = peer.session.state
            bfd = bfd_by_peer.get(peer.address)
            err, err_time = self.last_error.get(key, ("", ""))
            out.append(
                SessionInfo(
                    name=self.names.get(key, ""),
                    key=key,
                    address=peer.address.split("%", 1)[0],
                    vrf=peer.config.vrf or "",
                    interface=peer.config.interface or "",
                    state=state.value,
                    established_since=self.established_since.get(key, "")
                    if state is State.ESTABLISHED
                    else "",
                    last_error=err,
                    last_error_time=err_time,
                    prefixes_sent=int(peer.ribout.announced),
                    prefixes_received=peer.session.received_count,
                    bfd_state=_bfd_state(bfd),
                )
            )
        return out

    async def shutdown(self, graceful: bool) -> None:
        """Withdraw by Cease, or keep routes at the peer where graceful restart was negotiated."""
        self.bfd.close()
        try:
            await asyncio.wait_for(
                self.speaker.shutdown("speaker shutting down", graceful=graceful), 1.5
            )
        except TimeoutError:
            log.warning("bgpShutdownSlow")
        await self.engine.close()


def _bfd_state(state: object) -> str:
    if state is None:
        return "Disabled"
    name = getattr(state, "name", str(state))
    return {"ADMIN_DOWN": "AdminDown", "DOWN": "Down", "INIT": "Init", "UP": "Up"}.get(name, "Down")
