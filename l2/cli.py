"""`python -m l2 announce`: answer ARP/NDP for some addresses, without Kubernetes.

    python -m l2 announce --interface eth0 --ip 198.51.100.200 --ip 2001:db8:100::200

Sends the takeover burst, answers until SIGINT/SIGTERM, then stops answering and exits 0. Logs one
JSON object per line on stdout. A bad flag is one line on stderr and exit status 2; a missing
capability is one log line naming it and exit status 1.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from collections.abc import Callable, Sequence

from l2.announcer import Announcer, BurstConfig
from l2.interfaces import DEFAULT_EXCLUDES
from l2.sockets import MissingCapability
from netkit.cli import EXIT_USAGE, StopSignals, UsageParser, add_log_level, run_tool

log = logging.getLogger("l2")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(prog="python -m l2", description="Layer-2 (ARP/NDP) announcement tool")
    sub = parser.add_subparsers(dest="command", required=True)
    ann = sub.add_parser("announce", help="answer ARP/NDP for addresses until stopped")
    ann.add_argument(
        "--interface",
        action="append",
        default=[],
        metavar="IF",
        help="serve only these interfaces (repeatable); default: every eligible interface",
    )
    ann.add_argument(
        "--ip", action="append", type=_ip, required=True, metavar="ADDR", help="repeatable"
    )
    ann.add_argument(
        "--exclude",
        action="append",
        default=None,
        metavar="REGEX",
        help="interface name patterns to skip (repeatable; replaces the MetalLB defaults)",
    )
    ann.add_argument(
        "--burst-count",
        type=_non_negative(int),
        default=5,
        help="takeover rounds (default 5; 0 disables)",
    )
    ann.add_argument(
        "--burst-interval",
        type=_non_negative(float),
        default=1.0,
        help="seconds between takeover rounds (default 1.0)",
    )
    ann.add_argument(
        "--filter",
        choices=["exact", "type", "none"],
        default="exact",
        help="BPF filter: announced addresses only (default), any ARP request/NS, or none",
    )
    ann.add_argument(
        "--na-source",
        choices=["target", "link-local"],
        default="target",
        help="IPv6 source of Neighbor Advertisements (default: the target, as Linux does)",
    )
    ann.add_argument(
        "--stats-interval",
        type=_non_negative(float),
        default=0.0,
        help="log the counters every N seconds (0: only at exit)",
    )
    add_log_level(ann)
    return parser


def _counters_extra(announcer: Announcer) -> dict[str, object]:
    c = announcer.counters
    return {
        "requestsReceived": dict(c.requests_received),
        "responsesSent": dict(c.responses_sent),
        "gratuitousSent": dict(c.gratuitous_sent),
        "conflicts": dict(c.conflicts),
        "malformed": dict(c.malformed),
        "dropped": dict(c.dropped),
        "sendErrors": announcer.send_errors,
    }


async def announce(args: argparse.Namespace) -> int:
    stop = StopSignals()
    announcer = Announcer(
        interfaces=args.interface or None,
        excludes=args.exclude if args.exclude is not None else DEFAULT_EXCLUDES,
        burst=BurstConfig(args.burst_count, args.burst_interval),
        filter_mode=args.filter,
        na_source=args.na_source,
    )
    try:
        await announcer.start()
        announcer.set_announcements({ip: None for ip in args.ip})
        if announcer.fatal is not None:
            raise announcer.fatal
    except MissingCapability as exc:
        log.error("missingCapability", extra={"capability": exc.capability, "error": str(exc)})
        await announcer.close()
        return 1
    log.info(
        "ready",
        extra={"ips": [str(ip) for ip in args.ip], "interfaces": announcer.served_interfaces},
    )
    await stop.wait(
        args.stats_interval, lambda: log.info("stats", extra=_counters_extra(announcer))
    )
    await announcer.close()
    log.info("stopped", extra=_counters_extra(announcer))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "announce":
        return run_tool(args.log_level, announce(args))
    return EXIT_USAGE
