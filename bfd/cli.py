"""`python -m bfd session ...`: run BFD sessions from the command line and log state changes.

Each state change is one JSON line (`{"event": "bfdStateChange", "peer": ..., "state": "up", ...}`).
SIGINT or SIGTERM sends AdminDown to every peer and exits 0. A bad flag exits 2 with one line.

`--interface IFNAME` runs a single-hop session over IPv6 link-local addresses to the router on that
link, as an unnumbered BGP peer would: the router is found by `l2.routers` (its Router
Advertisements, else the neighbour table), and the session follows it when it changes or the link
flaps.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import sys
from collections.abc import Sequence

from bfd.dispatch import SessionKey
from bfd.engine import Engine, LatenessStats
from bfd.profile import DEFAULT_FLOOR_MS, Profile, ProfileError
from netkit.cli import (
    EXIT_USAGE,
    RaisingParser,
    StopSignals,
    UsageError,
    UsageParser,
    add_log_level,
    run_tool,
)
from netkit.process import set_realtime, tune_gc

log = logging.getLogger("bfd")


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(prog="python -m bfd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("session", help="run BFD sessions to one or more peers")
    s.add_argument(
        "--local",
        type=_ip,
        action="append",
        default=[],
        help="local address (repeat for several; each pairs with every peer)",
    )
    s.add_argument("--peer", type=_ip, action="append", default=[], help="peer address")
    s.add_argument(
        "--interface",
        action="append",
        default=[],
        help="session to the router on this link over IPv6 link-local addresses (repeatable)",
    )
    s.add_argument("--multihop", action="store_true", help="RFC 5883 multihop (UDP 4784)")
    s.add_argument("--tx-ms", type=int, default=300, help="desired transmit interval (300)")
    s.add_argument("--rx-ms", type=int, default=300, help="required receive interval (300)")
    s.add_argument("--multiplier", type=int, default=3, help="detection multiplier (3)")
    s.add_argument("--passive", action="store_true", help="wait for the peer to speak first")
    s.add_argument("--echo-ms", type=int, default=None, help="enable echo mode at this interval")
    s.add_argument("--min-ttl", type=int, default=254, help="multihop minimum TTL (254)")
    s.add_argument(
        "--floor-ms",
        type=int,
        default=DEFAULT_FLOOR_MS,
        help=f"shortest interval we advertise or use ({DEFAULT_FLOOR_MS})",
    )
    s.add_argument(
        "--stats-interval",
        type=float,
        default=0.0,
        help="log counters and timer lateness every N seconds (0: only at exit)",
    )
    s.add_argument(
        "--rt-priority",
        type=int,
        default=0,
        help="run under SCHED_FIFO at this priority, 1-99 (needs CAP_SYS_NICE; 0: off)",
    )
    s.add_argument(
        "--stdin",
        action="store_true",
        help="read commands on stdin: set [--tx-ms N] [--rx-ms N] [--multiplier N] "
        "[--passive|--active] [--min-ttl N]; admin-down; admin-up; stats",
    )
    add_log_level(s)
    return parser


class CommandError(ValueError):
    """A stdin command that cannot be run; logged, and the sessions carry on unchanged."""


def _set_parser() -> argparse.ArgumentParser:
    p = RaisingParser(prog="set", add_help=False)
    p.add_argument("--tx-ms", type=int)
    p.add_argument("--rx-ms", type=int)
    p.add_argument("--multiplier", type=int)
    p.add_argument("--min-ttl", type=int)
    role = p.add_mutually_exclusive_group()
    role.add_argument("--passive", dest="passive", action="store_const", const=True)
    role.add_argument("--active", dest="passive", action="store_const", const=False)
    return p


def apply_command(engine: Engine, profile: Profile, line: str) -> Profile:
    """Run one stdin command against every session; returns the profile now in force."""
    words = line.split()
    if not words:
        return profile
    verb, rest = words[0], words[1:]
    if verb == "set":
        try:
            opts = _set_parser().parse_args(rest)
        except UsageError as exc:
            raise CommandError(str(exc)) from None
        changes = {
            "transmit_interval_ms": opts.tx_ms,
            "receive_interval_ms": opts.rx_ms,
            "detect_multiplier": opts.multiplier,
            "minimum_ttl": opts.min_ttl,
            "passive_mode": opts.passive,
        }
        try:
            profile = dataclasses.replace(
                profile, **{k: v for k, v in changes.items() if v is not None}
            )
        except ProfileError as exc:
            raise CommandError(str(exc)) from None
        for key in list(engine.sessions):
            engine.update(key, profile)
        log.info(
            "bfdProfileChanged",
            extra={
                "txMs": profile.transmit_interval_ms,
                "rxMs": profile.receive_interval_ms,
                "multiplier": profile.detect_multiplier,
                "passive": profile.passive_mode,
            },
        )
    elif verb in ("admin-down", "admin-up") and not rest:
        for key in list(engine.sessions):
            (engine.admin_down if verb == "admin-down" else engine.admin_up)(key)
    elif verb == "stats" and not rest:
        _log_stats(engine)
    else:
        raise CommandError(f"unknown command {line.strip()!r}")
    return profile


async def _read_commands(engine: Engine, profile: Profile) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            profile = apply_command(engine, profile, line.decode(errors="replace"))
        except CommandError as exc:
            log.error(
                "bfdCommandFailed", extra={"command": line.decode().strip(), "error": str(exc)}
            )


def _profile(args: argparse.Namespace) -> Profile:
    return Profile(
        name="cli",
        receive_interval_ms=args.rx_ms,
        transmit_interval_ms=args.tx_ms,
        detect_multiplier=args.multiplier,
        echo_interval_ms=args.echo_ms if args.echo_ms is not None else 50,
        echo_mode=args.echo_ms is not None,
        passive_mode=args.passive,
        minimum_ttl=args.min_ttl,
    )


def _keys(args: argparse.Namespace) -> list[SessionKey]:
    keys = []
    for local in args.local:
        for peer in args.peer:
            if ipaddress.ip_address(local).version == ipaddress.ip_address(peer).version:
                keys.append(SessionKey(peer, local, args.multihop))
    return keys


def _log_stats(engine: Engine) -> None:
    log.info(
        "bfdStats",
        extra={
            "sessions": {f"{k.local}>{k.peer}": ms.metrics() for k, ms in engine.sessions.items()},
            "lateness": engine.lateness.as_dict(),
            "drops": dict(engine.dispatcher.drops),
        },
    )


class LinkSessions:
    """One session per `--interface`, to the router found on it; follows it when it changes."""

    def __init__(self, engine: Engine, profile: Profile, interfaces: Sequence[str]) -> None:
        from l2.routers import RouterFinder

        self.engine = engine
        self.profile = profile
        self.finder = RouterFinder()
        self.keys: dict[str, SessionKey] = {}
        for name in interfaces:
            self.finder.watch(name, self._router)

    def _router(self, interface: str, router: str | None) -> None:
        old = self.keys.pop(interface, None)
        if old is not None:
            self.engine.remove(old)
        local = self.finder.local(interface)
        if router is None or local is None:
            return
        key = SessionKey(router, local, False)
        try:
            self.engine.add(key, self.profile)
        except (OSError, ValueError) as exc:
            log.error("bfdSessionFailed", extra={"interface": interface, "error": str(exc)})
            return
        self.keys[interface] = key

    async def close(self) -> None:
        await self.finder.close()


async def run_sessions(args: argparse.Namespace, profile: Profile, keys: list[SessionKey]) -> int:
    engine = Engine(floor_ms=args.floor_ms)
    await engine.start()
    links = LinkSessions(engine, profile, args.interface) if args.interface else None
    stop = StopSignals()
    try:
        for key in keys:
            engine.add(key, profile)
    except (OSError, ValueError) as exc:
        log.error("bfdSessionFailed", extra={"error": str(exc)})
        if links is not None:
            await links.close()
        await engine.close(admin_down=True)
        return 1
    log.info(
        "bfdStarted",
        extra={
            "sessions": len(keys),
            "interfaces": list(args.interface),
            "floorMs": engine.floor_ms,
            "profile": profile.name,
        },
    )
    if args.rt_priority:
        problem = set_realtime(args.rt_priority)
        if problem:
            log.warning("bfdRealtimeUnavailable", extra={"error": problem})
        else:
            log.info("bfdRealtime", extra={"priority": args.rt_priority})
    tune_gc()
    engine.lateness = LatenessStats()  # measure the steady state, not the start-up burst
    commands = asyncio.create_task(_read_commands(engine, profile)) if args.stdin else None
    await stop.wait(args.stats_interval, lambda: _log_stats(engine))
    if commands is not None:
        commands.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await commands
    _log_stats(engine)
    if links is not None:
        await links.close()
    await engine.close(admin_down=True)
    log.info("bfdStopped")
    return 0


def _checked(args: argparse.Namespace) -> tuple[Profile, list[SessionKey]]:
    """The profile and sessions the flags ask for; UsageError when they do not fit together."""
    try:
        profile = _profile(args)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None
    if args.floor_ms < 1:
        raise UsageError("--floor-ms must be at least 1")
    if not 0 <= args.rt_priority <= 99:
        raise UsageError("--rt-priority must be in 0-99")
    keys = _keys(args)
    if not keys and not args.interface:
        raise UsageError("need --interface, or a --local/--peer pair of the same family")
    if args.interface and (args.multihop or profile.echo_mode):
        raise UsageError("--interface sessions are single-hop, without echo")
    if profile.echo_mode and (args.multihop or any(":" in k.peer for k in keys)):
        raise UsageError("echo mode needs IPv4 single-hop sessions")
    return profile, keys


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        profile, keys = _checked(args)
    except UsageError as exc:
        print(f"python -m bfd: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_tool(args.log_level, run_sessions(args, profile, keys))
