"""Real routing daemons in a lab namespace: BIRD 2, GoBGP, FRR (zebra + bgpd + bfdd), ExaBGP.

Each helper writes its configuration into the lab's work directory, starts the daemon in the
foreground through `Lab.spawn` (so teardown kills exactly it), and offers the daemon's own query
tool: `birdc`, `gobgp ... -j`, `vtysh -c '... json'`.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.netns import Lab, LabError, LabProcess, wait_for

FRR_DIR = Path("/usr/lib/frr")


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@dataclass
class Bird:
    """BIRD 2. `config` is the body after the router id; `cmd()` talks to birdc."""

    lab: Lab
    role: str
    router_id: str
    config: str
    name: str = "bird"
    proc: LabProcess | None = None
    dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.dir = self.lab.workdir / f"{self.role}-{self.name}"
        self.dir.mkdir(exist_ok=True)

    @property
    def socket(self) -> str:
        return str(self.dir / "bird.ctl")

    def start(self) -> Bird:
        conf = _write(
            self.dir / "bird.conf",
            f"router id {self.router_id};\nlog stderr all;\nprotocol device {{ }}\n"
            + textwrap.dedent(self.config),
        )
        self.proc = self.lab.spawn(
            self.role,
            ["bird", "-f", "-c", str(conf), "-s", self.socket, "-P", str(self.dir / "bird.pid")],
            name=self.name,
        )
        wait_for(lambda: self._ready(), 10, what="BIRD control socket")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise LabError(f"bird exited: {self.proc.output()[-2000:]}")
        return Path(self.socket).exists() and "BIRD" in self.cmd("show status")

    def reconfigure(self, config: str) -> None:
        self.config = config
        _write(
            self.dir / "bird.conf",
            f"router id {self.router_id};\nlog stderr all;\nprotocol device {{ }}\n"
            + textwrap.dedent(config),
        )
        self.cmd("configure")

    def cmd(self, command: str) -> str:
        return self.lab.exec(self.role, ["birdc", "-s", self.socket, *command.split()])

    def protocol_state(self, proto: str) -> str:
        """`Established`, `Active`, `Connect`, ... from `show protocols all`."""
        out = self.cmd(f"show protocols all {proto}")
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("BGP state:"):
                return line.split(":", 1)[1].strip()
        return ""

    def wait_established(self, proto: str, timeout: float = 20) -> None:
        wait_for(
            lambda: self.protocol_state(proto) == "Established",
            timeout,
            what=f"BIRD protocol {proto} Established",
        )

    def routes(self, table: str = "master4") -> str:
        return self.cmd(f"show route table {table} all")

    def route_count(self, table: str = "master4") -> int:
        out = self.cmd(f"show route table {table} count")
        for line in out.splitlines():
            parts = line.split()
            if "of" in parts and "routes" in parts:
                return int(parts[0])
        return 0


@dataclass
class GoBGP:
    """GoBGP (`gobgpd`) with a TOML configuration; `cli()` runs `gobgp ... -j`."""

    lab: Lab
    role: str
    asn: int
    router_id: str
    neighbors_toml: str = ""
    extra_global_toml: str = ""
    api_port: int = 50051
    name: str = "gobgpd"
    proc: LabProcess | None = None

    def start(self) -> GoBGP:
        d = self.lab.workdir / f"{self.role}-{self.name}"
        d.mkdir(exist_ok=True)
        conf = _write(
            d / "gobgpd.toml",
            f"""
            [global.config]
              as = {self.asn}
              router-id = "{self.router_id}"
            {textwrap.dedent(self.extra_global_toml)}
            {textwrap.dedent(self.neighbors_toml)}
            """,
        )
        self.proc = self.lab.spawn(
            self.role,
            [
                "gobgpd",
                "-f",
                str(conf),
                "-t",
                "toml",
                "-l",
                "info",
                "--api-hosts",
                f"127.0.0.1:{self.api_port}",
            ],
            name=self.name,
        )
        wait_for(self._ready, 10, what="gobgpd API")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise LabError(f"gobgpd exited: {self.proc.output()[-2000:]}")
        return self.lab.run(self.role, self._cli_argv(["global"])).returncode == 0

    def _cli_argv(self, args: list[str]) -> list[str]:
        return ["gobgp", "-u", "127.0.0.1", "-p", str(self.api_port), *args]

    def cli(self, *args: str) -> Any:
        out = self.lab.exec(self.role, self._cli_argv([*args, "-j"]))
        return json.loads(out) if out.strip() else None

    def neighbor_state(self, address: str) -> str:
        info = self.cli("neighbor", address)
        return str(info.get("state", {}).get("session_state", "")) if info else ""

    def wait_established(self, address: str, timeout: float = 20) -> None:
        # gobgp's JSON spells states as numbers (6 = established) or names, by version.
        wait_for(
            lambda: self.neighbor_state(address) in ("6", "established", "ESTABLISHED"),
            timeout,
            what=f"GoBGP neighbor {address} established",
        )

    def rib(self, family: str = "ipv4") -> dict[str, Any]:
        out = self.cli("global", "rib", "-a", family)
        return out or {}


@dataclass
class Frr:
    """FRR: zebra, bgpd and bfdd in the namespace, configured through `vtysh -f`."""

    lab: Lab
    role: str
    config: str
    daemons: tuple[str, ...] = ("zebra", "bgpd", "bfdd")
    procs: dict[str, LabProcess] = field(default_factory=dict)
    dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.dir = self.lab.workdir / f"{self.role}-frr"
        self.dir.mkdir(exist_ok=True)
        # FRR drops privileges to the frr user, which must own its socket directory.
        shutil.chown(self.dir, "frr", "frr")
        os.chmod(self.lab.workdir, 0o755)

    def start(self) -> Frr:
        for daemon in self.daemons:
            argv = [
                str(FRR_DIR / daemon),
                "--vty_socket",
                str(self.dir),
                "-z",
                str(self.dir / "zserv.api"),
                "-i",
                str(self.dir / f"{daemon}.pid"),
                "-f",
                "/dev/null",
                "--log",
                "stdout",
                "--log-level",
                "info",
            ]
            if daemon == "bfdd":
                argv += ["--bfdctl", str(self.dir / "bfdd.sock")]
            self.procs[daemon] = self.lab.spawn(self.role, argv, name=daemon)
            if daemon == "zebra":
                wait_for(lambda: (self.dir / "zserv.api").exists(), 10, what="zebra socket")
        wait_for(self._ready, 15, what="FRR daemons answering vtysh")
        self.apply(self.config)
        return self

    def _ready(self) -> bool:
        for name, proc in self.procs.items():
            if not proc.alive():
                raise LabError(f"FRR {name} exited: {proc.output()[-2000:]}")
        return all((self.dir / f"{d}.vty").exists() for d in self.daemons)

    def apply(self, config: str) -> None:
        path = _write(self.dir / f"frr-{time.monotonic_ns()}.conf", config)
        shutil.chown(path, "frr", "frr")
        result = self.lab.run(self.role, ["vtysh", "--vty_socket", str(self.dir), "-f", str(path)])
        if result.returncode != 0:
            raise LabError(f"vtysh -f failed: {result.stdout}{result.stderr}")

    def vtysh(self, command: str) -> str:
        return self.lab.exec(self.role, ["vtysh", "--vty_socket", str(self.dir), "-c", command])

    def json(self, command: str) -> Any:
        out = self.vtysh(command + " json")
        return json.loads(out) if out.strip() else {}

    def bgp_peer(self, address: str, afi: str = "ipv4Unicast") -> dict[str, Any]:
        summary = self.json("show bgp summary")
        return dict(summary.get(afi, {}).get("peers", {}).get(address, {}))

    def wait_established(self, address: str, timeout: float = 20, afi: str = "ipv4Unicast") -> None:
        wait_for(
            lambda: self.bgp_peer(address, afi).get("state") == "Established",
            timeout,
            what=f"FRR neighbor {address} Established",
        )

    def bfd_peers(self) -> list[dict[str, Any]]:
        return list(self.json("show bfd peers") or [])


@dataclass
class ExaBGP:
    """ExaBGP 4 with a given configuration; used as the benchmark anchor."""

    lab: Lab
    role: str
    config: str
    name: str = "exabgp"
    proc: LabProcess | None = None

    def start(self, env: dict[str, str] | None = None) -> ExaBGP:
        d = self.lab.workdir / f"{self.role}-{self.name}"
        d.mkdir(exist_ok=True)
        conf = _write(d / "exabgp.conf", self.config)
        base_env = {
            "exabgp.daemon.user": "root",
            "exabgp.log.destination": "stdout",
            "exabgp.daemon.drop": "false",
        }
        self.proc = self.lab.spawn(
            self.role, ["exabgp", str(conf)], name=self.name, env={**base_env, **(env or {})}
        )
        return self
