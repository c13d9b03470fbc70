"""One of our membership members as a process, speaking the Go peer's line protocol.

``python -m tests.lab.membership_member --name n1 --bind 198.51.100.11 [--secret S]
[--profile fast] [--join 198.51.100.12,...]`` starts a `MembershipService` on ``--bind:--port``
and, like tests/lab/memberlist/peer.go, prints one JSON object per line on stdout for every
membership event and answers commands read from stdin:

* ``members``: ``{"event": "members", "members": [{name, addr, port, state, incarnation, vsn}],
  "live": [...]}``, every member the core knows (dead and left ones too) with its state in lower
  case; ``live`` is `MembershipService.members()`,
* ``join IP[:PORT] ...``: hands the addresses to the service's seed loop (`run()`, the
  speaker's path: it joins at once, then retries every 10 s), waits for the push-pulls, answers
  ``{"event": "joined", "contacted": n, "results": {ip: ok}}``,
* ``snapshot``: ``{"event": "snapshot", ...}``, `MembershipService.snapshot()` (no histogram),
* ``leave``: graceful `MembershipService.leave()`, then ``{"event": "left"}``,
* ``quit``: closes the sockets without leaving.

Events: ``ready``; ``join``, ``leave`` (with ``reason`` "dead" or "left") and ``update`` as in
memberlist's EventDelegate; ``suspect``, ``refuted`` and ``join_finished``. Every line carries
``t`` (monotonic seconds). The service's own JSON log goes to stderr. Seeds are IP addresses
on the member's own port (as for the speaker): every member of a lab uses port 7946.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from metallb_py import log as mlog
from metallb_py.membership.config import profile
from metallb_py.membership.crypto import Keyring
from metallb_py.membership.events import (
    JoinFinished,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
    SuspicionRefuted,
)
from metallb_py.membership.messages import NodeState
from metallb_py.membership.service import MembershipService

DEFAULT_PORT = 7946
JOIN_GRACE = 2.0  # seconds past the profile's TCP timeout to wait for the join push-pulls


def emit(event: dict[str, Any]) -> None:
    event.setdefault("t", time.monotonic())
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def _ip(addr: bytes) -> str:
    return str(ipaddress.ip_address(addr))


class ReportingService(MembershipService):
    """The service, printing each core event it handles and remembering join outcomes."""

    join_results: dict[str, bool]
    join_progress: asyncio.Event

    def _on_event(self, event: Any) -> bool:
        match event:
            case MemberJoined(name=name, addr=addr, port=port):
                emit({"event": "join", "name": name, "addr": _ip(addr), "port": port})
            case MemberLeft(name=name, reason=reason):
                emit({"event": "leave", "name": name, "reason": reason})
            case MemberUpdated(name=name, addr=addr, port=port):
                emit({"event": "update", "name": name, "addr": _ip(addr), "port": port})
            case MemberSuspected(name=name, by=by):
                emit({"event": "suspect", "name": name, "by": by})
            case SuspicionRefuted(name=name):
                emit({"event": "refuted", "name": name})
            case JoinFinished(addr=addr, ok=ok):
                self.join_results[_ip(addr[0])] = ok
                self.join_progress.set()
                emit({"event": "join_finished", "addr": _ip(addr[0]), "ok": ok})
        return super()._on_event(event)


class Member:
    """The service, its seed list and the seed loop (`run`) it restarts on each join."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.seeds: list[str] = []
        self.service = ReportingService(
            args.name,
            args.bind,
            args.port,
            profile(args.profile),
            keyring=Keyring.from_secret(args.secret) if args.secret else None,
            seeds=self._seeds,
        )
        self.service.join_results = {}
        self.service.join_progress = asyncio.Event()
        self.stop = asyncio.Event()
        self.runner: asyncio.Future[None] | None = None

    async def _seeds(self) -> list[str]:
        return list(self.seeds)

    async def start(self) -> None:
        await self.service.start()
        self.runner = asyncio.ensure_future(self.service.run(self.stop))

    async def _stop_runner(self) -> None:
        self.stop.set()
        if self.runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.runner

    async def join(self, addrs: Sequence[str]) -> None:
        ips = [a.rsplit(":", 1)[0] if a.count(":") == 1 else a for a in addrs]
        core = self.service.core
        assert core is not None
        live = (NodeState.ALIVE, NodeState.SUSPECT)
        known = {_ip(s.addr) for s in core.member_states().values() if s.state in live}
        waiting = {ip for ip in ips if ip not in known}  # the seed loop skips the others
        for ip in waiting:
            self.service.join_results.pop(ip, None)
        self.seeds[:] = ips
        await self._stop_runner()
        self.stop = asyncio.Event()
        self.runner = asyncio.ensure_future(self.service.run(self.stop))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.service.config.tcp_timeout + JOIN_GRACE
        results = self.service.join_results
        while not waiting <= results.keys() and (left := deadline - loop.time()) > 0:
            self.service.join_progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.service.join_progress.wait(), left)
        done = {ip: results[ip] for ip in waiting if ip in results}
        emit({"event": "joined", "contacted": sum(done.values()), "results": done})

    def members(self) -> None:
        core = self.service.core
        states = core.member_states().values() if core is not None else []
        emit(
            {
                "event": "members",
                "members": [
                    {
                        "name": s.name,
                        "addr": _ip(s.addr),
                        "port": s.port,
                        "state": s.state.name.lower(),
                        "incarnation": s.incarnation,
                        "vsn": list(s.vsn),
                    }
                    for s in states
                ],
                "live": sorted(self.service.members() or ()),
            }
        )

    async def close(self) -> None:
        await self._stop_runner()
        await self.service.close()


async def serve(args: argparse.Namespace) -> int:
    mlog.configure(args.log_level, stream=sys.stderr, component="membership")
    member = Member(args)
    await member.start()
    emit({"event": "ready", "name": args.name, "addr": args.bind, "port": args.port})

    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line)
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        if args.join:
            await member.join(args.join.split(","))
        while (line := await commands.get()) is not None:
            words = line.split()
            if not words:
                continue
            match words[0]:
                case "members":
                    member.members()
                case "join":
                    await member.join(words[1:])
                case "snapshot":
                    snap = member.service.snapshot()
                    snap.pop("rtt", None)
                    emit({"event": "snapshot", **snap})
                case "leave":
                    await member.service.leave()
                    emit({"event": "left"})
                case "quit":
                    break
                case other:
                    emit({"event": "error", "error": f"unknown command {other}"})
    finally:
        await member.close()
        emit({"event": "quit"})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one metallb-py membership member")
    parser.add_argument("--name", required=True)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--secret", default="", help="MetalLB secret string (empty: no key)")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--join", default="", help="comma-separated addresses to join")
    parser.add_argument("--log-level", default="info")
    return asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
