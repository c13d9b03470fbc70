"""`metallb-py demo`: the main job, on this machine, with nothing but the embedded defaults.

It starts the embedded API server and the controller, loads a pool, creates Services and shows
the IPs they get. As root it also builds a small LAN out of network namespaces it owns
(`mlbdemo<pid>-*`, documentation addresses only), runs a speaker on two "nodes", resolves a
service IP with `arping` from a client, then kills the announcing speaker (SIGKILL, its Node object
left alone) and shows the other node take over through membership, with the measured time. It
never touches the host's own interfaces.

The speakers live in other network namespaces than the API server, which listens on the host's
loopback. A Unix socket joins them (the file system is shared across network namespaces): each node
runs a tiny forwarder from its own loopback to that socket, so every component talks to
`127.0.0.1` as it would on a single host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from metallb_py.cli import COMPONENTS, RunContext
from metallb_py.controller.memberlist_secret import new_secret_value
from metallb_py.kube.rest import (
    ENDPOINTSLICES,
    IPADDRESSPOOLS,
    L2ADVERTISEMENTS,
    NAMESPACES,
    NODES,
    SERVICES,
    ApiError,
    Resource,
)

NS = "metallb-system"
POOL_V4 = "198.51.100.200-198.51.100.220"
POOL_V6 = "2001:db8:100::200-2001:db8:100::2ff"
NODE_PORT = 6443  # the forwarder's port on each node's loopback
CRDS = Resource(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    namespaced=False,
    kind="CustomResourceDefinition",
)
DEMO_RESOURCES = {
    r.kind: r
    for r in (CRDS, NAMESPACES, NODES, SERVICES, ENDPOINTSLICES, IPADDRESSPOOLS, L2ADVERTISEMENTS)
}


def implemented(module: str) -> bool:
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec(module) is None:
            return False
    except ModuleNotFoundError:
        return False
    return hasattr(importlib.import_module(module), "run")


def status_lines() -> list[str]:
    lines = []
    for name, component in COMPONENTS.items():
        if name != "demo":
            state = "ready" if implemented(component.module) else "not implemented yet"
            lines.append(f"  metallb-py {name:<16} {state}")
    return lines


def say(step: str, text: str) -> None:
    print(f"[{step}] {text}", flush=True)


# -- processes and namespaces ---------------------------------------------------------------------
class Demo:
    """Everything the demo starts, so that it can all be stopped and removed."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.namespaces: list[str] = []
        self.prefix = f"mlbdemo{os.getpid()}-"

    def spawn(self, name: str, argv: list[str], ns: str | None = None) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        if ns is not None:
            argv = ["ip", "netns", "exec", self.prefix + ns, *argv]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

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

    def run(self, *argv: str, ns: str | None = None, check: bool = True) -> str:
        full = list(argv) if ns is None else ["ip", "netns", "exec", self.prefix + ns, *argv]
        out = subprocess.run(full, capture_output=True, text=True, check=False, timeout=30)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(full)}: {out.stderr.strip()}")
        return out.stdout

    def ip(self, *args: str, ns: str | None = None, check: bool = True) -> str:
        return self.run("ip", *args, ns=ns, check=check)

    def add_ns(self, role: str) -> None:
        self.ip("netns", "add", self.prefix + role)
        self.namespaces.append(self.prefix + role)
        self.ip("link", "set", "lo", "up", ns=role)
        self.run("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", ns=role, check=False)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.namespaces.clear()


def build_lan(demo: Demo, nodes: list[str]) -> dict[str, str]:
    """switch + nodes + client, 198.51.100.0/24 and 2001:db8:100::/64; returns role -> MAC."""
    demo.add_ns("switch")
    demo.ip("link", "add", "br0", "type", "bridge", ns="switch")
    demo.ip("link", "set", "br0", "up", ns="switch")
    macs = {}
    for index, role in [(10 + i, n) for i, n in enumerate(nodes, 1)] + [(100, "client")]:
        demo.add_ns(role)
        demo.ip(
            "link",
            "add",
            "eth0",
            "netns",
            demo.prefix + role,
            "type",
            "veth",
            "peer",
            "name",
            f"p-{role}",
            "netns",
            demo.prefix + "switch",
        )
        demo.ip("link", "set", f"p-{role}", "master", "br0", "up", ns="switch")
        demo.ip("link", "set", "eth0", "up", ns=role)
        demo.ip("addr", "add", f"198.51.100.{index}/24", "dev", "eth0", ns=role)
        demo.ip("addr", "add", f"2001:db8:100::{index:x}/64", "dev", "eth0", "nodad", ns=role)
        macs[role] = demo.run("cat", "/sys/class/net/eth0/address", ns=role).strip()
    return macs


# -- the Unix-socket bridge between namespaces -------------------------------------------------
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
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connect: Callable[[], Any],
) -> None:
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
    return await asyncio.start_unix_server(
        lambda r, w: _splice(r, w, lambda: asyncio.open_connection(host, port)), path=path
    )


async def serve_tcp_to_unix(port: int, path: str) -> None:
    """Run in a node namespace: its loopback port -> the Unix socket in the host namespace."""
    server = await asyncio.start_server(
        lambda r, w: _splice(r, w, lambda: asyncio.open_unix_connection(path)), "127.0.0.1", port
    )
    print("forwarder ready", flush=True)
    async with server:
        await server.serve_forever()


# -- the walkthrough -----------------------------------------------------------------------------
def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _logged(demo: Demo, name: str, text: str) -> bool:
    return text in demo.log(name)


def metallb(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def service(
    name: str,
    annotations: dict[str, str] | None = None,
    port: int = 80,
    families: list[str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": {"app": name},
        "ports": [{"name": "p", "port": port, "protocol": "TCP"}],
    }
    if families:
        spec["ipFamilies"] = families
        spec["ipFamilyPolicy"] = "RequireDualStack" if len(families) == 2 else "SingleStack"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
        "spec": spec,
    }


def endpoints(name: str, nodes: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [f"192.0.2.{10 + i}"], "nodeName": n, "conditions": {"ready": True}}
            for i, n in enumerate(nodes)
        ],
    }


async def create_all(kubeconfig: str, objs: list[dict[str, Any]]) -> None:
    from metallb_py.kube.client import connect

    rest = await connect(kubeconfig)
    try:
        for obj in objs:
            resource = DEMO_RESOURCES[obj["kind"]]
            path = resource.path(obj["metadata"].get("namespace"))
            for attempt in range(50):
                try:
                    await rest.create(path, obj)
                    break
                except ApiError as exc:
                    if exc.status == 409:
                        break
                    if exc.status == 404 and attempt < 49:  # CRD not served yet
                        await asyncio.sleep(0.1)
                        continue
                    raise
    finally:
        await rest.close()


async def service_ips(kubeconfig: str) -> dict[str, list[str]]:
    from metallb_py.kube.client import connect

    rest = await connect(kubeconfig)
    try:
        got = await rest.get(SERVICES.path("default"))
    finally:
        await rest.close()
    out = {}
    for svc in got.get("items", []):
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        out[svc["metadata"]["name"]] = [i["ip"] for i in ingress if i.get("ip")]
    return out


def arping(demo: Demo, ip: str) -> str | None:
    """The MAC that answers ARP for `ip` on the demo LAN, seen from the client."""
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            demo.prefix + "client",
            "arping",
            "-c",
            "1",
            "-w",
            "2",
            "-I",
            "eth0",
            ip,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=15,
    ).stdout
    for word in out.replace("[", " ").replace("]", " ").split():
        if word.count(":") == 5:
            return word.lower()
    return None


def neighbour_mac(demo: Demo, ip: str) -> str | None:
    out = demo.ip("neigh", "show", ip, "dev", "eth0", ns="client", check=False).split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


async def walkthrough(ctx: RunContext, demo: Demo) -> int:
    py = sys.executable
    kubeconfig = demo.workdir / "kubeconfig"
    with_lan = os.geteuid() == 0 and not ctx.args.no_network and shutil.which("arping")

    demo.spawn(
        "apiserver",
        [
            py,
            "-m",
            "metallb_py",
            "apiserver",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig-out",
            str(kubeconfig),
            "--metrics-port",
            "0",
            "--service-cidr",
            "10.96.0.0/16",
            "--service-cidr",
            "fd00:10:96::/112",
        ],
    )
    wait_until(
        lambda: kubeconfig.exists() or demo.procs["apiserver"].poll() is not None,
        60,
        "the API server",
    )
    if not kubeconfig.exists():
        print(demo.log("apiserver"), file=sys.stderr)
        return 1
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    say("1/6", f"embedded API server at {server}; kubeconfig {kubeconfig}")

    from metallb_py.config.crds import render_all

    nodes = ["node1", "node2"]
    await create_all(
        str(kubeconfig),
        [
            *render_all().values(),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            *(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                }
                for n in nodes
            ),
            metallb("IPAddressPool", "demo", {"addresses": [POOL_V4, POOL_V6]}),
            metallb("L2Advertisement", "demo", {"ipAddressPools": ["demo"]}),
        ],
    )
    say("2/6", f"IPAddressPool demo: {POOL_V4}, {POOL_V6}; L2Advertisement demo")

    port = ctx.args.controller_metrics_port
    demo.spawn(
        "controller",
        [
            py,
            "-m",
            "metallb_py",
            "controller",
            "--kubeconfig",
            str(kubeconfig),
            "--metrics-port",
            str(port),
            "--no-leader-election",
        ],
    )
    say("3/6", f"controller running; metrics at http://127.0.0.1:{port}/metrics")

    shared = {"metallb.io/allow-shared-ip": "dns"}
    await create_all(
        str(kubeconfig),
        [
            service("web"),
            endpoints("web", nodes),
            service("dns-tcp", shared, port=53),
            service("dns-udp", shared, port=5353),
            service("dual", families=["IPv4", "IPv6"]),
            endpoints("dual", nodes),
            service("pinned", {"metallb.io/loadBalancerIPs": "198.51.100.220"}),
        ],
    )
    wanted = {"web", "dns-tcp", "dns-udp", "dual", "pinned"}

    async def all_have_ips() -> dict[str, list[str]]:
        ips = await service_ips(str(kubeconfig))
        return ips if all(ips.get(n) for n in wanted) else {}

    deadline = time.monotonic() + 60
    ips: dict[str, list[str]] = {}
    while not ips:
        if demo.procs["controller"].poll() is not None:
            print(demo.log("controller")[-3000:], file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            raise TimeoutError("services did not get IPs")
        ips = await all_have_ips()
        await asyncio.sleep(0.1)
    say("4/6", "Services of type LoadBalancer got their IPs:")
    for name in sorted(wanted):
        print(f"      {name:<8} {', '.join(ips[name])}", flush=True)

    if not with_lan:
        say(
            "5/6",
            "layer 2 skipped: it needs root and arping (it builds its own network "
            "namespaces); run `sudo metallb-py demo` to see it",
        )
    else:
        await layer2(ctx, demo, kubeconfig, nodes, ips["web"][0])

    if ctx.args.once:
        say("6/6", "done (--once): stopping everything and removing the namespaces")
        return 0
    say("6/6", f"running. Try: kubectl --kubeconfig {kubeconfig} get svc,ipaddresspools -A")
    await ctx.stop.wait()
    return 0


async def layer2(ctx: RunContext, demo: Demo, kubeconfig: Path, nodes: list[str], ip: str) -> None:
    py = sys.executable
    macs = build_lan(demo, nodes)
    sock = str(demo.workdir / "api.sock")
    cfg = yaml.safe_load(await asyncio.to_thread(kubeconfig.read_text))
    await serve_unix_to_tcp(
        sock,
        "127.0.0.1",
        int(cfg["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1].rstrip("/")),
    )
    cfg["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{NODE_PORT}"
    node_kubeconfig = demo.workdir / "node-kubeconfig"
    node_kubeconfig.write_text(yaml.safe_dump(cfg))
    # Membership finds the other speakers through the Node objects' addresses (no speaker Pods
    # here, as with speakers run by systemd) and encrypts with a key from a "mounted Secret".
    node_ips = {n: f"198.51.100.{10 + i}" for i, n in enumerate(nodes, 1)}
    await set_node_addresses(str(kubeconfig), node_ips)
    key_dir = demo.workdir / "memberlist-secret"
    key_dir.mkdir(exist_ok=True)
    (key_dir / "secretkey").write_text(new_secret_value())
    for node in nodes:
        demo.spawn(
            f"forwarder-{node}",
            [
                py,
                "-c",
                "import asyncio,sys; from metallb_py.demo import serve_tcp_to_unix;"
                f"asyncio.run(serve_tcp_to_unix({NODE_PORT}, sys.argv[1]))",
                sock,
            ],
            ns=node,
        )
        wait_until(partial(_logged, demo, f"forwarder-{node}", "forwarder ready"), 30, node)
        demo.spawn(
            f"speaker-{node}",
            [
                py,
                "-m",
                "metallb_py",
                "speaker",
                "--node-name",
                node,
                "--kubeconfig",
                str(node_kubeconfig),
                "--metrics-port",
                "7473",
                "--ml-bind-addr",
                node_ips[node],
                "--ml-secret-key-path",
                str(key_dir),
            ],
            ns=node,
        )
    say(
        "5/6",
        f"layer 2: speakers on {', '.join(nodes)} (namespaces {demo.prefix}*), client arpings {ip}",
    )
    owner_mac = await asyncio.to_thread(
        wait_until, lambda: arping(demo, ip), 60, f"an ARP answer for {ip}"
    )
    owner = next(n for n, m in macs.items() if m == owner_mac)
    # One ping makes the client's kernel resolve the IP, so it has a neighbour entry that the
    # new owner's gratuitous ARP must correct (nothing answers the ping: no workload runs here).
    demo.run("ping", "-c", "1", "-W", "1", ip, ns="client", check=False)
    print(
        f"      {ip} is-at {owner_mac} ({owner}); client neighbour entry: "
        f"{neighbour_mac(demo, ip)}",
        flush=True,
    )
    other = next(n for n in nodes if n != owner)
    # Wait until both speakers see each other, so the kill below is a real failover.
    await asyncio.to_thread(
        wait_until,
        lambda: all(set(nodes) <= _members_seen(demo, f"speaker-{o}") for o in nodes),
        30,
        "the speakers to see each other",
    )
    started = time.monotonic()
    # SIGKILL: the speaker cannot say goodbye, and its Node object stays. Membership notices.
    demo.stop(f"speaker-{owner}", signal.SIGKILL)
    new_mac = await asyncio.to_thread(
        _poll_fast,
        lambda: neighbour_mac(demo, ip) == macs[other] and macs[other],
        30,
        f"{other} to take over {ip}",
    )
    took = time.monotonic() - started
    answer = await asyncio.to_thread(arping, demo, ip)
    print(
        f"      {owner}'s speaker killed (SIGKILL; its Node untouched): {other} noticed through "
        f"membership and took over; the client's neighbour table had {ip} at {new_mac} "
        f"({other}) {took:.2f} s after the kill, from the takeover burst; arping now answered "
        f"by {answer}",
        flush=True,
    )


def _members_seen(demo: Demo, name: str) -> set[str]:
    seen = set()
    for line in demo.log(name).splitlines():
        if '"memberJoined"' in line:
            with contextlib.suppress(ValueError):
                seen.add(str(json.loads(line).get("member")))
    return seen


def _poll_fast(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """wait_until at 10 ms, to measure a sub-second takeover."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


async def set_node_addresses(kubeconfig: str, addresses: dict[str, str]) -> None:
    from metallb_py.kube.client import connect

    rest = await connect(kubeconfig)
    try:
        for node, addr in addresses.items():
            await rest.patch(
                f"/api/v1/nodes/{node}/status",
                {"status": {"addresses": [{"type": "InternalIP", "address": addr}]}},
            )
    finally:
        await rest.close()


async def run(ctx: RunContext) -> int:
    if ctx.args.status:
        print("\n".join(status_lines()))
        return 0
    demo = Demo(Path(tempfile.mkdtemp(prefix="metallb-py-demo-")))
    print(f"metallb-py demo (logs in {demo.workdir}); Ctrl-C stops it and removes everything")
    try:
        return await walkthrough(ctx, demo)
    except (TimeoutError, RuntimeError) as exc:
        print(f"metallb-py demo: {exc}; component logs are in {demo.workdir}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"metallb-py demo: the API server refused a demo object: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.close()
