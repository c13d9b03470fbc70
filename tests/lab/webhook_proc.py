"""Run `metallb-py webhook` against a test API server, and talk to it as the API server does
(fresh TLS connection per request, trusting only the caBundle it injected)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab.apiserver import ApiServer, running_apiserver
from tests.lab.netns import wait_for

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE_YAML = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: metallb-system\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Webhook:
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        return self.popen.returncode


def start_webhook(api: ApiServer, port: int, *extra: str) -> Webhook:
    log_path = api.workdir / f"webhook-{port}.log"
    argv = [
        sys.executable, "-m", "metallb_py", "webhook",
        "--kubeconfig", str(api.kubeconfig),
        "--port", str(port),
        "--bind-address", "127.0.0.1",
        "--cert-host", "127.0.0.1",
        "--metrics-port", "0",
        *extra,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(ROOT),
        )  # fmt: skip
    return Webhook(port, popen, log_path)


def get_json(api: ApiServer, *args: str) -> dict[str, Any]:
    out = api.kubectl("get", *args, "-o", "json")
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def ca_bundle(api: ApiServer) -> bytes:
    vwc = get_json(api, "validatingwebhookconfiguration", "metallb-webhook-configuration")
    bundles = {h["clientConfig"].get("caBundle", "") for h in vwc["webhooks"]}
    assert len(bundles) == 1
    return base64.b64decode(bundles.pop())


def wait_ready(api: ApiServer, hook: Webhook, timeout: float = 60) -> bytes:
    """Until the CA is injected everywhere and the port answers; returns the CA bundle."""

    def injected() -> bytes | None:
        if hook.popen.poll() is not None:
            raise AssertionError(f"webhook exited:\n{hook.output()}")
        bundle = ca_bundle(api)
        crd = get_json(api, "crd", "bgppeers.metallb.io")
        conv = crd["spec"]["conversion"]["webhook"]["clientConfig"].get("caBundle", "")
        if not bundle or base64.b64decode(conv) != bundle:
            return None
        with socket.create_connection(("127.0.0.1", hook.port), timeout=1):
            return bundle

    try:
        return wait_for(injected, timeout, interval=0.2, what="webhook ready")  # type: ignore[return-value]
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{hook.output()}") from None


@contextlib.contextmanager
def metallb_cluster(tmp: Path, *webhook_flags: str) -> Iterator[tuple[ApiServer, Webhook, bytes]]:
    """An API server with the CRDs and webhook manifests applied and `metallb-py webhook` serving
    them (the API server reaches the webhook Service through a URL override)."""
    port = free_port()
    override = f"metallb-system/metallb-webhook-service=https://127.0.0.1:{port}"
    with running_apiserver(
        workdir=tmp / "apiserver", args=["--webhook-url-override", override]
    ) as api:
        api.kubectl("apply", "-f", "-", input=NAMESPACE_YAML)
        api.kubectl("apply", "-k", str(ROOT / "manifests" / "crds"))
        api.kubectl("apply", "-f", str(ROOT / "manifests" / "webhook"))
        hook = start_webhook(api, port, *webhook_flags)
        try:
            bundle = wait_ready(api, hook)
            yield api, hook, bundle
        finally:
            hook.stop()


async def post_review(
    port: int, path: str, review: dict[str, Any], cadata: bytes
) -> tuple[dict[str, Any], bytes]:
    """POST over a new TLS connection that trusts only `cadata` for the service name; returns
    (response JSON, the serving certificate in DER)."""
    ctx = ssl.create_default_context(cadata=cadata.decode())
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="metallb-webhook-service.metallb-system.svc"
    )
    try:
        sslobj = writer.get_extra_info("ssl_object")
        cert: bytes = sslobj.getpeercert(binary_form=True)
        body = json.dumps(review).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    assert status == b"200", head
    data: dict[str, Any] = json.loads(payload)
    return data, cert
