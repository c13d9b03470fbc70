"""The asyncio layer: raw sockets per served interface, the takeover burst, interface following.

`Announcer` owns the sockets and the clock; every decision about a frame is the `Responder`'s.
Callers (the `python -m l2` tool, later metallb_py's speaker) state what should be announced with
`set_announcements`, which is level-triggered and idempotent: calling it again with the same
addresses changes nothing and sends nothing. A takeover burst goes out only for an (interface,
address) pair that was not announced before — becoming the announcer, or an interface appearing
— never on a repeated reconcile (MetalLB re-sends it on every reconcile of a service it owns).
"""

from __future__ import annotations

import asyncio
import contextlib
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
    Counters,
    InterfaceInfo,
    IPAddress,
    NaSource,
    Responder,
    diff_announcements,
)
from l2.sockets import MissingCapability, MulticastGroups, open_arp_socket, open_ndp_socket
from netkit.bpf import attach

log = logging.getLogger("l2.announcer")

FilterMode = Literal["exact", "type", "none"]
READ_BATCH = 256  # frames per readiness callback, so one busy socket cannot starve the loop
CONFLICT_LOG_INTERVAL = 5.0


@dataclass(frozen=True)
class BurstConfig:
    """Takeover burst: `count` rounds, `interval` seconds apart, the first one immediately."""

    count: int = 5
    interval: float = 1.0

    def __post_init__(self) -> None:
        if self.count < 0 or self.interval < 0:
            raise ValueError("burst count and interval must not be negative")


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
        self.responder = Responder(na_source)
        self.burst = burst or BurstConfig()
        self.filter_mode = filter_mode
        self.send_errors = 0
        self._explicit = list(interfaces) if interfaces else None
        self._excludes = ifs.compile_excludes(excludes)
        self._wanted: dict[IPAddress, frozenset[str] | None] = {}
        self._links: dict[int, ifs.Link] = {}
        self._ports: dict[str, _Port] = {}
        self._current: dict[str, frozenset[IPAddress]] = {}
        self._bursts: dict[tuple[str, IPAddress], asyncio.Task[None]] = {}
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
        for task in self._bursts.values():
            task.cancel()
        for task in list(self._bursts.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._bursts.clear()
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
        for pair in sorted(removed, key=str):
            task = self._bursts.pop(pair, None)
            if task is not None:
                task.cancel()
            log.info("ipWithdrawn", extra={"ip": str(pair[1]), "interface": pair[0]})
        for name, ip in sorted(added, key=str):
            log.info("ipAnnounced", extra={"ip": str(ip), "interface": name})
            self._start_burst(name, ip)
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
            for reply in responder.handle_frame(name, frame, addr[2]):
                self._send(sock, name, reply)
        self._drain_events()

    def _send(self, sock: socket.socket, name: str, frame: bytes) -> None:
        try:
            sock.send(frame)
        except OSError as exc:
            self.send_errors += 1
            log.warning("sendFailed", extra={"interface": name, "error": str(exc)})

    def _drain_events(self) -> None:
        now = time.monotonic()
        while (event := self.responder.next_event()) is not None:
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

    def _start_burst(self, name: str, ip: IPAddress) -> None:
        if self.burst.count == 0 or self._loop is None:
            return
        old = self._bursts.pop((name, ip), None)
        if old is not None:
            old.cancel()
        self._bursts[(name, ip)] = self._loop.create_task(self._run_burst(name, ip))

    async def _run_burst(self, name: str, ip: IPAddress) -> None:
        try:
            for round_no in range(self.burst.count):
                if round_no:
                    await asyncio.sleep(self.burst.interval)
                port = self._ports.get(name)
                if port is None:
                    return
                sock = port.arp if isinstance(ip, ipaddress.IPv4Address) else port.ndp
                if sock is None:
                    return
                frames = self.responder.gratuitous(name, ip)
                for frame in frames:
                    self._send(sock, name, frame)
                log.debug(
                    "gratuitousSent",
                    extra={"ip": str(ip), "interface": name, "round": round_no + 1},
                )
        finally:
            if self._bursts.get((name, ip)) is asyncio.current_task():
                del self._bursts[(name, ip)]
