"""A non-loopback listener: HTTPS with the server's own CA, authentication required, RBAC from the
stored Role/RoleBinding objects. Runs inside a lab namespace on 198.51.100.10."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.apiserver import KUBECTL, ApiServer, running_apiserver
from tests.lab.netns import Lab

PROBE = r"""
import json, ssl, sys, urllib.request, urllib.error
url, ca, token = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
req = urllib.request.Request(url + "/api/v1/namespaces/default/configmaps")
if token:
    req.add_header("Authorization", "Bearer " + token)
try:
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code, json.loads(e.read())["reason"])
"""


def kubectl_as(
    s: ApiServer, lab: Lab, kubeconfig: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", lab.ns("api"), KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=input,
        check=False,
        env={**s.env(), "KUBECONFIG": str(kubeconfig)},
    )


@pytest.mark.lab
def test_non_loopback_requires_tls_auth_and_rbac(lab: Lab, tmp_path: Path) -> None:
    lab.add_ns("api")
    lab.add_ns("peer")
    lab.veth("api", "eth0", "peer", "eth0")
    lab.addr("api", "eth0", "198.51.100.10/24")
    lab.addr("peer", "eth0", "198.51.100.20/24")
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('static-secret,alice,u-1,"ops"\n')
    with running_apiserver(
        lab=lab,
        role="api",
        listen="198.51.100.10:0",
        workdir=tmp_path / "srv",
        args=["--token-file", str(tokens)],
    ) as s:
        assert s.url.startswith("https://198.51.100.10:")
        cluster = s.config["clusters"][0]["cluster"]
        ca = tmp_path / "ca.crt"
        import base64

        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        # the admin kubeconfig (client certificate) works
        out = s.kubectl("get", "ns", "-o", "name")
        assert "namespace/default" in out.stdout
        # no credentials: 401 from another host on the LAN
        probe = lab.exec("peer", [sys.executable, "-c", PROBE, s.url, str(ca), ""])
        assert probe.split() == ["401", "Unauthorized"]
        assert (
            lab.exec("peer", [sys.executable, "-c", PROBE, s.url, str(ca), "wrong"]).split()[0]
            == "401"
        )
        # a static token authenticates, but alice has no role yet: 403
        assert lab.exec(
            "peer", [sys.executable, "-c", PROBE, s.url, str(ca), "static-secret"]
        ).split() == ["403", "Forbidden"]
        # a ServiceAccount with a Role that lets it read ConfigMaps, and nothing else
        rbac = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "speaker"}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-cm"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "speaker-read-cm"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-cm",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "speaker", "namespace": "default"}],
            },
        ]
        s.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
        s.kubectl(
            "create",
            "-f",
            "-",
            input=json.dumps(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
            ),
        )
        request = json.dumps(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 600},
            }
        )
        answer = s.kubectl(
            "create",
            "--raw",
            "/api/v1/namespaces/default/serviceaccounts/speaker/token",
            "-f",
            "-",
            input=request,
        ).stdout
        token = json.loads(answer)["status"]["token"]
        assert token
        sa_config = tmp_path / "sa.kubeconfig"
        cfg = json.loads(json.dumps(s.config))
        cfg["users"][0]["user"] = {"token": token}
        sa_config.write_text(yaml.safe_dump(cfg))
        ok = kubectl_as(s, lab, sa_config, "get", "cm", "settings", "-o", "name")
        assert ok.returncode == 0 and ok.stdout.strip() == "configmap/settings", ok.stderr
        denied = kubectl_as(s, lab, sa_config, "delete", "cm", "settings")
        assert denied.returncode != 0
        assert (
            'User "system:serviceaccount:default:speaker" cannot delete resource "configmaps"'
        ) in denied.stderr, denied.stderr
        other_ns = kubectl_as(s, lab, sa_config, "get", "cm", "-n", "kube-system")
        assert other_ns.returncode != 0 and "Forbidden" in other_ns.stderr
        # deleting the ServiceAccount revokes its tokens
        s.kubectl("delete", "sa", "speaker")
        revoked = kubectl_as(s, lab, sa_config, "get", "cm", "settings")
        assert revoked.returncode != 0 and "Unauthorized" in revoked.stderr


def test_anonymous_refused_off_loopback(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "metallb_py",
            "apiserver",
            "--listen",
            "198.51.100.10:6443",
            "--anonymous",
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "--anonymous" in out.stderr
    assert out.stderr.count("\n") == 1


def test_insecure_http_without_anonymous_needs_a_token(tmp_path: Path) -> None:
    """Why HTTPS is the default: over plain HTTP kubectl withholds the kubeconfig's token."""
    with running_apiserver(workdir=tmp_path / "srv", args=["--insecure-http"]) as s:
        assert s.url.startswith("http://127.0.0.1:") and s.ca_pem is None
        out = s.kubectl("get", "ns", check=False)
        assert out.returncode != 0 and "provide credentials" in out.stderr
        # kubernetes_asyncio sends the kubeconfig's admin token even over HTTP
        import asyncio

        from kubernetes_asyncio import client as k8s

        async def read() -> list[str]:
            async with s.client() as api:
                return [n.metadata.name for n in (await k8s.CoreV1Api(api).list_namespace()).items]

        assert "default" in asyncio.run(read())


def test_service_account_token_secret(tmp_path: Path) -> None:
    """The legacy token controller fills a service-account-token Secret; the token
    authenticates as the ServiceAccount (403 from RBAC, not 401) until the SA is deleted."""
    import asyncio
    import base64

    import aiohttp
    from kubernetes_asyncio import client as k8s

    with running_apiserver(workdir=tmp_path / "srv") as s:

        async def scenario() -> list[int]:
            async with s.client() as api:
                core: Any = k8s.CoreV1Api(api)
                await core.create_namespaced_service_account(
                    "default", {"metadata": {"name": "ctl"}}
                )
                secret = await core.create_namespaced_secret(
                    "default",
                    {
                        "metadata": {
                            "name": "ctl-token",
                            "annotations": {"kubernetes.io/service-account.name": "ctl"},
                        },
                        "type": "kubernetes.io/service-account-token",
                    },
                )
                token = base64.b64decode(secret.data["token"]).decode()
                codes = []
                async with aiohttp.ClientSession() as session:
                    for attempt in range(2):
                        async with session.get(
                            s.url + "/api/v1/namespaces",
                            headers={"Authorization": f"Bearer {token}"},
                            ssl=s.ssl_context(),
                        ) as resp:
                            codes.append(resp.status)
                        if attempt == 0:
                            await core.delete_namespaced_service_account("ctl", "default")
                return codes

        assert asyncio.run(scenario()) == [403, 401]
