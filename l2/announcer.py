"""The asyncio layer: raw sockets per served interface, one timer, interface following.

`Announcer` owns the sockets and the clock; every decision about a frame, and the takeover burst's
schedule, is the `Responder`'s: the announcer feeds it frames, starts takeovers, arms one timer at
`Responder.get_timer()` and sends what `Responder.datagrams_to_send()` returns.
Callers (the `python -m l2` tool, later metallb_py's speaker) state what should be announced with
`set_announcements`, which is level-triggered and idempotent: calling it again with the same
addresses changes nothing and sends nothing. A takeover burst goes out only for an (interface,
address) pair that was not announced before — becoming the announcer, or an interface appearing
— never on a repeated reconcile (MetalLB re-sends it on every reconcile of a service it owns).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from l2 import bpf
from l2 import interfaces as ifs
from l2 import packets as p
from l2.responder import (
    BurstConfig,
    Conflict,
    Counters,
    InterfaceInfo,
    IPAddress,
    NaSource,
    Responder,
    diff_announcements,
)
from l2.sockets import MissingCapability, MulticastGroups, open_arp_socket, open_ndp_socket
from netkit.bpf import attach
from netkit.timer import CoreTimer

log = logging.getLogger("l2")

FilterMode = Literal["exact", "type", "none"]
_ETHERTYPE_ARP = b"\x08\x06"
READ_BATCH = 256  # frames per readiness callback, so one busy socket cannot starve the loop
CONFLICT_LOG_INTERVAL = 5.0


@dataclass
class _Port:
    """One served interface: its sockets, filters and multicast memberships."""

    link: ifs.Link
    arp: socket.socket | None = None
    ndp: socket.socket | None = None
    groups: MulticastGroups | None = None
    arp_filter: frozenset[IPAddress] | None = None
    ndp_filter: frozenset[IPAddress] | None = None
    joined: set[ipaddress.IPv6Address] = field(default_factory=set)


class Announcer:
    """Answers ARP/NDP for the announced addresses on the served interfaces."""

    def __init__(
        self,
        *,
        interfaces: Sequence[str] | None = None,
        excludes: Iterable[str] = ifs.DEFAULT_EXCLUDES,
        burst: BurstConfig | None = None,
        filter_mode: FilterMode = "exact",
        na_source: NaSource = "target",
    ) -> None:
        self.responder = Responder(na_source, burst)
        self.filter_mode = filter_mode
        self.send_errors = 0
        self._explicit = list(interfaces) if interfaces else None
        self._excludes = ifs.compile_excludes(excludes)
        self._wanted: dict[IPAddress, frozenset[str] | None] = {}
        self._links: dict[int, ifs.Link] = {}
        self._ports: dict[str, _Port] = {}
        self._current: dict[str, frozenset[IPAddress]] = {}
        self._timer: CoreTimer | None = None
        self._kernel_warned: set[tuple[str, IPAddress]] = set()
        self._conflict_logged: dict[str, float] = {}
        self._watcher = ifs.InterfaceWatcher(self._on_links)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.fatal: BaseException | None = None

    @property
    def counters(self) -> Counters:
        return self.responder.counters

    @property
    def served_interfaces(self) -> list[str]:
        return sorted(self._ports)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._timer = CoreTimer(self._loop, self._fire)
        await self._watcher.start()
        if self.fatal is not None:
            raise self.fatal
        if self._explicit:
            present = {link.name for link in self._links.values()}
            for name in self._explicit:
                if name not in present:
                    log.warning("interfaceMissing", extra={"interface": name})

    async def close(self) -> None:
        """Stop answering at once: sockets closed, bursts cancelled, groups left."""
        self._closed = True
        await self._watcher.close()
        if self._timer is not None:
            self._timer.cancel()
        for name in list(self._ports):
            self._close_port(name)

    # -- what to announce ------------------------------------------------------------------------
    def set_announcements(self, wanted: Mapping[str | IPAddress, Iterable[str] | None]) -> None:
        """ip -> interfaces to announce it on (None: every served interface). Idempotent."""
        self._wanted = {
            ipaddress.ip_address(str(ip)): None if names is None else frozenset(names)
            for ip, names in wanted.items()
        }
        self._reconcile()

    def announce(self, ip: str | IPAddress, interfaces: Iterable[str] | None = None) -> None:
        wanted: dict[str | IPAddress, Iterable[str] | None] = {
            k: v for k, v in self._wanted.items()
        }
        wanted[ipaddress.ip_address(str(ip))] = None if interfaces is None else list(interfaces)
        self.set_announcements(wanted)

    def withdraw(self, ip: str | IPAddress) -> None:
        wanted: dict[str | IPAddress, Iterable[str] | None] = {
            k: v for k, v in self._wanted.items()
        }
        wanted.pop(ipaddress.ip_address(str(ip)), None)
        self.set_announcements(wanted)

    # -- reconcile -------------------------------------------------------------------------------
    def _on_links(self, links: dict[int, ifs.Link]) -> None:
        self._links = links
        self._reconcile()

    def _reconcile(self) -> None:
        if self._closed or self._loop is None:
            return
        try:
            self._reconcile_ports()
        except MissingCapability as exc:
            self.fatal = exc
            log.error("missingCapability", extra={"capability": exc.capability, "error": str(exc)})
            return
        desired: dict[str, frozenset[IPAddress]] = {}
        for name in self._ports:
            ips = frozenset(
                ip for ip, names in self._wanted.items() if names is None or name in names
            )
            if ips:
                desired[name] = ips
        self.responder.set_announced(desired)
        for name, port in self._ports.items():
            self._update_port(port, desired.get(name, frozenset()))
        added, removed = diff_announcements(self._current, desired)
        self._current = desired
        for pair in sorted(removed, key=str):  # set_announced ended their bursts
            log.info("ipWithdrawn", extra={"ip": str(pair[1]), "interface": pair[0]})
        now = self._loop.time()
        for name, ip in sorted(added, key=str):
            log.info("ipAnnounced", extra={"ip": str(ip), "interface": name})
            self.responder.start_takeover(name, ip, now)
        self._pump()
        self._check_kernel()

    def _reconcile_ports(self) -> None:
        served = ifs.served(self._links.values(), self._explicit, self._excludes)
        for name, port in list(self._ports.items()):
            link = served.get(name)
            if link is None or link.index != port.link.index or link.mac != port.link.mac:
                self._close_port(name)
        for name, link in served.items():
            existing = self._ports.get(name)
            if existing is None:
                self._open_port(link)
            else:
                existing.link = link
            if name in self._ports:
                self.responder.set_interface(
                    InterfaceInfo(name, link.mac, ifs.usable_link_local(link))
                )

    def _open_port(self, link: ifs.Link) -> None:
        port = _Port(link)
        try:
            port.arp = open_arp_socket(link.name, self._arp_program(frozenset()))
            port.ndp = open_ndp_socket(link.name, self._ndp_program(frozenset()))
            port.groups = MulticastGroups(link.index)
        except MissingCapability:
            self._close_sockets(port)
            raise
        except OSError as exc:  # vanished between the event and now: the next event retries
            self._close_sockets(port)
            log.warning("interfaceOpenFailed", extra={"interface": link.name, "error": str(exc)})
            return
        port.arp_filter = port.ndp_filter = frozenset()
        assert self._loop is not None
        for sock in (port.arp, port.ndp):
            self._loop.add_reader(sock.fileno(), self._on_readable, link.name, sock)
        self._ports[link.name] = port
        log.info(
            "interfaceServed",
            extra={"interface": link.name, "index": link.index, "mac": p.mac_str(link.mac)},
        )

    def _close_sockets(self, port: _Port) -> None:
        for sock in (port.arp, port.ndp):
            if sock is not None:
                if self._loop is not None and sock.fileno() >= 0:
                    self._loop.remove_reader(sock.fileno())
                sock.close()
        if port.groups is not None:
            port.groups.close()
        port.arp = port.ndp = None
        port.groups = None

    def _close_port(self, name: str) -> None:
        port = self._ports.pop(name, None)
        if port is None:
            return
        self._close_sockets(port)
        self.responder.remove_interface(name)
        log.info("interfaceReleased", extra={"interface": name})

    def _arp_program(self, ips: frozenset[IPAddress]) -> Sequence[bpf.Insn] | None:
        if self.filter_mode == "none":
            return None
        if self.filter_mode == "type":
            return bpf.arp_program()
        return bpf.arp_program([ip for ip in ips if isinstance(ip, ipaddress.IPv4Address)])

    def _ndp_program(self, ips: frozenset[IPAddress]) -> Sequence[bpf.Insn] | None:
        if self.filter_mode == "none":
            return None
        if self.filter_mode == "type":
            return bpf.ndp_program()
        return bpf.ndp_program([ip for ip in ips if isinstance(ip, ipaddress.IPv6Address)])

    def _update_port(self, port: _Port, ips: frozenset[IPAddress]) -> None:
        """Exact filters follow the announced set; solicited-node groups are joined for it."""
        v4 = frozenset(ip for ip in ips if isinstance(ip, ipaddress.IPv4Address))
        v6 = frozenset(ip for ip in ips if isinstance(ip, ipaddress.IPv6Address))
        # A conflict is another MAC claiming any of our addresses, so filters carry them all.
        all_v4 = frozenset(ip for ip in self._wanted if isinstance(ip, ipaddress.IPv4Address))
        all_v6 = frozenset(ip for ip in self._wanted if isinstance(ip, ipaddress.IPv6Address))
        if self.filter_mode == "exact":
            if port.arp is not None and port.arp_filter != all_v4 | v4:
                attach(port.arp, self._arp_program(all_v4 | v4) or bpf.drop_all_program())
                port.arp_filter = all_v4 | v4
            if port.ndp is not None and port.ndp_filter != all_v6 | v6:
                attach(port.ndp, self._ndp_program(all_v6 | v6) or bpf.drop_all_program())
                port.ndp_filter = all_v6 | v6
        groups = {p.solicited_node(ip) for ip in v6}
        if port.groups is None:
            return
        for group in sorted(groups - port.joined):
            try:
                port.groups.join(group)
                port.joined.add(group)
            except OSError as exc:
                log.warning(
                    "multicastJoinFailed",
                    extra={"interface": port.link.name, "group": str(group), "error": str(exc)},
                )
        for group in sorted(port.joined - groups):
            port.groups.leave(group)
            port.joined.discard(group)

    def _check_kernel(self) -> None:
        """Warn when the kernel would answer too (re-checked on every link/address change, so an
        address added to kube-ipvs0 later is noticed); warn again only after it was fixed."""
        pairs = {(name, ip) for name, ips in self._current.items() for ip in ips}
        if not pairs:
            self._kernel_warned.clear()
            return
        arp_ignore = ifs.read_arp_ignore(link.name for link in self._links.values())
        answering: set[tuple[str, IPAddress]] = set()
        for name, ip in sorted(pairs, key=str):
            why = ifs.kernel_answers(ip, name, self._links.values(), arp_ignore)
            if not why:
                continue
            answering.add((name, ip))
            if (name, ip) in self._kernel_warned:
                continue
            log.warning(
                "kernelAlsoAnswers",
                extra={
                    "ip": str(ip),
                    "interface": name,
                    "reason": why,
                    "hint": "clients may get two answers; with kube-proxy IPVS set strictARP: true"
                    " (arp_ignore=1, arp_announce=2), or remove the address from the interface",
                },
            )
        self._kernel_warned = answering

    # -- frames ----------------------------------------------------------------------------------
    def _on_readable(self, name: str, sock: socket.socket) -> None:
        responder = self.responder
        for _ in range(READ_BATCH):
            try:
                frame, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("receiveFailed", extra={"interface": name, "error": str(exc)})
                break
            responder.frame_received(name, frame, addr[2])
        self._pump()

    def _pump(self) -> None:
        """Send what the responder produced, report its events, and re-arm the one timer."""
        for name, frame in self.responder.datagrams_to_send():
            port = self._ports.get(name)
            if port is None:
                continue
            sock = port.arp if frame[12:14] == _ETHERTYPE_ARP else port.ndp
            if sock is not None:
                self._send(sock, name, frame)
        self._drain_events()
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None and not self._closed:
            self._timer.arm(self.responder.get_timer())

    def _fire(self) -> None:
        assert self._loop is not None
        self.responder.handle_timer(self._loop.time())
        self._pump()

    def _send(self, sock: socket.socket, name: str, frame: bytes) -> None:
        try:
            sock.send(frame)
        except OSError as exc:
            self.send_errors += 1
            log.warning("sendFailed", extra={"interface": name, "error": str(exc)})

    def _drain_events(self) -> None:
        now = time.monotonic()
        while (event := self.responder.next_event()) is not None:
            if not isinstance(event, Conflict):
                log.debug(
                    "gratuitousSent",
                    extra={"ip": event.ip, "interface": event.interface, "round": event.round},
                )
                continue
            last = self._conflict_logged.get(event.ip)
            if last is not None and now - last < CONFLICT_LOG_INTERVAL:
                continue
            self._conflict_logged[event.ip] = now
            log.warning(
                "addressConflict",
                extra={
                    "ip": event.ip,
                    "interface": event.interface,
                    "mac": event.mac,
                    "how": event.how,
                    "count": self.responder.counters.conflicts[event.ip],
                },
            )
