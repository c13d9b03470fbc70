"""The demo's own small network and the processes in it, and how all of it is removed again.

`metallb-py demo` (as root) builds a LAN out of network namespaces named `mlbdemo<pid>-<role>`:

    node1 .11 ─┐
    node2 .12 ─┤
    node3 .13 ─┼── br0 (namespace "switch")      198.51.100.0/24, 2001:db8:100::/64
    router .1 ─┤   BIRD 2, AS 64500, ECMP into its kernel table
    client .100┘   default route via the router

Only documentation addresses are used and the host's own interfaces are never touched. Every
process the demo starts carries `METALLB_PY_DEMO=<its work directory>` in its environment, so
teardown can find each one by pid (including any it started itself), kill it, and then delete the
namespaces; namespaces left by a demo that was killed are swept by the next one (their pid is
dead).

Helper processes run from this module: `python -m metallb_py.demo_net forward PORT SOCKET` joins a
node's loopback to the API server (a Unix socket crosses network namespaces, TCP does not), and
`python -m metallb_py.demo_net http NODE` is the stand-in for kube-proxy and a backend Pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import inspect
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER_ENV = "METALLB_PY_DEMO"
PREFIX_RE = re.compile(r"^mlbdemo(\d+)-")
LAN4 = "198.51.100"
LAN6 = "2001:db8:100::"
ROUTER_IP = f"{LAN4}.1"
CLIENT_IP = f"{LAN4}.100"
ROUTER_AS = 64500
SPEAKER_AS = 64512
HTTP_PORT = 80
# One subprocess (ip, birdc, arping, curl) never takes longer than this.
COMMAND_TIMEOUT = 30.0


class Halted(Exception):
    """The demo is being stopped (Ctrl-C): waits end at once instead of timing out."""


@dataclass(frozen=True)
class Host:
    role: str
    ipv4: str
    ipv6: str
    mac: str


def node_ipv4(index: int) -> str:
    """node1 is .11, node2 .12, ..."""
    return f"{LAN4}.{10 + index}"


class Demo:
    """Everything the demo starts, so that all of it can be stopped and removed."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.namespaces: list[str] = []
        self.prefix = f"mlbdemo{os.getpid()}-"
        self.halt = threading.Event()

    @property
    def marker(self) -> str:
        return str(self.workdir)

    def ns(self, role: str) -> str:
        return self.prefix + role

    def spawn(self, name: str, argv: list[str], ns: str | None = None) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        if ns is not None:
            argv = ["ip", "netns", "exec", self.ns(ns), *argv]
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops the rest in order
            env={**os.environ, MARKER_ENV: self.marker},
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logged(self, name: str, text: str) -> bool:
        return text in self.log(name)

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop_all(self, names: list[str], grace: float = 5.0) -> None:
        """SIGTERM to all of them together; SIGKILL to any still running after `grace` s."""
        procs = [p for p in (self.procs.pop(n) for n in names) if p.poll() is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def run(
        self,
        *argv: str,
        ns: str | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
    ) -> str:
        full = list(argv) if ns is None else ["ip", "netns", "exec", self.ns(ns), *argv]
        try:
            out = subprocess.run(
                full,
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            if check:
                raise RuntimeError(f"{' '.join(full)}: no answer in {timeout:.0f} s") from None
            return ""
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(full)}: {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout

    def ip(self, *args: str, ns: str | None = None, check: bool = True) -> str:
        return self.run("ip", *args, ns=ns, check=check)

    def sysctl(self, ns: str, **values: str | int) -> None:
        for key, value in values.items():
            self.run("sysctl", "-qw", f"{key.replace('__', '.')}={value}", ns=ns)

    def add_ns(self, role: str) -> None:
        self.ip("netns", "add", self.ns(role))
        self.namespaces.append(self.ns(role))
        self.ip("link", "set", "lo", "up", ns=role)
        self.run("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", ns=role, check=False)

    def close(self) -> None:
        """Stop every process (known ones politely first), then delete the namespaces."""
        self.halt.set()
        # Everything that talks to the API server at once, then the API server itself.
        self.stop_all([n for n in self.procs if n != "apiserver"])
        self.stop_all(list(self.procs))
        for ns in self.namespaces:
            kill_namespace_pids(ns)
        for pid in marked_pids(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.namespaces.clear()


def kill_namespace_pids(ns: str) -> None:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    for word in out.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(word), signal.SIGKILL)


def marked_pids(marker: str) -> list[int]:
    """Processes whose environment names this demo's work directory."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry.name))
    return found


def sweep_stale() -> list[str]:
    """Remove namespaces left by a demo whose process is gone (it was killed, not stopped)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    removed = []
    for name in (line.split()[0] for line in listed.stdout.splitlines() if line.strip()):
        match = PREFIX_RE.match(name)
        if not match or Path(f"/proc/{match.group(1)}").exists():
            continue
        kill_namespace_pids(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        removed.append(name)
    return removed


def build_lan(demo: Demo, nodes: list[str]) -> dict[str, Host]:
    """The switch and every host on it; returns role -> Host."""
    demo.add_ns("switch")
    demo.ip("link", "add", "br0", "type", "bridge", ns="switch")
    demo.ip("link", "set", "br0", "up", ns="switch")
    hosts = {}
    roles = [(1, "router"), *((10 + i, n) for i, n in enumerate(nodes, 1)), (100, "client")]
    for index, role in roles:
        demo.add_ns(role)
        demo.ip(
            "link", "add", "eth0", "netns", demo.ns(role), "type", "veth",
            "peer", "name", f"p-{role}", "netns", demo.ns("switch"),
        )  # fmt: skip
        demo.ip("link", "set", f"p-{role}", "master", "br0", "up", ns="switch")
        demo.ip("link", "set", "eth0", "up", ns=role)
        v4, v6 = f"{LAN4}.{index}", f"{LAN6}{index:x}"
        demo.ip("addr", "add", f"{v4}/24", "dev", "eth0", ns=role)
        demo.ip("addr", "add", f"{v6}/64", "dev", "eth0", "nodad", ns=role)
        mac = demo.run("cat", "/sys/class/net/eth0/address", ns=role).strip()
        hosts[role] = Host(role, v4, v6, mac)
    # The router forwards, spreads flows over equal paths by their ports, and sends no ICMP
    # redirects (a redirected client would bypass it and the ECMP route).
    demo.sysctl(
        "router",
        net__ipv4__ip_forward=1,
        net__ipv4__fib_multipath_hash_policy=1,
        net__ipv4__conf__all__send_redirects=0,
        net__ipv4__conf__eth0__send_redirects=0,
    )
    demo.ip("route", "add", "default", "via", ROUTER_IP, ns="client")
    demo.sysctl("client", net__ipv4__conf__all__accept_redirects=0)
    for node in nodes:
        # As kube-proxy in IPVS mode with strictARP: the node accepts traffic for the service
        # IPs (local addresses, here on lo), but its kernel never answers ARP for them; only the
        # speaker that owns an IP does.
        demo.sysctl(node, net__ipv4__conf__all__arp_ignore=1, net__ipv4__conf__all__arp_announce=2)
    return hosts


def add_service_ip(demo: Demo, node: str, ip: str) -> None:
    demo.ip("addr", "add", f"{ip}/32", "dev", "lo", ns=node)


# -- BIRD 2 as the upstream router -----------------------------------------------------------------
class Bird:
    """BIRD 2 in the router namespace: one eBGP session per node, ECMP into the kernel."""

    def __init__(self, demo: Demo, peers: dict[str, str]) -> None:
        self.demo = demo
        self.peers = peers
        self.dir = demo.workdir / "bird"
        self.dir.mkdir(exist_ok=True)
        self.socket = str(self.dir / "bird.ctl")

    def config(self) -> str:
        sessions = "".join(
            textwrap.dedent(
                f"""
                protocol bgp {name} {{
                  local {ROUTER_IP} as {ROUTER_AS};
                  neighbor {address} as {SPEAKER_AS};
                  connect retry time 1;
                  ipv4 {{ import all; export none; }};
                }}
                """
            )
            for name, address in self.peers.items()
        )
        return (
            f"router id {ROUTER_IP};\n"
            "log stderr { info, remote, warning, error, auth, fatal, bug };\n"
            "protocol device { }\n"
            "# Equal BGP paths become one multipath route in the kernel.\n"
            "protocol kernel { ipv4 { export all; }; merge paths on; }\n" + sessions
        )

    def start(self) -> None:
        conf = self.dir / "bird.conf"
        conf.write_text(self.config())
        self.demo.spawn(
            "bird",
            ["bird", "-f", "-c", str(conf), "-s", self.socket, "-P", str(self.dir / "bird.pid")],
            ns="router",
        )

    def ready(self) -> bool:
        if not self.demo.alive("bird"):
            raise RuntimeError(f"bird exited: {self.demo.log('bird')[-2000:]}")
        return Path(self.socket).exists() and "BIRD" in self.cmd("show", "status", check=False)

    def birdc(self, *args: str) -> list[str]:
        return ["birdc", "-s", self.socket, *args]

    def cmd(self, *args: str, check: bool = True) -> str:
        return self.demo.run(*self.birdc(*args), check=check)

    def established(self) -> set[str]:
        """Names of the BGP sessions that are up, from `show protocols`."""
        up = set()
        for line in self.cmd("show", "protocols", check=False).splitlines():
            words = line.split()
            if len(words) >= 6 and words[0] in self.peers and words[-1] == "Established":
                up.add(words[0])
        return up

    def next_hops(self, prefix: str) -> list[str]:
        """The `via` addresses of every path BIRD holds for `prefix`."""
        out = self.cmd("show", "route", "for", prefix, check=False)
        return re.findall(r"via (\S+) on", out)


# -- waiting -------------------------------------------------------------------------------------
async def until(
    demo: Demo,
    predicate: Callable[[], Any],
    limit: float,
    what: str,
    interval: float = 0.1,
    blocking: bool = False,
) -> Any:
    """Poll `predicate` until it is truthy (awaiting what it returns when that is awaitable);
    `blocking` ones (subprocesses) run in a thread so the API bridge in this event loop keeps
    serving."""
    deadline = time.monotonic() + limit
    while True:
        if demo.halt.is_set():
            raise Halted
        value = await asyncio.to_thread(predicate) if blocking else predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {limit:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def poll_fast(demo: Demo, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Every 10 ms, in the calling thread: to time a sub-second takeover."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if demo.halt.is_set():
            raise Halted
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)
    return value


# -- the API bridge between namespaces ------------------------------------------------------------
async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _splice(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connect: Callable[[], Any]
) -> None:
    """Bytes both ways, untouched: TLS passes through end to end."""
    try:
        up_reader, up_writer = await connect()
    except OSError:
        writer.close()
        return
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    except asyncio.CancelledError:
        # Shutting down. Ending normally keeps Python 3.11's stream callback from logging the
        # cancellation of a connection handler as an error.
        writer.close()
        up_writer.close()


async def serve_unix_to_tcp(path: str, host: str, port: int) -> asyncio.AbstractServer:
    """In the demo (host namespace): the Unix socket -> the API server on loopback."""
    return await asyncio.start_unix_server(
        lambda r, w: _splice(r, w, lambda: asyncio.open_connection(host, port)), path=path
    )


async def serve_tcp_to_unix(port: int, path: str) -> None:
    """In a node namespace: its loopback port -> the Unix socket in the host namespace."""
    server = await asyncio.start_server(
        lambda r, w: _splice(r, w, lambda: asyncio.open_unix_connection(path)), "127.0.0.1", port
    )
    print("forwarder ready", flush=True)
    async with server:
        await server.serve_forever()


# -- the kube-proxy stand-in ---------------------------------------------------------------------
def http_handler(node: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            local = self.connection.getsockname()[0]
            body = f"hello from {node} (you reached {local}:{HTTP_PORT})\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.client_address[0]} {format % args}", flush=True)

    return Handler


def serve_http(node: str) -> None:
    """Answers on every address of the node, so on each service IP added to its lo."""
    server = http.server.ThreadingHTTPServer(("0.0.0.0", HTTP_PORT), http_handler(node))
    print(f"http stand-in for {node} ready", flush=True)
    server.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "forward":
        asyncio.run(serve_tcp_to_unix(int(argv[1]), argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "http":
        serve_http(argv[1])
        return 0
    print("usage: python -m metallb_py.demo_net forward PORT SOCKET | http NODE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
