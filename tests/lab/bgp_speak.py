"""Running `python -m bgp speak` inside a lab namespace and reading its JSON log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.lab.netns import Lab, LabError, LabProcess, wait_for


def peer_args(local_as: str, peer: str) -> list[str]:
    """The arguments every session needs: our AS and the peer (`AS@address[:port]`)."""
    return ["--local-as", local_as, "--peer", peer]


@dataclass
class Speak:
    """`python -m bgp speak ARGS` in `role`'s namespace; `stdin=True` to send commands."""

    lab: Lab
    role: str
    args: Sequence[str]
    stdin: bool = False
    proc: LabProcess | None = None
    history: list[LabProcess] = field(default_factory=list)

    def start(self) -> Speak:
        argv = [sys.executable, "-m", "bgp", "speak", *self.args]
        if self.stdin:
            argv.append("--stdin")
        self.proc = self.lab.spawn(
            self.role,
            argv,
            name="speak",
            stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
        )
        self.history.append(self.proc)
        return self

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        assert self.proc is not None
        out = []
        for line in self.proc.output().splitlines():
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if name is None or obj.get("event") == name:
                out.append(obj)
        return out

    def wait_event(
        self, name: str, timeout: float = 20, count: int = 1, **match: Any
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.proc is not None and not self.proc.alive():
                raise LabError(f"speaker exited: {self.proc.output()[-3000:]}")
            hits = [e for e in self.events(name) if all(e.get(k) == v for k, v in match.items())]
            return hits[count - 1] if len(hits) >= count else None

        try:
            return wait_for(found, timeout, what=f"speaker event {name} {match}")  # type: ignore[return-value]
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; speaker log tail:\n{self.output()[-2500:]}") from None

    def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.popen.stdin is not None
        self.proc.popen.stdin.write((line.rstrip("\n") + "\n").encode())
        self.proc.popen.stdin.flush()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait(timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.proc is not None
        self.proc.signal(sig)
        return self.proc.popen.wait(timeout=timeout)

    def output(self) -> str:
        return self.proc.output() if self.proc else ""
