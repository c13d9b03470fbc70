"""A small cluster in the lab for speaker end-to-end tests and benchmarks.

The embedded API server runs in the router namespace on the LAN address (HTTPS, client
certificate), so the speakers in the node namespaces reach it like a real cluster's API; the test
drives it with the real kubectl from that namespace. `metallb-py controller` runs next to it and one
`metallb-py speaker` per node namespace.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.lab.apiserver import ApiServer, start_apiserver
from tests.lab.netns import Lab, LabProcess, wait_for
from tests.lab.topology import LAN4, LAN6, SWITCH, Host, Lan

ROOT = Path(__file__).resolve().parents[2]
NS = "metallb-system"
SPEAKER_AS = 64512
ROUTER_AS = 64500


def attach_host(lan: Lan, role: str, index: int) -> Host:
    """Another host on the LAN switch (e.g. a second router), at .index / ::index."""
    lab = lan.lab
    lab.add_ns(role)
    lab.veth(role, "eth0", SWITCH, f"p-{role}")
    lab.exec(SWITCH, ["ip", "link", "set", f"p-{role}", "master", "br0"])
    v4 = str(LAN4.network_address + index)
    v6 = str(LAN6.network_address + index)
    lab.addr(role, "eth0", f"{v4}/{LAN4.prefixlen}")
    lab.addr(role, "eth0", f"{v6}/{LAN6.prefixlen}")
    return Host(role, lab.ns(role), v4, v6, lab.mac(role, "eth0"))


@dataclass
class Cluster:
    lan: Lan
    api: ApiServer
    workdir: Path
    controller: LabProcess | None = None
    speakers: dict[str, LabProcess] = field(default_factory=dict)
    speaker_args: dict[str, list[str]] = field(default_factory=dict)

    @property
    def lab(self) -> Lab:
        return self.lan.lab

    # -- kubectl -------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.api.kubectl(*args, input=input, check=check).stdout

    def apply(self, *objs: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(list(objs)))

    def create(self, *objs: dict[str, Any]) -> None:
        self.kubectl("create", "-f", "-", input=yaml.safe_dump_all(list(objs)))

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        self.kubectl("delete", kind, name, "-n", namespace, "--wait=false")

    def get(self, kind: str, name: str = "", namespace: str | None = NS, selector: str = "") -> Any:
        args = ["get", kind]
        if name:
            args.append(name)
        args += ["-n", namespace] if namespace else []
        if selector:
            args += ["-l", selector]
        out = self.api.kubectl(*args, "-o", "json", check=False)
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)

    def items(self, kind: str, namespace: str | None = NS, selector: str = "") -> list[Any]:
        got = self.get(kind, namespace=namespace, selector=selector)
        return list((got or {}).get("items") or [])

    def service_ips(self, name: str, namespace: str = "default") -> list[str]:
        svc = self.get("service", name, namespace) or {}
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return [e["ip"] for e in ingress if e.get("ip")]

    def wait_ips(self, name: str, timeout: float = 30) -> list[str]:
        wait_for(lambda: self.service_ips(name), timeout, what=f"IPs of service {name}")
        return self.service_ips(name)

    def events(self, reason: str, namespace: str = "default") -> list[Any]:
        return [e for e in self.items("events", namespace) if e.get("reason") == reason]

    # -- processes -------------------------------------------------------------------------------
    def start_controller(self) -> None:
        self.controller = self.lab.spawn(
            "router",
            [
                sys.executable,
                "-m",
                "metallb_py",
                "controller",
                "--kubeconfig",
                str(self.api.kubeconfig),
                "--metrics-port",
                "0",
                "--no-leader-election",
            ],
            name="controller",
        )

    def start_speaker(self, node: str, *extra: str) -> LabProcess:
        args = list(extra) or self.speaker_args.get(node, [])
        self.speaker_args[node] = args
        proc = self.lab.spawn(
            node,
            [
                sys.executable,
                "-m",
                "metallb_py",
                "speaker",
                "--node-name",
                node,
                "--kubeconfig",
                str(self.api.kubeconfig),
                "--metrics-port",
                "7473",
                *args,
            ],
            name="speaker",
        )
        self.speakers[node] = proc
        return proc

    def speaker_log(self, node: str) -> list[dict[str, Any]]:
        out = []
        for line in self.speakers[node].output().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def metrics(self, node: str) -> str:
        host = next(h for h in self.lan.nodes if h.role == node)
        code = (
            "import urllib.request,sys;"
            f"sys.stdout.write(urllib.request.urlopen('http://{host.ipv4}:7473/metrics',"
            "timeout=5).read().decode())"
        )
        return self.lab.exec(node, [sys.executable, "-c", code])

    def ready(self, node: str) -> bool:
        host = next(h for h in self.lan.nodes if h.role == node)
        code = (
            "import urllib.request;"
            f"urllib.request.urlopen('http://{host.ipv4}:7473/readyz', timeout=2)"
        )
        return self.lab.run(node, [sys.executable, "-c", code]).returncode == 0

    def wait_ready(self, *nodes: str, timeout: float = 60) -> None:
        for node in nodes or tuple(self.speakers):
            proc = self.speakers[node]

            def ok(node: str = node, proc: LabProcess = proc) -> bool:
                if not proc.alive():
                    raise AssertionError(f"speaker {node} exited:\n{proc.output()[-3000:]}")
                return self.ready(node)

            wait_for(ok, timeout, what=f"speaker {node} ready")


def node_object(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
    }


def service(
    name: str,
    *,
    local: bool = False,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    families: list[str] | None = None,
    port: int = 80,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": {"app": name},
        "ports": [{"port": port, "protocol": "TCP"}],
        "externalTrafficPolicy": "Local" if local else "Cluster",
    }
    if families:
        spec["ipFamilies"] = families
        spec["ipFamilyPolicy"] = "SingleStack" if len(families) == 1 else "RequireDualStack"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": annotations or {},
            "labels": labels or {},
        },
        "spec": spec,
    }


def endpoint_slice(svc: str, nodes: list[str], name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{svc}-eps",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [f"10.244.{i}.10"], "nodeName": n, "conditions": {"ready": True}}
            for i, n in enumerate(nodes)
        ],
    }


def metallb(kind: str, name: str, spec: dict[str, Any], version: str = "v1beta1") -> dict[str, Any]:
    return {
        "apiVersion": f"metallb.io/{version}",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


@contextmanager
def cluster(
    lan: Lan,
    *,
    nodes: dict[str, dict[str, str]] | None = None,
    apiserver_args: list[str] | None = None,
) -> Iterator[Cluster]:
    """API server (router namespace), CRDs, the MetalLB namespace and Node objects."""
    workdir = lan.lab.workdir / "cluster"
    workdir.mkdir(exist_ok=True)
    api = start_apiserver(
        lab=lan.lab,
        role="router",
        listen=f"{lan.router.ipv4}:0",
        workdir=workdir / "apiserver",
        args=apiserver_args or [],
    )
    c = Cluster(lan, api, workdir)
    try:
        c.kubectl("apply", "-k", str(ROOT / "manifests" / "crds"))
        c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        wait_for(
            lambda: c.api.kubectl("get", "ipaddresspools", "-n", NS, check=False).returncode == 0,
            30,
            what="metallb.io CRDs served",
        )
        node_labels = nodes if nodes is not None else {h.role: {} for h in lan.nodes}
        c.create(*(node_object(n, labels) for n, labels in node_labels.items()))
        yield c
    finally:
        for proc in list(c.speakers.values()) + ([c.controller] if c.controller else []):
            proc.stop(3)
        api.stop()
        shutil.rmtree(workdir / "apiserver" / "kubecache", ignore_errors=True)


def poll(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    return wait_for(predicate, timeout, what=what)


def now() -> float:
    return time.monotonic()


def http_get(url: str) -> str:  # pragma: no cover - used from inside namespaces via -c
    return urllib.request.urlopen(url, timeout=5).read().decode()
