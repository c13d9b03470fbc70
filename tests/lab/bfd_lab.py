"""Helpers for BFD lab tests: our `python -m bfd session` in a namespace, and peers' views.

`OurBfd` starts the CLI through `Lab.spawn` and reads its JSON log lines; `frr_bfd` starts FRR's
zebra + bfdd only; `bird_bfd_state` reads `birdc show bfd sessions`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.lab.daemons import Bird, Frr
from tests.lab.netns import Lab, LabProcess, wait_for

REPO = str(Path(__file__).resolve().parents[2])


@dataclass
class OurBfd:
    lab: Lab
    role: str
    proc: LabProcess

    @classmethod
    def start(
        cls, lab: Lab, role: str, args: Sequence[str], name: str = "bfd", commands: bool = False
    ) -> OurBfd:
        """Start the CLI; with `commands`, its stdin is a pipe for `command()`."""
        argv = [sys.executable, "-m", "bfd", "session", "--stats-interval", "0.5", *args]
        if commands:
            argv.append("--stdin")
        proc = lab.spawn(
            role,
            argv,
            name=name,
            env={"PYTHONPATH": REPO},
            stdin=subprocess.PIPE if commands else subprocess.DEVNULL,
        )
        ours = cls(lab, role, proc)
        wait_for(ours._started, 15, what=f"python -m bfd started in {role}")
        return ours

    def _started(self) -> bool:
        if not self.proc.alive():
            raise RuntimeError(f"python -m bfd exited: {self.proc.output()[-2000:]}")
        return any(line.get("event") == "bfdStarted" for line in self.lines())

    def command(self, line: str) -> None:
        stdin = self.proc.popen.stdin
        assert stdin is not None, "started without commands=True"
        stdin.write(line.encode() + b"\n")
        stdin.flush()

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.proc.output().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return out

    def changes(self, peer: str) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines()
            if line.get("event") == "bfdStateChange" and line.get("peer") == peer
        ]

    def state(self, peer: str) -> str:
        changes = self.changes(peer)
        return str(changes[-1]["state"]) if changes else "down"

    def wait_state(self, peer: str, state: str, timeout: float = 15) -> dict[str, Any]:
        """Wait for a state-change line (after any already seen); returns that line."""
        wait_for(lambda: self.state(peer) == state, timeout, what=f"our session {peer} {state}")
        return self.changes(peer)[-1]

    def stats(self) -> dict[str, Any]:
        """The latest bfdStats line (counters per session, lateness, drops)."""
        for line in reversed(self.lines()):
            if line.get("event") == "bfdStats":
                return line
        return {}

    def session_counters(self, peer: str) -> dict[str, int]:
        sessions = self.stats().get("sessions", {})
        for key, value in sessions.items():
            if key.endswith(">" + peer):
                return dict(value)
        return {}


def log_time(line: dict[str, Any]) -> float:
    """Wall-clock seconds of a JSON log line's `ts`."""
    parsed = datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.replace(tzinfo=UTC).timestamp()


def frr_bfd(lab: Lab, role: str, body: str) -> Frr:
    """FRR with only zebra and bfdd, configured with `bfd` + `body` (indented peer blocks)."""
    return Frr(lab, role, "bfd\n" + body + "!\n", daemons=("zebra", "bfdd")).start()


def frr_peer(frr: Frr, peer: str) -> dict[str, Any]:
    for entry in frr.bfd_peers():
        if entry.get("peer") == peer:
            return dict(entry)
    return {}


def frr_status(frr: Frr, peer: str) -> str:
    return str(frr_peer(frr, peer).get("status", ""))


def bird_bfd_state(bird: Bird, peer: str) -> str:
    """State column of `show bfd sessions` for `peer` ("Up", "Down", "Init", ...)."""
    for line in bird.cmd("show bfd sessions").splitlines():
        parts = line.split()
        if parts and parts[0] == peer and len(parts) >= 3:
            return parts[2]
    return ""


def bird_bfd(lab: Lab, role: str, router_id: str, neighbors: str, interval_ms: int = 300) -> Bird:
    """BIRD with only a BFD protocol; `neighbors` is lines like `neighbor 198.51.100.11;`."""
    return Bird(
        lab,
        role,
        router_id,
        f"""
protocol bfd {{
  interface "*" {{ interval {interval_ms} ms; multiplier 3; }};
  multihop {{ interval {interval_ms} ms; multiplier 3; }};
{neighbors}
}}
""",
    ).start()
