"""Helpers for controller end-to-end tests and benchmarks: install the CRDs into an embedded
API server, run `metallb-py controller` processes against it, and create pools and Services
through the real kubernetes_asyncio client."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from metallb_py.kube.client import connect
from metallb_py.kube.rest import IPADDRESSPOOLS, NAMESPACES, SERVICES, ApiError, Rest
from tests.lab.apiserver import ApiServer, wait_for_async

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
NS = "metallb-system"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def client(server: ApiServer) -> AsyncIterator[Rest]:
    rest = await connect(str(server.kubeconfig))
    try:
        yield rest
    finally:
        await rest.close()


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    what: str,
    interval: float = 0.1,
) -> Any:
    """`wait_for_async` with the argument order these tests use."""
    return await wait_for_async(predicate, timeout, interval, what)


async def install_crds(rest: Rest, namespace: str = NS) -> None:
    """The metallb.io CRDs from manifests/, and the MetalLB namespace."""
    for path in sorted((ROOT / "manifests" / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            with contextlib.suppress(ApiError):
                await rest.create(CRD_PATH, doc)
    with contextlib.suppress(ApiError):
        await rest.create(
            NAMESPACES.path(),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        )

    async def served() -> bool:
        await rest.get(IPADDRESSPOOLS.path(namespace))
        return True

    await wait_for(served, 30, "the IPAddressPool CRD to be served")


def pool_body(name: str, addresses: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": addresses, **spec},
    }


async def create_pool(rest: Rest, name: str, addresses: list[str], **spec: Any) -> dict[str, Any]:
    return await rest.create(IPADDRESSPOOLS.path(NS), pool_body(name, addresses, **spec))


def service_body(
    name: str,
    namespace: str = "default",
    *,
    annotations: dict[str, str] | None = None,
    port: int = 80,
    type_: str = "LoadBalancer",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "type": type_,
            "selector": {"app": name},
            "ports": [{"port": port, "protocol": "TCP"}],
            **spec,
        },
    }


async def create_service(rest: Rest, name: str, namespace: str = "default", **kw: Any) -> Any:
    return await rest.create(SERVICES.path(namespace), service_body(name, namespace, **kw))


def ingress_ips(svc: dict[str, Any]) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [e["ip"] for e in ingress if e.get("ip")]


async def service_ips(rest: Rest, namespace: str = "default") -> dict[str, list[str]]:
    """name -> ingress IPs of every Service in the namespace (paged list)."""
    out: dict[str, list[str]] = {}
    cont = None
    while True:
        query: dict[str, Any] = {"limit": 5000}
        if cont:
            query["continue"] = cont
        page = await rest.get(SERVICES.path(namespace), query)
        for item in page.get("items") or []:
            out[item["metadata"]["name"]] = ingress_ips(item)
        cont = (page.get("metadata") or {}).get("continue")
        if not cont:
            return out


async def events_for(rest: Rest, name: str, namespace: str = "default") -> list[dict[str, Any]]:
    page = await rest.get(
        f"/api/v1/namespaces/{namespace}/events",
        {"fieldSelector": f"involvedObject.name={name}"},
    )
    return list(page.get("items") or [])


@dataclass
class Controller:
    """One `metallb-py controller` process."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10) -> int:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.popen.returncode)

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs() if e.get("event") == name]

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return str(r.read().decode())


def start_controller(server: ApiServer, workdir: Path, *args: str, name: str = "ctl") -> Controller:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / f"{name}-{int(time.time() * 1000)}.log"
    argv = [
        sys.executable,
        "-m",
        "metallb_py",
        "controller",
        "--kubeconfig",
        str(server.kubeconfig),
        "--metrics-port",
        str(port),
        "--metrics-bind-address",
        "127.0.0.1",
        *args,
    ]
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(ROOT),
        )
    return Controller(popen, log_path, port)
