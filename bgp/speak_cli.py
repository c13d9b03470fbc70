"""`python -m bgp speak`: originate routes to BGP peers from the command line (a debugging tool).

    python -m bgp speak --local-as 64512 --router-id 198.51.100.11 --peer 64500@198.51.100.1 \
        [--peer 64501@[2001:db8:1::1]:1179 ...] [--local-address IP] [--vrf DEV] [--passive]
        [--hold-time S] [--keepalive S] [--password-file FILE] [--ebgp-multihop N]
        [--graceful-restart]
        [--announce PREFIX ...] [--announce-file FILE] [--community C ...]
        [--large-community C ...] [--local-pref N] [--stdin]

Announces the prefixes to every peer; with --stdin it also reads `announce PREFIX [community C]
[large-community C] [local-pref N] [med N]` and `withdraw PREFIX` lines while running. Logs one
JSON object per line. SIGINT/SIGTERM send Cease and exit 0; with --graceful-restart, SIGTERM is a
planned restart (the peer keeps our routes as stale) while SIGINT still sends Cease.
The TCP MD5 key comes from --password-file FILE or $BGP_PASSWORD (or --password, which every
local user can read in `ps`); no log line or error shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ipaddress
import logging
import os
import re
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Literal

from bgp import attributes
from bgp.context import AFI_IPV4, AFI_IPV6
from bgp.packing import DEFAULT_ATTRS, PrefixError, RouteAttrs, prefix_key
from bgp.speaker import PeerConfig, Speaker
from netkit.cli import StopSignals, UsageParser, add_log_level, run_tool

RouteKey = tuple[int, bytes]  # (AFI, NLRI wire bytes), see bgp.packing


class RouteSpecError(ValueError):
    """A prefix, community or command line that cannot be understood; the message says why."""


def parse_prefix(text: str) -> RouteKey:
    """`198.51.100.7`, `203.0.113.0/24`, `2001:db8::/64`; host bits must be zero."""
    try:
        return prefix_key(text)
    except PrefixError as exc:
        raise RouteSpecError(str(exc)) from None


def _u(text: str, bits: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise RouteSpecError(f"bad {what} {text!r}: not a number") from None
    if not 0 <= value < (1 << bits):
        raise RouteSpecError(f"bad {what} {text!r}: out of range 0..{(1 << bits) - 1}")
    return value


def parse_community(text: str) -> int:
    """`65000:100` or a well-known name (`no-export`, `blackhole`, ...)."""
    try:
        return attributes.parse_community(text)
    except ValueError as exc:
        raise RouteSpecError(str(exc)) from None


def parse_large_community(text: str) -> tuple[int, int, int]:
    """`GLOBAL:LOCAL1:LOCAL2`, three 32-bit numbers (RFC 8092)."""
    try:
        return attributes.parse_large_community(text)
    except ValueError as exc:
        raise RouteSpecError(str(exc)) from None


class AttrParser:
    """Parses attribute words; equal results are returned as one shared object (memory)."""

    def __init__(self) -> None:
        self._interned: dict[RouteAttrs, RouteAttrs] = {}
        self._by_text: dict[tuple[str, RouteAttrs], RouteAttrs] = {}

    def words(self, words: list[str], base: RouteAttrs = DEFAULT_ATTRS) -> RouteAttrs:
        """`community C`, `large-community C`, `local-pref N`, `med N` pairs after a prefix.

        Communities add to those of `base`; local-pref and med replace them.
        """
        if not words:
            return self.intern(base)
        text = " ".join(words)
        hit = self._by_text.get((text, base))
        if hit is not None:
            return hit
        communities = list(base.communities)
        large = list(base.large_communities)
        local_pref, med = base.local_pref, base.med
        if len(words) % 2:
            raise RouteSpecError(f"attribute {words[-1]!r} needs a value")
        for key, value in zip(words[::2], words[1::2], strict=True):
            if key == "community":
                communities.append(parse_community(value))
            elif key == "large-community":
                large.append(parse_large_community(value))
            elif key == "local-pref":
                local_pref = _u(value, 32, "local-pref")
            elif key == "med":
                med = _u(value, 32, "med")
            else:
                raise RouteSpecError(
                    f"unknown attribute {key!r}: want community, large-community, local-pref or med"
                )
        result = self.intern(
            RouteAttrs(tuple(communities), tuple(large), local_pref, med).normalized()
        )
        if len(self._by_text) < 100_000:
            self._by_text[(text, base)] = result
        return result

    def intern(self, attrs: RouteAttrs) -> RouteAttrs:
        return self._interned.setdefault(attrs, attrs)

    def line(self, line: str, base: RouteAttrs = DEFAULT_ATTRS) -> tuple[RouteKey, RouteAttrs]:
        """`PREFIX [community C]... [large-community C]... [local-pref N] [med N]`."""
        words = line.split()
        if not words:
            raise RouteSpecError("empty route line")
        return parse_prefix(words[0]), self.words(words[1:], base)


_default_parser = AttrParser()


def parse_route_words(words: list[str], base: RouteAttrs = DEFAULT_ATTRS) -> RouteAttrs:
    return _default_parser.words(words, base)


def parse_route_line(line: str, base: RouteAttrs = DEFAULT_ATTRS) -> tuple[RouteKey, RouteAttrs]:
    return _default_parser.line(line, base)


# -- command line ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerSpec:
    """`ASN@ADDR[:PORT]` or `ASN@IFNAME` (unnumbered): ASN is a number, asdot `A.B`,
    `internal` or `external`."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    port: int = 179
    asn: int | None = None  # None with `internal`/`external`: learned from the peer's OPEN
    dynamic: str | None = None  # "internal" or "external"
    interface: str | None = None  # unnumbered: the router on this link

    @property
    def key(self) -> str:
        if self.address is None:
            return f"{self.interface}:{self.port}"
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"


def parse_asn(text: str) -> int:
    t = text.strip()
    try:
        if "." in t:
            hi, lo = t.split(".", 1)
            value = (int(hi) << 16) | int(lo)
            if not (0 <= int(hi) <= 0xFFFF and 0 <= int(lo) <= 0xFFFF):
                raise ValueError
        else:
            value = int(t)
    except ValueError:
        raise RouteSpecError(f"bad AS number {text!r}") from None
    if not 1 <= value <= 0xFFFFFFFF:
        raise RouteSpecError(f"bad AS number {text!r}: out of range 1..4294967295")
    return value


def parse_peer(text: str) -> PeerSpec:
    """`64500@198.51.100.1`, `64500@198.51.100.1:1179`, `64501@[2001:db8::1]:1179`,
    `64501@2001:db8::1`, `internal@...`, `external@...`; `64500@eth0` (an interface name:
    unnumbered, the router's link-local address is discovered on that link)."""
    asn_text, sep, where = text.partition("@")
    if not sep or not asn_text or not where:
        raise RouteSpecError(f"bad peer {text!r}: want ASN@ADDRESS[:PORT]")
    port = 179
    if where.startswith("["):
        host, bracket, tail = where[1:].partition("]")
        if not bracket:
            raise RouteSpecError(f"bad peer {text!r}: missing ']'")
        if tail:
            if not tail.startswith(":"):
                raise RouteSpecError(f"bad peer {text!r}: junk after ']'")
            port = _port(tail[1:], text)
    elif where.count(":") == 1:
        host, _, port_text = where.partition(":")
        port = _port(port_text, text)
    else:
        host = where
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    interface = None
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        if not _IFNAME.fullmatch(host) or not _interface_exists(host):
            raise RouteSpecError(
                f"bad peer {text!r}: {host!r} is neither an IP address nor an interface here"
            ) from None
        interface = host
    if asn_text in ("internal", "external"):
        return PeerSpec(addr, port, None, asn_text, interface)
    return PeerSpec(addr, port, parse_asn(asn_text), None, interface)


def _interface_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


_IFNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,14}")  # Linux IFNAMSIZ 16, with the NUL


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise RouteSpecError(f"bad peer {whole!r}: port {text!r} not in 1..65535")
    return int(text)


@dataclass
class SpeakConfig:
    local_as: int
    peers: list[PeerSpec]
    router_id: str | None = None
    local_address: str | None = None
    vrf: str | None = None
    passive: bool = False
    hold_time: int = 90
    keepalive: int | None = None
    password: str | None = field(default=None, repr=False)
    ebgp_multihop: int | None = None
    graceful_restart: bool = False
    restart_time: int = 120
    listen_port: int | None = None
    routes: dict[int, dict[bytes, RouteAttrs]] = field(default_factory=dict)  # AFI -> table
    base_attrs: RouteAttrs = DEFAULT_ATTRS
    stdin: bool = False
    log_level: str = "info"


# The SpeakConfig fields that every peer's session takes as they are (same names in PeerConfig,
# and in the parsed flags).
SESSION_SETTINGS = (
    "router_id",
    "local_address",
    "vrf",
    "passive",
    "hold_time",
    "keepalive",
    "password",
    "ebgp_multihop",
    "graceful_restart",
    "restart_time",
)

PASSWORD_ENV = "BGP_PASSWORD"  # the TCP MD5 key when neither flag gives one
MAX_PASSWORD_FILE = 1024  # bytes read from --password-file (the key itself is at most 80)


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="python -m bgp speak",
        description="Originate routes to BGP peers (a debugging tool; see docs/bgp.md).",
    )
    p.add_argument("--local-as", required=True, help="our AS number (plain or asdot)")
    p.add_argument("--router-id", help="BGP identifier (default: the session's IPv4 source, ...)")
    p.add_argument(
        "--peer",
        action="append",
        required=True,
        metavar="ASN@ADDR[:PORT]|ASN@IFNAME",
        help="a peer; ASN may be internal/external; IPv6 with a port as [ADDR]:PORT; "
        "an interface name for an unnumbered peer (link-local, found by router advertisements)",
    )
    p.add_argument("--local-address", help="source address of our connections")
    p.add_argument(
        "--vrf",
        metavar="DEVICE",
        help="bind sessions to a VRF (or any interface) with SO_BINDTODEVICE",
    )
    p.add_argument("--passive", action="store_true", help="never connect; wait for the peers")
    p.add_argument(
        "--listen-port",
        type=int,
        help="port to accept peers on (default 179 with --passive, none otherwise)",
    )
    p.add_argument("--hold-time", type=int, default=90, help="seconds; 0 or 3..65535 (90)")
    p.add_argument("--keepalive", type=int, help="seconds (default hold time / 3)")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument(
        "--password",
        help="TCP MD5 signature key (RFC 2385); visible to every local user in the process "
        f"list: prefer --password-file or ${PASSWORD_ENV}",
    )
    secret.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the TCP MD5 key from the first line of FILE",
    )
    p.add_argument("--ebgp-multihop", type=int, metavar="TTL", help="TTL for eBGP (default 1)")
    p.add_argument(
        "--graceful-restart",
        action="store_true",
        help="advertise graceful restart; SIGTERM becomes a planned restart",
    )
    p.add_argument("--restart-time", type=int, default=120, help="graceful restart time (120)")
    p.add_argument("--announce", nargs="+", action="extend", default=[], metavar="PREFIX")
    p.add_argument(
        "--announce-file",
        action="append",
        default=[],
        metavar="FILE",
        help="one `PREFIX [community C] [large-community C] [local-pref N]` per line",
    )
    p.add_argument("--community", action="append", default=[], help="ASN:VALUE or a name")
    p.add_argument("--large-community", action="append", default=[], help="GLOBAL:LOCAL1:LOCAL2")
    p.add_argument("--local-pref", type=int, help="LOCAL_PREF for iBGP peers (default 100)")
    p.add_argument("--med", type=int, help="MULTI_EXIT_DISC")
    p.add_argument("--stdin", action="store_true", help="read announce/withdraw commands")
    add_log_level(p)
    return p


def load_route_file(
    path: str, base: RouteAttrs, into: dict[int, dict[bytes, RouteAttrs]] | None = None
) -> dict[int, dict[bytes, RouteAttrs]]:
    """One route per line into per-family tables; `#` starts a comment.

    Plain prefixes take a fast path: a cold start reads 100 000 of them.
    """
    tables = into if into is not None else {AFI_IPV4: {}, AFI_IPV6: {}}
    parser = _default_parser
    base = parser.intern(base)
    v4, v6 = tables[AFI_IPV4], tables[AFI_IPV6]
    pton, inet = socket.inet_pton, socket.AF_INET
    host = b"\x20"  # NLRI length octet of a /32
    lineno = 0
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, raw in enumerate(f, 1):  # noqa: B007 - lineno is used on error
                line = raw.rstrip("\n")
                # Fastest path: an IPv4 host route, `A.B.C.D/32` or `A.B.C.D`.
                addr = line[:-3] if line.endswith("/32") else line
                if "/" not in addr and ":" not in addr and " " not in addr:
                    try:
                        v4[host + pton(inet, addr)] = base
                        continue
                    except OSError:
                        pass  # not that simple: the general path explains what is wrong
                if " " in line or "\t" in line or "#" in line or not line:
                    line = line.split("#", 1)[0].strip()
                    if not line:
                        continue
                    (afi, key), attrs = parser.line(line, base)
                    tables[afi][key] = attrs
                    continue
                afi, key = prefix_key(line)
                (v4 if afi == AFI_IPV4 else v6)[key] = base
    except (RouteSpecError, PrefixError) as exc:
        raise RouteSpecError(f"{path}:{lineno}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RouteSpecError(f"cannot read {path}: {exc}") from None
    return tables


def _password(ns: argparse.Namespace) -> str | None:
    """--password, else the first line of --password-file, else $BGP_PASSWORD (so the key need
    not appear in `ps`). Errors name the file, never the key."""
    if ns.password is not None:
        return str(ns.password)
    if ns.password_file is not None:
        try:
            with open(ns.password_file, encoding="utf-8") as f:
                line = f.readline(MAX_PASSWORD_FILE)
        except OSError as exc:
            raise RouteSpecError(
                f"--password-file {ns.password_file}: {exc.strerror or 'unreadable'}"
            ) from None
        except UnicodeDecodeError:
            raise RouteSpecError(f"--password-file {ns.password_file}: not UTF-8 text") from None
        key = line.rstrip("\r\n")
        if not key:
            raise RouteSpecError(f"--password-file {ns.password_file}: the first line is empty")
        return key
    return os.environ.get(PASSWORD_ENV) or None


def parse_args(argv: list[str]) -> SpeakConfig:
    """Parse and validate; a bad flag exits 2 with one line on stderr."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        local_as = parse_asn(ns.local_as)
        peers = [parse_peer(p) for p in ns.peer]
        if ns.router_id:
            from bgp.router_id import parse_router_id

            parse_router_id(ns.router_id)
        if ns.local_address:
            ipaddress.ip_address(ns.local_address)
        if ns.hold_time != 0 and not 3 <= ns.hold_time <= 65535:
            raise RouteSpecError("--hold-time must be 0 or 3..65535")
        if ns.keepalive is not None and not 0 <= ns.keepalive <= max(ns.hold_time, 0):
            raise RouteSpecError("--keepalive must be 0..hold time")
        if ns.ebgp_multihop is not None and not 1 <= ns.ebgp_multihop <= 255:
            raise RouteSpecError("--ebgp-multihop must be 1..255")
        if not 0 <= ns.restart_time <= 4095:
            raise RouteSpecError("--restart-time must be 0..4095")
        if ns.listen_port is not None and not 0 <= ns.listen_port <= 65535:
            raise RouteSpecError("--listen-port must be 0..65535")
        if ns.vrf is not None and not 0 < len(ns.vrf.encode()) < 16:
            raise RouteSpecError("--vrf must be a device name of 1..15 bytes")
        ns.password = _password(ns)
        if ns.password is not None and len(ns.password.encode()) > 80:
            raise RouteSpecError("--password longer than 80 bytes (TCP MD5 limit)")
        words: list[str] = []
        for c in ns.community:
            words += ["community", c]
        for c in ns.large_community:
            words += ["large-community", c]
        if ns.local_pref is not None:
            words += ["local-pref", str(ns.local_pref)]
        if ns.med is not None:
            words += ["med", str(ns.med)]
        base = parse_route_words(words)
        routes: dict[int, dict[bytes, RouteAttrs]] = {AFI_IPV4: {}, AFI_IPV6: {}}
        for path in ns.announce_file:
            load_route_file(path, base, routes)
        for text in ns.announce:
            afi, key = parse_prefix(text)
            routes[afi][key] = _default_parser.intern(base)
    except (RouteSpecError, ValueError) as exc:
        parser.error(str(exc))
    return SpeakConfig(
        local_as=local_as,
        peers=peers,
        **{name: getattr(ns, name) for name in SESSION_SETTINGS},  # flags of the same names
        listen_port=ns.listen_port,
        routes=routes,
        base_attrs=base,
        stdin=ns.stdin,
        log_level=ns.log_level,
    )


# -- running ------------------------------------------------------------------------------------

log = logging.getLogger("bgp")
STDIN_LINES_PER_TURN = 4000


class CommandReader(asyncio.Protocol):
    """`announce ...` / `withdraw ...` lines from stdin, a bounded number per loop turn."""

    def __init__(self, speaker: Speaker, base: RouteAttrs, done: asyncio.Event) -> None:
        self.speaker = speaker
        self.base = _default_parser.intern(base)
        self.done = done
        self.transport: asyncio.ReadTransport | None = None
        self._tail = b""
        self._lines: collections.deque[bytes] = collections.deque()
        self._scheduled = False
        self._paused = False
        self._eof = False
        self.commands = 0
        self.errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        self._lines.extend(lines)
        if len(self._lines) > 8 * STDIN_LINES_PER_TURN and not self._paused and self.transport:
            self.transport.pause_reading()
            self._paused = True
        self._schedule()

    def eof_received(self) -> bool | None:
        if self._tail:
            self._lines.append(self._tail)
            self._tail = b""
        self._eof = True
        self._schedule()
        return None

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._work)

    def _work(self) -> None:
        self._scheduled = False
        lines = self._lines
        announce = self.speaker.announce
        withdraw = self.speaker.withdraw
        base = self.base
        for _ in range(min(len(lines), STDIN_LINES_PER_TURN)):
            raw = lines.popleft()
            words = raw.decode("utf-8", "replace").split()
            if not words or words[0].startswith("#"):
                continue
            try:
                verb = words[0]
                if verb == "announce" and len(words) >= 2:
                    if len(words) == 2:
                        announce(parse_prefix(words[1]), base)
                    else:
                        announce(parse_prefix(words[1]), _default_parser.words(words[2:], base))
                elif verb == "withdraw" and len(words) == 2:
                    withdraw(parse_prefix(words[1]))
                else:
                    raise RouteSpecError(
                        "want `announce PREFIX [community C] [large-community C] "
                        "[local-pref N] [med N]` or `withdraw PREFIX`"
                    )
                self.commands += 1
            except RouteSpecError as exc:
                self.errors += 1
                log.warning("badCommand", extra={"line": " ".join(words), "error": str(exc)})
        if lines:
            self._schedule()
        elif self._paused and self.transport:
            self._paused = False
            self.transport.resume_reading()
        if self._eof and not lines:
            log.info("stdinClosed", extra={"commands": self.commands, "errors": self.errors})
            self.done.set()


def peer_config(cfg: SpeakConfig, spec: PeerSpec) -> PeerConfig:
    peer_as: int | Literal["internal", "external"]
    if spec.asn is not None:
        peer_as = spec.asn
    else:
        peer_as = "internal" if spec.dynamic == "internal" else "external"
    return PeerConfig(
        address=str(spec.address) if spec.address is not None else "",
        interface=spec.interface,
        peer_as=peer_as,
        port=spec.port,
        **{name: getattr(cfg, name) for name in SESSION_SETTINGS},
    )


async def run(cfg: SpeakConfig) -> int:
    stop = StopSignals()
    listen_port = cfg.listen_port if cfg.listen_port is not None else (179 if cfg.passive else None)
    listen_on: tuple[str, ...] = ("0.0.0.0", "::")
    if cfg.local_address:
        listen_on = (cfg.local_address,)
    speaker = Speaker(
        cfg.local_as,
        cfg.router_id,
        listen_port=listen_port,
        listen_addresses=listen_on,
        listen_device=cfg.vrf,
    )
    try:
        speaker.start()
    except OSError as exc:
        log.error("listenFailed", extra={"error": str(exc)})
        return 1
    for afi, table in cfg.routes.items():
        speaker.rib.adopt(afi, table)  # no copy: 100 000 routes cost one table, not two
    for spec in cfg.peers:
        speaker.add_peer(peer_config(cfg, spec))
    log.info(
        "speakerStarted",
        extra={
            "localASN": cfg.local_as,
            "peers": [p.key for p in cfg.peers],
            "prefixes": len(speaker.rib),
            "listenPort": speaker.listener.bound_port if speaker.listener else None,
            "routerIDs": sorted({str(p.router_id) for p in speaker.peers.values()}),
        },
    )
    stdin_done = asyncio.Event()
    stdin_transport: asyncio.BaseTransport | None = None
    if cfg.stdin:
        stdin_transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: CommandReader(speaker, cfg.base_attrs, stdin_done), sys.stdin.buffer
        )
    await stop.wait()
    sig = stop.received[0]
    graceful = cfg.graceful_restart and sig == signal.SIGTERM
    name = sig.name
    log.info("speakerStopping", extra={"signal": name, "gracefulRestart": graceful})
    await speaker.shutdown(f"python -m bgp speak stopped ({name})", graceful=graceful)
    if stdin_transport is not None:
        stdin_transport.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(list(sys.argv[1:] if argv is None else argv))
    return run_tool(cfg.log_level, run(cfg))
