"""`metallb-py demo`: the whole system on this machine, with nothing but the embedded defaults.

Without root it runs what needs no network of its own: the embedded API server (HTTPS, with the
kubeconfig it writes), the validating webhook (a bad pool is refused, with the rule it breaks), the
controller, and Services that get their IPs from a layer-2 pool and a BGP pool. As root it then
builds a LAN of network namespaces (see `metallb_py.demo_net`) with three nodes, a BIRD router and
a client, runs a speaker and a kube-proxy stand-in on every node, shows the router's ECMP routes,
fetches a page through each service IP from the client, and kills the speaker that announces the
layer-2 IP (SIGKILL, its Node left alone) to show another node take over through membership, with
the measured time. Everything it started is stopped and removed on exit, Ctrl-C or failure.

The speakers live in other network namespaces than the API server, which listens on the host's
loopback. A Unix socket joins them (the file system is shared across network namespaces): each node
runs a tiny forwarder from its own loopback to that socket, so every component talks to
`127.0.0.1` as it would on a single host, TLS included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from metallb_py.cli import COMPONENTS, RunContext
from metallb_py.controller.memberlist_secret import new_secret_value
from metallb_py.demo_net import (
    HTTP_PORT,
    ROUTER_AS,
    ROUTER_IP,
    SPEAKER_AS,
    Bird,
    Demo,
    Halted,
    Host,
    add_service_ip,
    build_lan,
    poll_fast,
    serve_unix_to_tcp,
    sweep_stale,
    until,
)
from metallb_py.kube.rest import (
    BGPADVERTISEMENTS,
    BGPPEERS,
    ENDPOINTSLICES,
    IPADDRESSPOOLS,
    L2ADVERTISEMENTS,
    NAMESPACES,
    NODES,
    SERVICES,
    VALIDATINGWEBHOOKCONFIGURATIONS,
    ApiError,
    Resource,
    Rest,
)

NS = "metallb-system"
NODE_NAMES = ["node1", "node2", "node3"]
POOL_L2 = ["198.51.100.200-198.51.100.220", "2001:db8:100::200-2001:db8:100::2ff"]
POOL_BGP = ["203.0.113.10-203.0.113.30"]
BAD_POOL = ["198.51.100.210-198.51.100.230"]  # overlaps the layer-2 pool
NODE_PORT = 6443  # the forwarder's port on each node's loopback
BGP_REQUESTS = 6  # requests the client sends to the BGP service IP, to show ECMP spreading them
WAIT = 60.0  # seconds any one step may wait for the system (each is far faster when healthy)
CUSTOMRESOURCEDEFINITIONS = Resource(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    namespaced=False,
    kind="CustomResourceDefinition",
)
DEMO_RESOURCES = {
    r.kind: r
    for r in (
        CUSTOMRESOURCEDEFINITIONS,
        NAMESPACES,
        NODES,
        SERVICES,
        ENDPOINTSLICES,
        IPADDRESSPOOLS,
        L2ADVERTISEMENTS,
        BGPADVERTISEMENTS,
        BGPPEERS,
        VALIDATINGWEBHOOKCONFIGURATIONS,
    )
}
NETWORK_TOOLS = {"ip": "iproute2", "bird": "bird2", "birdc": "bird2", "arping": "arping"}


class Failed(RuntimeError):
    """A step failed; `log` names the component whose log tells why."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


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


class Steps:
    """`[n/N] text` progress lines."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def say(self, text: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {text}", flush=True)


def detail(text: str) -> None:
    for line in text.rstrip("\n").splitlines():
        print(f"      {line}", flush=True)


def network_unavailable(no_network: bool) -> str | None:
    """Why the namespace part cannot run here, or None."""
    if no_network:
        return "--no-network was given"
    if os.geteuid() != 0:
        return (
            "it needs root (it creates network namespaces, a bridge and veth pairs): "
            "run `sudo make demo` to see it"
        )
    missing = sorted({tool for tool in NETWORK_TOOLS if shutil.which(tool) is None})
    if missing:
        packages = sorted({NETWORK_TOOLS[t] for t in missing})
        return (
            f"{', '.join(missing)} not found (Debian packages: {', '.join(packages)}; "
            "`make setup` as root installs them)"
        )
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubectl_word() -> str:
    """How to call kubectl from a shell here: the one installed beside this Python (the project's
    pinned kubectl) by its full path unless the PATH finds that same file, else the PATH's."""
    beside = Path(sys.executable).parent / "kubectl"
    found = shutil.which("kubectl")
    if beside.exists():
        same = found is not None and Path(found).resolve() == beside.resolve()
        return "kubectl" if same else str(beside)
    return "kubectl"


# -- objects ------------------------------------------------------------------------------------
def metallb(kind: str, name: str, spec: dict[str, Any], version: str = "v1beta1") -> dict[str, Any]:
    return {
        "apiVersion": f"metallb.io/{version}",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def node_object(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
    }


def service(
    name: str,
    annotations: dict[str, str] | None = None,
    port: int = HTTP_PORT,
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
    """Ready endpoints on every node, as a Deployment spread over them would have."""
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


def configuration() -> list[dict[str, Any]]:
    """One layer-2 pool and one BGP pool (asked for by annotation), each with its advertisement."""
    return [
        metallb("IPAddressPool", "layer2", {"addresses": POOL_L2}),
        metallb("L2Advertisement", "layer2", {"ipAddressPools": ["layer2"]}),
        metallb("IPAddressPool", "bgp", {"addresses": POOL_BGP, "autoAssign": False}),
        metallb(
            "BGPPeer",
            "router",
            {"myASN": SPEAKER_AS, "peerASN": ROUTER_AS, "peerAddress": ROUTER_IP},
            "v1beta2",
        ),
        metallb("BGPAdvertisement", "bgp", {"ipAddressPools": ["bgp"], "peers": ["router"]}),
    ]


def services() -> list[dict[str, Any]]:
    shared = {"metallb.io/allow-shared-ip": "dns"}
    return [
        service("web"),
        endpoints("web", NODE_NAMES),
        service("web-bgp", {"metallb.io/address-pool": "bgp"}),
        endpoints("web-bgp", NODE_NAMES),
        service("dns-tcp", shared, port=53),
        service("dns-udp", shared, port=5353),
        service("dual", families=["IPv4", "IPv6"]),
        endpoints("dual", NODE_NAMES),
        service("pinned", {"metallb.io/loadBalancerIPs": "198.51.100.220"}),
    ]


async def create(rest: Rest, obj: dict[str, Any]) -> None:
    resource = DEMO_RESOURCES[obj["kind"]]
    if obj["apiVersion"] != resource.api_version:
        group, version = obj["apiVersion"].split("/")
        resource = Resource(group, version, resource.plural, resource.namespaced, resource.kind)
    path = resource.path(obj["metadata"].get("namespace"))
    for attempt in range(100):
        try:
            await rest.create(path, obj)
            return
        except ApiError as exc:
            if exc.status == 409:
                return
            if exc.status == 404 and attempt < 99:  # a CRD not served yet
                await asyncio.sleep(0.1)
                continue
            raise


async def create_all(rest: Rest, objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        await create(rest, obj)


async def service_ips(rest: Rest) -> dict[str, list[str]]:
    got = await rest.get(SERVICES.path("default"))
    out = {}
    for svc in got.get("items", []):
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        out[svc["metadata"]["name"]] = [i["ip"] for i in ingress if i.get("ip")]
    return out


# -- the walkthrough -----------------------------------------------------------------------------
class Walkthrough:
    """The steps, in order; each prints its progress line once what it shows is true."""

    def __init__(self, ctx: RunContext, demo: Demo) -> None:
        self.ctx = ctx
        self.demo = demo
        self.py = sys.executable
        self.kubeconfig = demo.workdir / "kubeconfig"
        self.why_no_network = network_unavailable(bool(ctx.args.no_network))
        once = 1 if ctx.args.once else 0
        self.steps = Steps(6 + (5 if self.why_no_network is None else 1) + once)
        self.rest: Rest | None = None
        self.bridge: asyncio.AbstractServer | None = None
        self.ips: dict[str, list[str]] = {}
        self.kubectl_command = ""
        self.hosts: dict[str, Host] = {}
        self.bird: Bird | None = None
        self.server = ""
        self.webhook_port = 0

    async def close(self) -> None:
        if self.rest is not None:
            await self.rest.close()
        if self.bridge is not None:
            self.bridge.close()

    def argv(self, *args: str) -> list[str]:
        return [self.py, "-m", "metallb_py", *args]

    async def wait(
        self,
        predicate: Callable[[], Any],
        what: str,
        *,
        component: str = "",
        blocking: bool = False,
        limit: float = WAIT,
    ) -> Any:
        """`until`, failing at once (with the component's log) when that component exits."""

        def check() -> Any:
            if component and not self.demo.alive(component):
                raise Failed(f"{component} exited while waiting for {what}", component)
            return predicate()

        try:
            return await until(self.demo, check, limit, what, blocking=blocking)
        except TimeoutError as exc:
            raise Failed(str(exc), component) from None

    async def run(self) -> int:
        await self.apiserver()
        await self.webhook()
        await self.configure()
        await self.reject_bad_pool()
        await self.controller()
        await self.allocate()
        if self.why_no_network is not None:
            self.steps.say(f"network part skipped: {self.why_no_network}")
            return 0
        await self.network()
        await self.speakers()
        await self.routes()
        await self.http()
        await self.failover()
        return 0

    # 1
    async def apiserver(self) -> None:
        from metallb_py.kube.client import connect

        self.webhook_port = free_port()
        override = f"{NS}/metallb-webhook-service=https://127.0.0.1:{self.webhook_port}"
        # HTTPS is the API server's default, loopback included, and its kubeconfig carries the CA
        # and credentials: kubectl sends credentials only over TLS.
        self.demo.spawn(
            "apiserver",
            self.argv(
                "apiserver",
                "--listen", "127.0.0.1:0",
                "--kubeconfig-out", str(self.kubeconfig),
                "--metrics-port", "0",
                "--service-cidr", "10.96.0.0/16",
                "--service-cidr", "fd00:10:96::/112",
                "--webhook-url-override", override,
            ),
        )  # fmt: skip
        await self.wait(self.kubeconfig.exists, "the API server", component="apiserver")
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        self.server = str(cfg["clusters"][0]["cluster"]["server"])
        self.rest = await connect(str(self.kubeconfig))
        word = kubectl_word()
        self.kubectl_command = shlex.join(
            [word, "--kubeconfig", str(self.kubeconfig), "get", "svc,ipaddresspools", "-A"]
        )
        tls_note = "HTTPS, its CA in the kubeconfig" if self.server.startswith("https") else "HTTP"
        self.steps.say(
            f"embedded API server at {self.server} ({tls_note}); kubeconfig {self.kubeconfig}"
        )

    # 2
    async def webhook(self) -> None:
        from metallb_py.config.crds import render_all
        from webhooks import manifests as webhook_manifests

        assert self.rest is not None
        rest = self.rest
        await create_all(
            rest,
            [
                *render_all().values(),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
                webhook_manifests.validating_webhook_configuration(NS),
                webhook_manifests.service(NS),
            ],
        )
        self.demo.spawn(
            "webhook",
            self.argv(
                "webhook",
                "--kubeconfig", str(self.kubeconfig),
                "--port", str(self.webhook_port),
                "--bind-address", "127.0.0.1",
                "--cert-host", "127.0.0.1",
                "--metrics-port", "0",
            ),
        )  # fmt: skip

        async def ready() -> bool:
            vwc = await rest.get(
                VALIDATINGWEBHOOKCONFIGURATIONS.path(name="metallb-webhook-configuration")
            )
            if not all(h["clientConfig"].get("caBundle") for h in vwc["webhooks"]):
                return False
            crd = await rest.get(CUSTOMRESOURCEDEFINITIONS.path(name="bgppeers.metallb.io"))
            conversion = crd["spec"].get("conversion", {}).get("webhook", {})
            if not conversion.get("clientConfig", {}).get("caBundle"):
                return False
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.webhook_port)
            except OSError:
                return False
            writer.close()
            return True

        await self.wait(ready, "the webhook's certificate and caBundle", component="webhook")
        self.steps.say(
            f"webhook `metallb-py webhook` on 127.0.0.1:{self.webhook_port}: it made its own CA "
            "and put it in the ValidatingWebhookConfiguration and the BGPPeer conversion; every "
            "metallb.io object now goes through it"
        )

    # 3
    async def configure(self) -> None:
        assert self.rest is not None
        try:
            await create_all(self.rest, [*map(node_object, NODE_NAMES), *configuration()])
        except ApiError as exc:
            raise Failed(
                f"the webhook refused the demo's configuration: {exc}", "webhook"
            ) from None
        self.steps.say("configuration accepted by the webhook:")
        detail(
            f"IPAddressPool layer2  {', '.join(POOL_L2)}  + L2Advertisement layer2\n"
            f"IPAddressPool bgp     {', '.join(POOL_BGP)} (autoAssign: false)"
            f"  + BGPAdvertisement bgp\n"
            f"BGPPeer router        AS {SPEAKER_AS} -> {ROUTER_IP} AS {ROUTER_AS}"
        )

    # 4
    async def reject_bad_pool(self) -> None:
        assert self.rest is not None
        bad = metallb("IPAddressPool", "overlapping", {"addresses": BAD_POOL})
        try:
            await create(self.rest, bad)
        except ApiError as exc:
            message = exc.body.get("message") if isinstance(exc.body, dict) else str(exc)
            self.steps.say(f"a bad IPAddressPool ({BAD_POOL[0]}) is refused ({exc.status}):")
            detail(str(message))
            return
        raise Failed("the webhook let an overlapping IPAddressPool through", "webhook")

    # 5
    async def controller(self) -> None:
        port = self.ctx.args.controller_metrics_port
        self.demo.spawn(
            "controller",
            self.argv(
                "controller",
                "--kubeconfig", str(self.kubeconfig),
                "--metrics-port", str(port),
                "--no-leader-election",
            ),
        )  # fmt: skip
        metrics = f"; metrics at http://127.0.0.1:{port}/metrics" if port else ""
        self.steps.say(f"controller running{metrics}")

    # 6
    async def allocate(self) -> None:
        assert self.rest is not None
        rest = self.rest
        await create_all(rest, services())
        wanted = [s["metadata"]["name"] for s in services() if s["kind"] == "Service"]

        async def assigned() -> dict[str, list[str]]:
            ips = await service_ips(rest)
            return ips if all(ips.get(n) for n in wanted) else {}

        self.ips = await self.wait(assigned, "the Services' IPs", component="controller")
        self.steps.say("Services of type LoadBalancer got their IPs:")
        notes = {
            "web": "pool layer2",
            "web-bgp": "pool bgp, by the metallb.io/address-pool annotation",
            "dns-tcp": "shared with dns-udp (metallb.io/allow-shared-ip)",
            "dns-udp": "shared with dns-tcp",
            "dual": "dual-stack",
            "pinned": "asked for by metallb.io/loadBalancerIPs",
        }
        for name in sorted(wanted):
            detail(f"{name:<8} {', '.join(self.ips[name]):<38} {notes.get(name, '')}")
        detail(f"try it while the demo runs: {self.kubectl_command}")

    # 7
    async def network(self) -> None:
        assert self.rest is not None
        demo = self.demo
        self.hosts = await asyncio.to_thread(build_lan, demo, NODE_NAMES)
        # Membership finds the other speakers through the Node objects' addresses (no speaker
        # Pods here, as with speakers run by systemd).
        for node in NODE_NAMES:
            await self.rest.patch(
                NODES.path(name=node, subresource="status"),
                {
                    "status": {
                        "addresses": [{"type": "InternalIP", "address": self.hosts[node].ipv4}]
                    }
                },
            )
        for node in NODE_NAMES:
            for name in ("web", "web-bgp"):
                await asyncio.to_thread(add_service_ip, demo, node, self.ips[name][0])
        self.steps.say(f"network namespaces {demo.prefix}* (documentation addresses only):")
        for role, host in self.hosts.items():
            what = {
                "router": f"BIRD 2, AS {ROUTER_AS}",
                "client": "curl, arping; default route via the router",
            }.get(role, "speaker + kube-proxy stand-in (service IPs on lo, strictARP)")
            detail(f"{role:<7} {host.ipv4:<15} {host.ipv6:<18} {host.mac}  {what}")

    # 8
    async def speakers(self) -> None:
        demo = self.demo
        sock = str(demo.workdir / "api.sock")
        host, _, port = self.server.rpartition("//")[2].rstrip("/").rpartition(":")
        self.bridge = await serve_unix_to_tcp(sock, host.strip("[]"), int(port))
        cfg = yaml.safe_load(await asyncio.to_thread(self.kubeconfig.read_text))
        scheme = self.server.split("://", 1)[0]
        cfg["clusters"][0]["cluster"]["server"] = f"{scheme}://127.0.0.1:{NODE_PORT}"
        node_kubeconfig = demo.workdir / "node-kubeconfig"
        with os.fdopen(os.open(node_kubeconfig, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            yaml.safe_dump(cfg, f)
        key_dir = demo.workdir / "memberlist-secret"
        key_dir.mkdir(exist_ok=True)
        (key_dir / "secretkey").write_text(new_secret_value())

        self.bird = Bird(demo, {n: self.hosts[n].ipv4 for n in NODE_NAMES})
        self.bird.start()
        await self.wait(self.bird.ready, "BIRD's control socket", component="bird", blocking=True)
        for node in NODE_NAMES:
            demo.spawn(
                f"forwarder-{node}",
                [self.py, "-m", "metallb_py.demo_net", "forward", str(NODE_PORT), sock],
                ns=node,
            )
            demo.spawn(
                f"http-{node}", [self.py, "-m", "metallb_py.demo_net", "http", node], ns=node
            )
        for node in NODE_NAMES:
            await self.wait(
                partial(demo.logged, f"forwarder-{node}", "forwarder ready"),
                f"the API forwarder on {node}",
                component=f"forwarder-{node}",
            )
            demo.spawn(
                f"speaker-{node}",
                [
                    *self.argv("speaker"),
                    "--node-name", node,
                    "--kubeconfig", str(node_kubeconfig),
                    "--metrics-port", "7473",
                    "--ml-bind-addr", self.hosts[node].ipv4,
                    "--ml-secret-key-path", str(key_dir),
                    # The demo reads membership events from these logs, whatever
                    # METALLB_LOG_FORMAT says.
                    "--log-format", "json",
                ],
                ns=node,
            )  # fmt: skip
        for node in NODE_NAMES:
            await self.wait(
                partial(demo.logged, f"http-{node}", "ready"),
                f"the HTTP stand-in on {node}",
                component=f"http-{node}",
            )
        bird = self.bird
        await self.wait(
            lambda: bird.established() == set(NODE_NAMES),
            "BGP sessions from all three speakers to BIRD",
            blocking=True,
        )
        self.steps.say(
            f"a speaker on each of {', '.join(NODE_NAMES)} (membership on :7946, encrypted); "
            f"BGP sessions to BIRD: {', '.join(sorted(bird.established()))} Established"
        )

    # 9
    async def routes(self) -> None:
        assert self.bird is not None
        bird = self.bird
        ip = self.ips["web-bgp"][0]
        await self.wait(
            lambda: len(bird.next_hops(f"{ip}/32")) == len(NODE_NAMES),
            f"three paths to {ip} at BIRD",
            component="bird",
            blocking=True,
        )
        kernel = ["ip", "route", "show", f"{ip}/32"]
        await self.wait(
            lambda: self.demo.run(*kernel, ns="router").count("nexthop") == len(NODE_NAMES),
            f"the ECMP route to {ip} in the router's kernel",
            blocking=True,
        )
        self.steps.say(f"routes at the router: `{shlex.join(bird.birdc('show', 'route'))}`")
        detail(await asyncio.to_thread(bird.cmd, "show", "route"))
        detail(f"and its kernel, `ip netns exec {self.demo.ns('router')} {shlex.join(kernel)}`:")
        detail(await asyncio.to_thread(self.demo.run, *kernel, ns="router"))

    def fetch_command(self, ip: str) -> list[str]:
        url = f"http://{ip}/" if HTTP_PORT == 80 else f"http://{ip}:{HTTP_PORT}/"
        if shutil.which("curl"):
            return ["curl", "-s", "--max-time", "2", url]
        code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=2).read().decode())"
        return [self.py, "-c", code]

    def fetch(self, ip: str) -> str:
        """The stand-in's answer to the client, or '' when nothing answered."""
        out = self.demo.run(*self.fetch_command(ip), ns="client", check=False, timeout=5)
        return out.strip()

    def shown(self, argv: list[str]) -> str:
        return f"ip netns exec {self.demo.ns('client')} {shlex.join(argv)}"

    # 10
    async def http(self) -> None:
        l2_ip, bgp_ip = self.ips["web"][0], self.ips["web-bgp"][0]
        self.steps.say("the client fetches a page through each service IP:")
        answer = await self.wait(
            lambda: self.fetch(l2_ip), f"an answer from {l2_ip}", blocking=True
        )
        detail(f"$ {self.shown(self.fetch_command(l2_ip))}")
        detail(f"{answer}    <- layer 2: the node whose speaker answers ARP for {l2_ip}")
        await self.wait(lambda: self.fetch(bgp_ip), f"an answer from {bgp_ip}", blocking=True)
        answers = [await asyncio.to_thread(self.fetch, bgp_ip) for _ in range(BGP_REQUESTS)]
        detail(f"$ {self.shown(self.fetch_command(bgp_ip))}    ({BGP_REQUESTS} times)")
        counts = Counter(
            a.split()[2] if a.startswith("hello from ") else "no answer" for a in answers
        )
        spread = ", ".join(f"{node} x{n}" for node, n in sorted(counts.items()))
        detail(f"{answers[0]}    <- BGP: the router's ECMP route; answered by {spread}")
        if "no answer" in counts:
            raise Failed(f"{bgp_ip} did not answer every request", "bird")

    # 11
    async def failover(self) -> None:
        demo = self.demo
        ip = self.ips["web"][0]
        macs = {n: self.hosts[n].mac for n in NODE_NAMES}
        owner_mac = await self.wait(
            lambda: arping(demo, ip), f"an ARP answer for {ip}", blocking=True
        )
        owner = next((n for n, m in macs.items() if m == owner_mac), "")
        if not owner:
            raise Failed(f"{ip} is at {owner_mac}, which is no node's")
        # The client has a neighbour entry from the fetch above; the new owner's gratuitous ARP
        # must correct it.
        await asyncio.to_thread(
            demo.run, "ping", "-c", "1", "-W", "1", ip, ns="client", check=False
        )
        self.steps.say(
            f"layer-2 failover: arping {ip} -> {owner_mac} ({owner}); client neighbour entry "
            f"{neighbour_mac(demo, ip)}; now kill -9 {owner}'s speaker"
        )
        # Every speaker must see every other, so the kill below is a real failover.
        await self.wait(
            lambda: all(set(NODE_NAMES) <= members_seen(demo, f"speaker-{n}") for n in NODE_NAMES),
            "the speakers to see each other",
        )
        others = {macs[n]: n for n in NODE_NAMES if n != owner}
        started = time.monotonic()
        # SIGKILL: the speaker cannot say goodbye, and its Node object stays. Membership notices.
        demo.stop(f"speaker-{owner}", signal.SIGKILL)
        new_mac = await asyncio.to_thread(
            poll_fast,
            demo,
            lambda: (mac := neighbour_mac(demo, ip)) in others and mac,
            WAIT,
            f"another node to take over {ip}",
        )
        took = time.monotonic() - started
        new_owner = others[new_mac]
        answer = await asyncio.to_thread(arping, demo, ip)
        detail(
            f"{owner}'s speaker killed (SIGKILL; its Node untouched): {new_owner} noticed through "
            f"membership and took over; the client's neighbour table had {ip} at {new_mac} "
            f"({new_owner}) {took:.2f} s after the kill, from the takeover burst; arping now "
            f"answered by {answer}"
        )
        page = await self.wait(lambda: self.fetch(ip), f"an answer from {ip}", blocking=True)
        detail(f"$ {self.shown(self.fetch_command(ip))}")
        detail(page)
        bird = self.bird
        assert bird is not None
        bgp_prefix = f"{self.ips['web-bgp'][0]}/32"
        hops = await self.wait(
            lambda: (
                len(bird.next_hops(bgp_prefix)) == len(NODE_NAMES) - 1
                and bird.next_hops(bgp_prefix)
            ),
            f"BIRD to drop {owner}'s path",
            blocking=True,
        )
        detail(
            f"BGP: its session closed with it; BIRD now has {len(hops)} paths: {', '.join(hops)}"
        )

    def try_commands(self) -> list[str]:
        """Commands that work while the demo runs."""
        out = [self.kubectl_command]
        if self.bird is not None:
            out.append(shlex.join(self.bird.birdc("show", "route")))
            for name in ("web", "web-bgp"):
                if self.ips.get(name):
                    out.append(self.shown(self.fetch_command(self.ips[name][0])))
        return out

    async def show_kubectl(self) -> None:
        """--once: run the command the demo printed, as printed, so that it is known to work."""
        argv = shlex.split(self.kubectl_command)
        if shutil.which(argv[0]) is None:
            self.steps.say(f"kubectl not found; with it installed, try: {self.kubectl_command}")
            return
        out = await asyncio.to_thread(self.demo.run, *argv, check=False)
        self.steps.say(f"$ {self.kubectl_command}")
        detail(out or "(kubectl printed nothing)")


def arping(demo: Demo, ip: str) -> str | None:
    """The MAC that answers ARP for `ip` on the demo LAN, seen from the client."""
    out = demo.run("arping", "-c", "1", "-w", "2", "-I", "eth0", ip, ns="client", check=False)
    for word in out.replace("[", " ").replace("]", " ").split():
        if word.count(":") == 5:
            return word.lower()
    return None


def neighbour_mac(demo: Demo, ip: str) -> str | None:
    out = demo.ip("neigh", "show", ip, "dev", "eth0", ns="client", check=False).split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


def members_seen(demo: Demo, name: str) -> set[str]:
    import json

    seen = set()
    for line in demo.log(name).splitlines():
        if '"memberJoined"' in line:
            with contextlib.suppress(ValueError):
                seen.add(str(json.loads(line).get("member")))
    return seen


async def run(ctx: RunContext) -> int:
    if ctx.args.status:
        print("\n".join(status_lines()))
        return 0
    if os.geteuid() == 0:
        sweep_stale()
    demo = Demo(Path(tempfile.mkdtemp(prefix="metallb-py-demo-")))
    print(
        f"metallb-py demo (work directory {demo.workdir}); Ctrl-C stops it and removes everything"
    )
    walk = Walkthrough(ctx, demo)
    task = asyncio.create_task(walk.run())
    stopped = asyncio.create_task(ctx.stop.wait())
    code = 1
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            demo.halt.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Halted, Exception):
                await task
            print("metallb-py demo: interrupted; stopping everything", flush=True)
            code = 130
        else:
            code = task.result()
            if ctx.args.once:
                await walk.show_kubectl()
                print("done (--once): stopping everything and removing the namespaces", flush=True)
            else:
                print("running. Try:", flush=True)
                detail("\n".join(walk.try_commands()))
                print("Ctrl-C stops it and removes everything", flush=True)
                await ctx.stop.wait()
                print("stopping everything", flush=True)
    except Halted:
        code = 130
    except Failed as exc:
        print(f"metallb-py demo: {exc}", file=sys.stderr)
        if exc.log:
            print(f"--- last lines of {exc.log}'s log:", file=sys.stderr)
            print(demo.log(exc.log)[-3000:], file=sys.stderr)
        code = 1
    except (TimeoutError, RuntimeError, OSError) as exc:
        print(f"metallb-py demo: {exc}", file=sys.stderr)
        code = 1
    except ApiError as exc:
        print(f"metallb-py demo: the API server refused a demo object: {exc}", file=sys.stderr)
        code = 1
    finally:
        stopped.cancel()
        # Processes first, while the API bridge still serves their last requests.
        await asyncio.to_thread(demo.close)
        await walk.close()
        if code == 1:
            print(f"metallb-py demo: component logs are kept in {demo.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(demo.workdir, ignore_errors=True)
    return code
