"""Which interfaces to answer on, discovered and followed through netlink (pyroute2).

The selection rules are pure functions of a `Link` snapshot, unit-tested without a kernel.
`InterfaceWatcher` subscribes to link and address events before it dumps the current state, so
nothing that changes in between is missed, and reports every change to its callback: an interface
that appears, comes up, gets an address or leaves a bridge is served without polling.

Default selection is MetalLB's layer-2 interface scan: skip names matching the exclusion patterns,
members of a bridge or bond, interfaces that are down, without carrier, NOARP or without
broadcast. The patterns
match names only: the lab's `eth0` is a veth device and is served. An explicit interface list
replaces the name patterns and the membership rule (the operator said so), but a down or NOARP
interface still cannot answer ARP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("l2")

DEFAULT_EXCLUDES: tuple[str, ...] = (
    r"^docker.*",
    r"^cbr.*",
    r"^dummy.*",
    r"^virbr.*",
    r"^lxcbr.*",
    r"^veth.*",
    r"^lo$",
    r"^cali.*",
    r"^tunl.*",
    r"^flannel.*",
    r"^kube-ipvs.*",
    r"^cni.*",
    r"^nodelocaldns.*",
    r"^lxc.*",
)

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_NOARP = 0x80
IFF_SLAVE = 0x800
IFF_LOWER_UP = 0x10000
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40


@dataclass(frozen=True)
class Address:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefixlen: int
    flags: int = 0

    @property
    def usable(self) -> bool:
        """Not tentative and not failed DAD: RFC 4862 lets us use it as a source."""
        return not self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: bytes
    flags: int
    master: int | None = None
    kind: str | None = None
    addresses: tuple[Address, ...] = field(default=())

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


def compile_excludes(patterns: Iterable[str] = DEFAULT_EXCLUDES) -> list[re.Pattern[str]]:
    return [re.compile(pattern) for pattern in patterns]


_DEFAULT_RES = compile_excludes()


def why_not_served(
    link: Link,
    explicit: Sequence[str] | None = None,
    excludes: Sequence[re.Pattern[str]] = _DEFAULT_RES,
) -> str | None:
    """None if the responder should run on `link`, else the reason it does not."""
    if explicit:
        if link.name not in explicit:
            return "not-selected"
    else:
        if any(r.search(link.name) for r in excludes):
            return "excluded-name"
        if link.master is not None or link.flags & IFF_SLAVE:
            return "bridge-or-bond-member"
    if link.flags & IFF_LOOPBACK or len(link.mac) != 6 or link.mac == bytes(6):
        return "not-ethernet"
    if not link.up:
        return "down"
    if not link.flags & IFF_LOWER_UP:
        return "no-carrier"  # served again (with a takeover burst) when the carrier returns
    if link.flags & IFF_NOARP:
        return "noarp"
    if not link.flags & IFF_BROADCAST:
        return "no-broadcast"
    return None


def served(
    links: Iterable[Link],
    explicit: Sequence[str] | None = None,
    excludes: Sequence[re.Pattern[str]] = _DEFAULT_RES,
) -> dict[str, Link]:
    return {link.name: link for link in links if why_not_served(link, explicit, excludes) is None}


def usable_link_local(link: Link) -> ipaddress.IPv6Address | None:
    for addr in link.addresses:
        if isinstance(addr.ip, ipaddress.IPv6Address) and addr.ip.is_link_local and addr.usable:
            return addr.ip
    return None


def kernel_answers(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    interface: str,
    links: Iterable[Link],
    arp_ignore: Mapping[str, int],
) -> str | None:
    """Why the kernel would also answer ARP/NDP for `ip` on `interface`, or None.

    IPv4 (arp_ignore, the effective value being the larger of `all` and the interface's):
    0 answers for an address configured on any interface (kube-proxy IPVS's kube-ipvs0 without
    strictARP, MetalLB #153); 1-3 only when it is on the receiving interface; 8 never.
    IPv6: the kernel answers for addresses configured on the receiving interface.
    """
    holders = [link.name for link in links if any(a.ip == ip for a in link.addresses)]
    if not holders:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return f"configured on {interface}" if interface in holders else None
    level = max(arp_ignore.get("all", 0), arp_ignore.get(interface, 0))
    if level >= 8:
        return None
    if level == 0:
        return f"configured on {','.join(holders)} and arp_ignore=0"
    if interface in holders:
        return f"configured on {interface} (arp_ignore={level})"
    return None


def read_arp_ignore(names: Iterable[str]) -> dict[str, int]:
    """The arp_ignore sysctls of `all` and the given interfaces (missing ones are skipped)."""
    values: dict[str, int] = {}
    for name in ("all", *names):
        with contextlib.suppress(OSError, ValueError):
            values[name] = int(Path(f"/proc/sys/net/ipv4/conf/{name}/arp_ignore").read_text())
    return values


# -- netlink ----------------------------------------------------------------------------------


def _link_from_msg(msg: Any, addresses: tuple[Address, ...]) -> Link | None:
    name = msg.get("IFLA_IFNAME")
    if not name:
        return None
    mac_text = msg.get("IFLA_ADDRESS") or ""
    try:
        mac = bytes(int(x, 16) for x in mac_text.split(":")) if mac_text else b""
    except ValueError:
        mac = b""
    kind = None
    linkinfo = msg.get("IFLA_LINKINFO")
    if linkinfo is not None:
        kind = linkinfo.get("IFLA_INFO_KIND")
    master = msg.get("IFLA_MASTER")
    return Link(int(msg["index"]), name, mac, int(msg["flags"]), master or None, kind, addresses)


def _address_from_msg(msg: Any) -> tuple[int, Address] | None:
    text = msg.get("IFA_ADDRESS")
    if not text:
        return None
    flags = msg.get("IFA_FLAGS")
    if flags is None:
        flags = msg["flags"]
    return int(msg["index"]), Address(ipaddress.ip_address(text), int(msg["prefixlen"]), flags)


class InterfaceWatcher:
    """Follows links and addresses through rtnetlink events; calls `on_change(links)`."""

    def __init__(self, on_change: Callable[[dict[int, Link]], None]) -> None:
        self._on_change = on_change
        self._links: dict[int, Any] = {}  # index -> last RTM_NEWLINK message
        self._addrs: dict[int, dict[tuple[str, int], Address]] = {}
        self._task: asyncio.Task[None] | None = None
        self._events: Any = None
        self.resyncs = 0

    @property
    def links(self) -> dict[int, Link]:
        out = {}
        for index, msg in self._links.items():
            addresses = tuple(self._addrs.get(index, {}).values())
            link = _link_from_msg(msg, addresses)
            if link is not None:
                out[index] = link
        return out

    async def start(self) -> None:
        from pyroute2 import AsyncIPRoute

        # Links and addresses only: neighbour and route churn on a busy node is not our business.
        self._events = AsyncIPRoute(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        await self._events.bind()  # subscribe first: a change during the dump is not lost
        await self._dump()
        self._on_change(self.links)
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def _dump(self) -> None:
        from pyroute2 import AsyncIPRoute

        async with AsyncIPRoute() as ipr:
            links = {int(m["index"]): m async for m in await ipr.link("dump")}
            addrs: dict[int, dict[tuple[str, int], Address]] = {}
            async for m in await ipr.addr("dump"):
                parsed = _address_from_msg(m)
                if parsed:
                    index, addr = parsed
                    addrs.setdefault(index, {})[(str(addr.ip), addr.prefixlen)] = addr
        self._links, self._addrs = links, addrs

    async def _follow(self) -> None:
        while True:
            try:
                async for msg in self._events.get():
                    if self._apply(msg):
                        self._on_change(self.links)
                reason = "event stream ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. ENOBUFS: events were lost
                reason = str(exc) or type(exc).__name__
            # Whatever happened, read the whole truth again rather than trust a partial picture.
            log.warning("netlinkResync", extra={"error": reason})
            self.resyncs += 1
            await asyncio.sleep(0.1)
            try:
                await self._dump()
            except Exception as exc:
                log.warning("netlinkDumpFailed", extra={"error": str(exc)})
                continue
            self._on_change(self.links)

    def _apply(self, msg: Any) -> bool:
        event = msg.get("event")
        if event == "RTM_NEWLINK":
            self._links[int(msg["index"])] = msg
        elif event == "RTM_DELLINK":
            self._links.pop(int(msg["index"]), None)
            self._addrs.pop(int(msg["index"]), None)
        elif event in ("RTM_NEWADDR", "RTM_DELADDR"):
            parsed = _address_from_msg(msg)
            if parsed is None:
                return False
            index, addr = parsed
            table = self._addrs.setdefault(index, {})
            if event == "RTM_NEWADDR":
                table[(str(addr.ip), addr.prefixlen)] = addr
            else:
                table.pop((str(addr.ip), addr.prefixlen), None)
        else:
            return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._events is not None:
            with contextlib.suppress(Exception):
                self._events.close()
            self._events = None
