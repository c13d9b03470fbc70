"""The API client reads the proxy environment once, when it connects, not on every request:
aiohttp's per-request proxy and ~/.netrc look-ups (each in a worker thread) cost a third of the
controller's CPU at a few hundred writes/s. HTTPS_PROXY and NO_PROXY keep working."""

from __future__ import annotations

from pathlib import Path

import aiohttp.client
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from metallb_py.kube.client import connect

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "SERVER"}}]
users: [{name: u, user: {token: t0k3n}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.replace("SERVER", server))
    return str(path)


async def test_no_environment_look_up_per_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    looked_up: list[str] = []
    real = aiohttp.client.get_env_proxy_for_url

    def counting(url: object) -> object:
        looked_up.append(str(url))
        return real(url)  # type: ignore[arg-type]

    monkeypatch.setattr(aiohttp.client, "get_env_proxy_for_url", counting)

    async def ok(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer t0k3n"
        return web.json_response({"kind": "Namespace", "metadata": {"name": "x"}})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/x", ok)
    server = TestServer(app)
    await server.start_server()
    rest = await connect(kubeconfig(tmp_path, str(server.make_url("")).rstrip("/")))
    try:
        for _ in range(5):
            assert (await rest.get("/api/v1/namespaces/x"))["metadata"]["name"] == "x"
    finally:
        await rest.close()
        await server.close()
    assert looked_up == []


async def test_https_proxy_is_still_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    rest = await connect(kubeconfig(tmp_path, "https://api.example:6443"))
    try:
        assert rest.api.rest_client.proxy == "http://user:pw@proxy.example:3128"
    finally:
        await rest.close()
    monkeypatch.setenv("NO_PROXY", "api.example")
    rest = await connect(kubeconfig(tmp_path, "https://api.example:6443"))
    try:
        assert not rest.api.rest_client.proxy
    finally:
        await rest.close()
