"""Validating admission webhooks called over HTTPS (AdmissionReview v1) and CRD conversion
webhooks (ConversionReview v1), with a real HTTPS webhook server in the test."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from metallb_py.apiserver import tls
from tests.lab.apiserver import ApiServer, apiserver_fixture

apiserver = apiserver_fixture()


class HookServer:
    """An HTTPS webhook: denies ConfigMaps with a `bad` key, warns on `warn`, converts widgets."""

    def __init__(self) -> None:
        self.ca = tls.make_ca()
        self.reviews: list[dict[str, Any]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.cert).decode()

    async def validate(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.reviews.append(review)
        req = review["request"]
        obj = req.get("object") or {}
        response: dict[str, Any] = {"uid": req["uid"], "allowed": True}
        data = obj.get("data") or {}
        if "bad" in data:
            response = {
                "uid": req["uid"],
                "allowed": False,
                "status": {"code": 403, "message": 'key "bad" is not allowed'},
            }
        if "warn" in data:
            response["warnings"] = ["key warn is deprecated"]
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    async def convert(self, request: web.Request) -> web.Response:
        review = await request.json()
        req = review["request"]
        out = []
        for o in req["objects"]:
            o = dict(o)
            spec = dict(o.get("spec") or {})
            if req["desiredAPIVersion"] == "example.com/v2" and "size" in spec:
                spec["dimensions"] = {"size": spec.pop("size")}
            elif req["desiredAPIVersion"] == "example.com/v1" and "dimensions" in spec:
                spec["size"] = spec.pop("dimensions")["size"]
            o["spec"] = spec
            o["apiVersion"] = req["desiredAPIVersion"]
            out.append(o)
        return web.json_response(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "ConversionReview",
                "response": {
                    "uid": req["uid"],
                    "convertedObjects": out,
                    "result": {"status": "Success"},
                },
            }
        )

    async def start(self) -> None:
        pem = tls.serving_cert(self.ca, ["hook.default.svc", "127.0.0.1"])
        d = Path(tempfile.mkdtemp(prefix="hook-"))
        (d / "tls.crt").write_bytes(pem.cert)
        (d / "tls.key").write_bytes(pem.key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
        app = web.Application()
        app.router.add_post("/validate", self.validate)
        app.router.add_post("/convert", self.convert)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, ssl_context=ctx)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    server = HookServer()
    await server.start()
    yield server
    await server.stop()


def vwc(name: str, client_config: dict[str, Any], **extra: Any) -> str:
    hook = {
        "name": name,
        "clientConfig": client_config,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["configmaps"],
            }
        ],
        **extra,
    }
    return json.dumps(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [hook],
        }
    )


def cm(name: str, **data: str) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    )


async def test_webhook_denial_shown_by_kubectl(apiserver: ApiServer, hook: HookServer) -> None:
    url = f"https://127.0.0.1:{hook.port}/validate"
    await apiserver.akubectl(
        "apply", "-f", "-", input=vwc("cm.example.com", {"url": url, "caBundle": hook.ca_bundle})
    )
    bad = await apiserver.akubectl("create", "-f", "-", input=cm("c1", bad="1"), check=False)
    assert bad.returncode != 0
    assert 'admission webhook "cm.example.com" denied the request: key "bad" is not allowed' in (
        bad.stderr
    ), bad.stderr
    warned = await apiserver.akubectl("create", "-f", "-", input=cm("c2", warn="1"))
    assert "key warn is deprecated" in warned.stderr
    review = hook.reviews[-1]
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    req = review["request"]
    assert req["operation"] == "CREATE" and req["namespace"] == "default"
    assert req["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert req["object"]["metadata"]["name"] == "c2"


async def test_webhook_by_service_endpoints_and_failure_policy(
    apiserver: ApiServer, hook: HookServer
) -> None:
    # The webhook's Service resolves to its ready EndpointSlice; the certificate is checked for
    # hook.default.svc, as the real server does.
    await apiserver.akubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "hook"},
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": hook.port}]},
            }
        ),
    )
    await apiserver.akubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "hook-1", "labels": {"kubernetes.io/service-name": "hook"}},
                "addressType": "IPv4",
                "ports": [{"name": "https", "port": hook.port}],
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
            }
        ),
    )
    service = {
        "service": {"namespace": "default", "name": "hook", "path": "/validate"},
        "caBundle": hook.ca_bundle,
    }
    await apiserver.akubectl(
        "apply",
        "-f",
        "-",
        input=vwc("svc.example.com", service, objectSelector={"matchLabels": {"check": "yes"}}),
    )
    labelled = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c3", "labels": {"check": "yes"}},
            "data": {"bad": "1"},
        }
    )
    bad = await apiserver.akubectl("create", "-f", "-", input=labelled, check=False)
    assert "denied the request" in bad.stderr, bad.stderr
    # objectSelector: unlabelled objects are not sent to the webhook
    await apiserver.akubectl("create", "-f", "-", input=cm("c4", bad="1"))
    # a webhook that cannot be reached: Fail refuses, Ignore lets the request through
    dead = {"url": "https://127.0.0.1:1/validate", "caBundle": hook.ca_bundle}
    await apiserver.akubectl(
        "apply",
        "-f",
        "-",
        input=vwc("dead.example.com", dead, failurePolicy="Ignore", timeoutSeconds=2),
    )
    await apiserver.akubectl("create", "-f", "-", input=cm("c5"))
    await apiserver.akubectl(
        "apply",
        "-f",
        "-",
        input=vwc("dead.example.com", dead, failurePolicy="Fail", timeoutSeconds=2),
    )
    refused = await apiserver.akubectl("create", "-f", "-", input=cm("c6"), check=False)
    assert refused.returncode != 0
    assert 'failed calling webhook "dead.example.com"' in refused.stderr, refused.stderr
    # a certificate the caBundle does not vouch for is refused too
    other = base64.b64encode(tls.make_ca().cert).decode()
    await apiserver.akubectl(
        "apply",
        "-f",
        "-",
        input=vwc(
            "dead.example.com",
            {"url": f"https://127.0.0.1:{hook.port}/validate", "caBundle": other},
        ),
    )
    refused = await apiserver.akubectl("create", "-f", "-", input=cm("c7"), check=False)
    assert refused.returncode != 0 and "certificate" in refused.stderr.lower(), refused.stderr


CONVERTED_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig: {url: "URL", caBundle: "CA"}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
  - name: v2
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              dimensions: {type: object, properties: {size: {type: integer}}}
"""


async def test_conversion_webhook(apiserver: ApiServer, hook: HookServer) -> None:
    crd = CONVERTED_CRD.replace("URL", f"https://127.0.0.1:{hook.port}/convert").replace(
        "CA", hook.ca_bundle
    )
    await apiserver.akubectl("apply", "-f", "-", input=crd)
    await apiserver.akubectl("wait", "--for", "condition=established", "crd/widgets.example.com")
    await apiserver.akubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "example.com/v2",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"dimensions": {"size": 3}},
            }
        ),
    )
    v1 = json.loads(
        (await apiserver.akubectl("get", "widgets.v1.example.com", "w", "-o", "json")).stdout
    )
    assert v1["apiVersion"] == "example.com/v1" and v1["spec"] == {"size": 3}
    v2 = json.loads(
        (await apiserver.akubectl("get", "widgets.v2.example.com", "w", "-o", "json")).stdout
    )
    assert v2["apiVersion"] == "example.com/v2" and v2["spec"] == {"dimensions": {"size": 3}}


async def test_match_policy_equivalent_converts_for_the_webhook(
    apiserver: ApiServer, hook: HookServer
) -> None:
    crd = CONVERTED_CRD.replace("URL", f"https://127.0.0.1:{hook.port}/convert").replace(
        "CA", hook.ca_bundle
    )
    await apiserver.akubectl("apply", "-f", "-", input=crd)
    await apiserver.akubectl("wait", "--for", "condition=established", "crd/widgets.example.com")
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "widgets.example.com"},
        "webhooks": [
            {
                "name": "widgets.example.com",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{hook.port}/validate",
                    "caBundle": hook.ca_bundle,
                },
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "matchPolicy": "Equivalent",
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": ["example.com"],
                        "apiVersions": ["v2"],
                        "resources": ["widgets"],
                    }
                ],
            }
        ],
    }
    await apiserver.akubectl("apply", "-f", "-", input=json.dumps(config))
    await apiserver.akubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"size": 4},
            }
        ),
    )
    req = hook.reviews[-1]["request"]
    assert req["kind"] == {"group": "example.com", "version": "v2", "kind": "Widget"}
    assert req["requestKind"]["version"] == "v1"
    assert req["object"]["apiVersion"] == "example.com/v2"
    assert req["object"]["spec"] == {"dimensions": {"size": 4}}
