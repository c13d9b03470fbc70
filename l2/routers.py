"""The router at the other end of a link, by its IPv6 link-local address (unnumbered BGP).

An unnumbered BGP peer is named by an interface, not an address. Routers that run such sessions
(FRR's `neighbor IF interface`, Cumulus) send Router Advertisements on the link and learn their
neighbour's link-local address from the neighbour's RAs; so do we, both ways:

- We listen for Router Advertisements (and answer Router Solicitations) on an AF_PACKET socket
  filtered to ICMPv6 133/134 (`l2.sockets`, `l2.bpf`, `l2.packets`). The RA's source is the
  router's link-local address. At start and whenever the link comes back we send up to
  `RS_COUNT` Router Solicitations, so a router answers at once instead of at its next interval.
- We send our own RAs every `RA_INTERVAL_S` (FRR's interval for unnumbered BGP) and in answer to a
  Router Solicitation (at most one per `MIN_RA_GAP_S`, RFC 4861 MIN_DELAY_BETWEEN_RAS). They carry
  a router lifetime of 0: "not a default router", so no host on the link routes through us; the
  router learns only our address.
- Fallback when no RA has been heard: the kernel's neighbour table (a link-local neighbour flagged
  as a router, or the only link-local neighbour on the link), polled every `NEIGHBOR_POLL_S`.
  An ICMPv6 echo to all-routers (ff02::2) makes every router on the link resolve us, which fills
  that table even when the router sends no RAs.
- Link state and our own link-local address come from netlink (`l2.interfaces.InterfaceWatcher`):
  when the link loses carrier, goes down or loses its link-local address, the router is forgotten
  and the callback hears `None`; when it comes back, discovery starts again.

The chosen router is sticky: another router heard on the same link replaces it only after the
current one has been silent for `ROUTER_STALE_S`. `RouterTracker` holds that logic and the
schedule without sockets or clock (unit-tested); `RouterFinder` runs it on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from l2 import bpf, packets
from l2.interfaces import IFF_LOWER_UP, InterfaceWatcher, Link, usable_link_local
from l2.sockets import MissingCapability, open_ndp_socket

log = logging.getLogger("l2")

RA_INTERVAL_S = 10.0  # our unsolicited Router Advertisements
MIN_RA_GAP_S = 3.0  # RFC 4861 MIN_DELAY_BETWEEN_RAS
RS_INTERVAL_S = 4.0  # RFC 4861 RTR_SOLICITATION_INTERVAL
RS_COUNT = 3  # RFC 4861 MAX_RTR_SOLICITATIONS
ROUTER_STALE_S = 30.0  # silent this long: another router on the link may replace it
NEIGHBOR_POLL_S = 2.0  # neighbour-table fallback while no RA has been heard
NTF_ROUTER = 0x80
NUD_USABLE = 0x02 | 0x04 | 0x08 | 0x10 | 0x80  # REACHABLE STALE DELAY PROBE PERMANENT

IPv6 = ipaddress.IPv6Address
RouterCallback = Callable[[str, "str | None"], None]  # (interface, "fe80::1%eth0" or None)


class Action(enum.Enum):
    SEND_RA = "send-ra"
    SEND_RS = "send-rs"
    POLL_NEIGHBORS = "poll-neighbors"


@dataclass
class RouterTracker:
    """One link: which router we use, and when to advertise, solicit or poll (sans-I/O)."""

    stale_s: float = ROUTER_STALE_S
    ra_interval_s: float = RA_INTERVAL_S
    usable: bool = False  # link up with carrier and a usable link-local address of ours
    current: IPv6 | None = None
    heard: dict[IPv6, tuple[float, str]] = field(default_factory=dict)  # -> (last, "ra"/"ndp")
    next_ra: float | None = None
    next_rs: float | None = None
    rs_left: int = 0
    next_poll: float | None = None
    last_ra_sent: float = float("-inf")

    def set_usable(self, usable: bool, now: float) -> bool:
        """The link came up (or went away). Returns whether `current` changed."""
        if usable == self.usable:
            return False
        self.usable = usable
        self.heard.clear()
        before = self.current
        self.current = None
        if usable:
            self.next_ra = now  # advertise at once: the router learns us without waiting
            self.rs_left = RS_COUNT
            self.next_rs = now
            self.next_poll = now + NEIGHBOR_POLL_S
        else:
            self.next_ra = self.next_rs = self.next_poll = None
            self.rs_left = 0
        return before is not None

    def router_advertisement(self, source: IPv6, now: float) -> bool:
        """An RA from `source` (link-local, hop limit 255). Returns whether `current` changed."""
        if not self.usable:
            return False
        self.heard[source] = (now, "ra")
        self.rs_left = 0
        self.next_rs = None
        return self._choose(now)

    def router_solicitation(self, now: float) -> None:
        """Answer with an RA, but never closer than MIN_RA_GAP_S to the previous one."""
        if not self.usable:
            return
        due = max(now, self.last_ra_sent + MIN_RA_GAP_S)
        if self.next_ra is None or due < self.next_ra:
            self.next_ra = due

    def neighbors(self, found: list[tuple[IPv6, bool]], now: float) -> bool:
        """The link-local neighbours in the kernel's table, (address, is_router)."""
        if not self.usable:
            return False
        routers = [a for a, is_router in found if is_router]
        pick = routers if routers else [a for a, _ in found] if len(found) == 1 else []
        for address in pick:
            last = self.heard.get(address)
            if last is None or last[1] == "ndp":
                self.heard[address] = (now, "ndp")
        return self._choose(now)

    def _choose(self, now: float) -> bool:
        fresh = {a: h for a, h in self.heard.items() if now - h[0] < self.stale_s}
        if self.current in fresh:
            return False
        before = self.current
        # RA sources first (a router announced itself), then the most recently heard.
        best = max(fresh.items(), key=lambda kv: (kv[1][1] == "ra", kv[1][0]), default=None)
        self.current = best[0] if best is not None else None
        return self.current != before

    def deadline(self) -> float | None:
        times = [t for t in (self.next_ra, self.next_rs, self.next_poll) if t is not None]
        return min(times) if times else None

    def due(self, now: float) -> list[Action]:
        """What to do now; advances the schedule."""
        out: list[Action] = []
        if self.next_ra is not None and self.next_ra <= now:
            out.append(Action.SEND_RA)
            self.last_ra_sent = now
            self.next_ra = now + self.ra_interval_s
        if self.next_rs is not None and self.next_rs <= now:
            out.append(Action.SEND_RS)
            self.rs_left -= 1
            self.next_rs = now + RS_INTERVAL_S if self.rs_left > 0 else None
        if self.next_poll is not None and self.next_poll <= now:
            self.next_poll = now + NEIGHBOR_POLL_S
            if not any(kind == "ra" for _, kind in self.heard.values()):
                out.append(Action.POLL_NEIGHBORS)
        if self.current is not None and now - self.heard[self.current][0] >= self.stale_s:
            # Silent too long: keep it unless someone fresher was heard (sticky, never empty).
            fresh = [a for a, h in self.heard.items() if now - h[0] < self.stale_s]
            if fresh:
                self.current = None
                self._choose(now)
        return out


def scoped(address: IPv6, interface: str) -> str:
    """`fe80::1%eth0`: the form sockets, logs and BFD keys use for a link-local address."""
    return f"{address}%{interface}"


class _LinkDiscovery:
    """RouterTracker on one interface, with its socket and timer."""

    def __init__(self, finder: RouterFinder, interface: str) -> None:
        self.finder = finder
        self.interface = interface
        self.tracker = RouterTracker()
        self.callbacks: list[RouterCallback] = []
        self.link: Link | None = None
        self.sock: socket.socket | None = None
        self.sock_index = 0
        self.raw_unavailable = False
        self.timer: asyncio.TimerHandle | None = None
        self.poll_task: asyncio.Task[None] | None = None
        self.received = 0
        self.malformed = 0
        self.echo_seq = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    @property
    def router(self) -> str | None:
        cur = self.tracker.current
        return scoped(cur, self.interface) if cur is not None else None

    @property
    def local(self) -> IPv6 | None:
        return usable_link_local(self.link) if self.link is not None else None

    def link_changed(self, link: Link | None) -> None:
        self.link = link
        usable = link is not None and bool(link.flags & IFF_LOWER_UP) and link.up
        usable = usable and self.local is not None
        if link is not None and usable and (self.sock is None or self.sock_index != link.index):
            self._open(link)
        now = self.loop.time()
        if self.tracker.set_usable(usable, now):
            self._report("link down" if not usable else "link changed")
        log.debug("linkState", extra={"interface": self.interface, "usable": usable})
        self._arm()

    def _open(self, link: Link) -> None:
        self._close_socket()
        if self.raw_unavailable:
            return
        try:
            sock = open_ndp_socket(self.interface, bpf.router_discovery_program())
        except MissingCapability as exc:
            self.raw_unavailable = True
            log.warning(
                "routerDiscoveryUnavailable",
                extra={"interface": self.interface, "error": str(exc), "fallback": "neighbours"},
            )
            return
        except OSError as exc:
            log.warning(
                "routerDiscoveryFailed", extra={"interface": self.interface, "error": str(exc)}
            )
            return
        self.sock, self.sock_index = sock, link.index
        self.loop.add_reader(sock.fileno(), self._readable)

    def _close_socket(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(64):
            try:
                frame = sock.recv(2048)
            except BlockingIOError:
                return
            except OSError:  # e.g. ENETDOWN: the link event that follows sorts it out
                return
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        now = self.loop.time()
        try:
            eth = packets.parse_ethernet(frame)
            ip = packets.parse_ipv6(eth.payload)
            msg = packets.parse_router_discovery(ip)
        except packets.MalformedFrame:
            self.malformed += 1
            return
        self.received += 1
        if isinstance(msg, packets.RouterSolicitation):
            self.tracker.router_solicitation(now)
        elif ip.src != self.local and self.tracker.router_advertisement(ip.src, now):
            self._report("router advertisement")
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        deadline = self.tracker.deadline()
        if deadline is not None:
            self.timer = self.loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self.timer = None
        now = self.loop.time()
        before = self.tracker.current
        for action in self.tracker.due(now):
            if action is Action.SEND_RA:
                self._send(packets.ALL_NODES, self._advertisement())
            elif action is Action.SEND_RS:
                self._send(packets.ALL_ROUTERS, self._solicitation())
            elif action is Action.POLL_NEIGHBORS and (
                self.poll_task is None or self.poll_task.done()
            ):
                self.poll_task = self.loop.create_task(self._poll_neighbors())
        if self.tracker.current != before:
            self._report("previous router silent")
        self._arm()

    def _advertisement(self) -> packets.RouterAdvertisement:
        mac = self.link.mac if self.link is not None else b""
        opts = (packets.lladdr_option(packets.NDP_OPT_SOURCE_LLADDR, mac),) if mac else ()
        return packets.RouterAdvertisement(cur_hop_limit=64, router_lifetime=0, options=opts)

    def _solicitation(self) -> packets.RouterSolicitation:
        mac = self.link.mac if self.link is not None else b""
        opts = (packets.lladdr_option(packets.NDP_OPT_SOURCE_LLADDR, mac),) if mac else ()
        return packets.RouterSolicitation(opts)

    def _send(
        self,
        dst: IPv6,
        message: packets.RouterDiscoveryMessage | packets.EchoRequest,
    ) -> None:
        local, link, sock = self.local, self.link, self.sock
        if local is None or link is None or sock is None:
            return
        frame = packets.ndp_frame(packets.multicast_mac(dst), link.mac, local, dst, message)
        try:
            sock.send(frame)
        except OSError as exc:
            log.debug(
                "routerDiscoverySendFailed", extra={"interface": self.interface, "error": str(exc)}
            )

    async def _poll_neighbors(self) -> None:
        link = self.link
        if link is None:
            return
        try:
            found = await neighbors(link.index)
        except Exception as exc:  # netlink trouble: try again at the next poll
            log.debug("neighborPollFailed", extra={"interface": self.interface, "error": str(exc)})
            return
        if not found:
            # Nobody known yet: make the routers on the link resolve us (fills the table).
            self.echo_seq = (self.echo_seq + 1) & 0xFFFF
            self._send(
                packets.ALL_ROUTERS, packets.EchoRequest(os.getpid() & 0xFFFF, self.echo_seq)
            )
        local = self.local
        found = [(a, r) for a, r in found if a != local]
        if self.tracker.neighbors(found, self.loop.time()):
            self._report("neighbour table")
        self._arm()

    def _report(self, reason: str) -> None:
        router = self.router
        log.info(
            "unnumberedPeerAddress" if router else "unnumberedPeerLost",
            extra={"interface": self.interface, "address": router, "reason": reason},
        )
        for cb in list(self.callbacks):
            try:
                cb(self.interface, router)
            except Exception:
                log.exception("routerCallbackFailed", extra={"interface": self.interface})

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.poll_task is not None:
            self.poll_task.cancel()
        self._close_socket()


async def neighbors(ifindex: int) -> list[tuple[IPv6, bool]]:
    """Usable link-local IPv6 neighbours on the interface, with their router flag."""
    from pyroute2 import AsyncIPRoute

    out: list[tuple[IPv6, bool]] = []
    async with AsyncIPRoute() as ipr:
        async for m in await ipr.neigh("dump", family=socket.AF_INET6, ifindex=ifindex):
            if int(m.get("ifindex", 0)) != ifindex or not int(m.get("state", 0)) & NUD_USABLE:
                continue
            dst = m.get("NDA_DST")
            if not dst:
                continue
            addr = ipaddress.ip_address(dst)
            if isinstance(addr, IPv6) and addr.is_link_local:
                out.append((addr, bool(int(m.get("flags", 0)) & NTF_ROUTER)))
    return out


class RouterFinder:
    """Router discovery on every watched interface, sharing one netlink watcher."""

    def __init__(self) -> None:
        self.links: dict[str, _LinkDiscovery] = {}
        self._watcher: InterfaceWatcher | None = None
        self._started: asyncio.Task[None] | None = None
        self._by_name: dict[str, Link] = {}

    def watch(self, interface: str, callback: RouterCallback) -> None:
        """Start discovery on `interface` (if not yet) and report its router to `callback`."""
        d = self.links.get(interface)
        if d is None:
            d = self.links[interface] = _LinkDiscovery(self, interface)
            if self._watcher is None:
                self._watcher = InterfaceWatcher(self._links_changed)
                self._started = asyncio.get_running_loop().create_task(self._start())
            else:
                d.link_changed(self._by_name.get(interface))
        d.callbacks.append(callback)

    def unwatch(self, interface: str, callback: RouterCallback) -> None:
        d = self.links.get(interface)
        if d is None:
            return
        with contextlib.suppress(ValueError):
            d.callbacks.remove(callback)
        if not d.callbacks:
            d.close()
            del self.links[interface]

    def router(self, interface: str) -> str | None:
        d = self.links.get(interface)
        return d.router if d is not None else None

    def link(self, interface: str) -> Link | None:
        return self._by_name.get(interface)

    def local(self, interface: str) -> str | None:
        """Our usable link-local address on `interface`, scoped (`fe80::2%eth0`)."""
        link = self._by_name.get(interface)
        ll = usable_link_local(link) if link is not None else None
        return scoped(ll, interface) if ll is not None else None

    async def _start(self) -> None:
        assert self._watcher is not None
        try:
            await self._watcher.start()
        except Exception as exc:
            log.error("linkWatchFailed", extra={"error": str(exc)})

    def _links_changed(self, links: dict[int, Link]) -> None:
        self._by_name = {link.name: link for link in links.values()}
        for name, d in list(self.links.items()):
            d.link_changed(self._by_name.get(name))

    async def close(self) -> None:
        for d in self.links.values():
            d.close()
        self.links.clear()
        if self._started is not None and not self._started.done():
            self._started.cancel()
        if self._watcher is not None:
            await self._watcher.close()
            self._watcher = None
