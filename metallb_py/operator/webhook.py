"""The operator's validating webhook for `MetalLB` resources.

The rules live in the configuration parser (`metallb_py.config.parser`, rule metallb-resource,
plus the CRD schema); this module only turns their problems into an AdmissionReview answer with
MetalLB's messages. TLS comes from the same pieces `metallb-py webhook` uses: a self-generated,
rotated certificate in a Secret with the VWC caBundle kept current (CertManager), or files.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from metallb_py.config.parser import parse
from metallb_py.kube.rest import Rest
from metallb_py.objects import JSON
from webhooks import admission
from webhooks.certmanager import CertManager, service_names
from webhooks.tlsfiles import ServingTLS, watch_cert_files

WEBHOOK_PATH = "/validate-metallb-io-v1beta1-metallb"
WEBHOOK_NAME = "metallbvalidationwebhook.metallb.io"
SERVICE_NAME = "metallb-operator-webhook-service"
SECRET_NAME = "metallb-operator-webhook-server-cert"
CONFIGURATION_NAME = "metallb-operator-webhook-configuration"
DEFAULT_CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"
CERT_LIFETIME = dt.timedelta(days=365)


def metallb_errors(obj: JSON) -> list[str]:
    """MetalLB's messages for everything wrong with one MetalLB object (empty: fine)."""
    candidate = copy.deepcopy(obj)
    meta = candidate.setdefault("metadata", {})
    namespace = str(meta.get("namespace") or "default")
    meta["namespace"] = namespace
    candidate.setdefault("kind", "MetalLB")
    candidate.setdefault("apiVersion", "metallb.io/v1beta1")
    problems = parse([candidate], namespace=namespace, lenient_references=True)[1]
    return [p.message for p in problems if p.is_error and p.ref.kind == "MetalLB"]


def review(body: Any) -> JSON:
    """Decide one AdmissionReview for a MetalLB CREATE or UPDATE."""
    if not isinstance(body, dict) or not isinstance(body.get("request"), dict):
        return admission.bad_request(
            body, "expected an admission.k8s.io/v1 AdmissionReview with a request"
        )
    request: JSON = body["request"]
    uid = str(request.get("uid") or "")
    if request.get("operation") not in ("CREATE", "UPDATE"):
        return admission.response(uid, True)
    obj = request.get("object")
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
        return admission.bad_request(body, "the request has no object to validate")
    old = request.get("oldObject")
    # Metadata-only updates (our finalizer, labels) and the finalizer's removal while deleting
    # must pass even for an instance that predates the webhook, or its deletion would hang; a
    # spec it already had breaks nothing new.
    unchanged = isinstance(old, dict) and old.get("spec") == obj.get("spec")
    deleting = bool((obj.get("metadata") or {}).get("deletionTimestamp"))
    if request.get("operation") == "UPDATE" and (unchanged or deleting):
        return admission.response(uid, True)
    obj = dict(obj)
    obj.setdefault("metadata", {})
    if not obj["metadata"].get("namespace") and request.get("namespace"):
        obj["metadata"] = {**obj["metadata"], "namespace": request["namespace"]}
    errors = metallb_errors(obj)
    if errors:
        return admission.response(uid, False, "; ".join(errors), code=403)
    return admission.response(uid, True)


def webhook_configuration(namespace: str, ca_bundle: str = "") -> JSON:
    """The ValidatingWebhookConfiguration that sends MetalLB writes here (for manifests and
    tests; the operator keeps its caBundle current but does not create it)."""
    client: JSON = {"service": {"name": SERVICE_NAME, "namespace": namespace, "path": WEBHOOK_PATH}}
    if ca_bundle:
        client["caBundle"] = ca_bundle
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "clientConfig": client,
                "rules": [
                    {
                        "apiGroups": ["metallb.io"],
                        "apiVersions": ["v1beta1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["metallbs"],
                    }
                ],
            }
        ],
    }


class AdmissionServer:
    """HTTPS server for the MetalLB admission path, on every replica (not only the leader)."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.tls = ServingTLS()
        self.runner: web.AppRunner | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.counts: dict[str, int] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post(WEBHOOK_PATH, self._admit)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _admit(self, request: web.Request) -> web.Response:
        body: Any = None
        try:
            body = json.loads(await request.read())
        except ValueError as exc:
            result = admission.bad_request(None, f"request body is not JSON: {exc}")
        else:
            result = await asyncio.to_thread(review, body)
        resp = result["response"]
        outcome = "allowed" if resp["allowed"] else "denied"
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        req = body.get("request") if isinstance(body, dict) else None
        req = req if isinstance(req, dict) else {}
        self.log.info(
            "admissionReviewed",
            kind="MetalLB",
            operation=req.get("operation"),
            name=req.get("name"),
            allowed=resp["allowed"],
            message=(resp.get("status") or {}).get("message"),
        )
        return web.json_response(result)

    async def load_certificates(
        self,
        rest: Rest,
        namespace: str,
        cert_dir: str | None,
        stop: asyncio.Event,
        extra_hosts: list[str] | None = None,
    ) -> bool:
        """Files from `cert_dir` (reloaded when they change), or our own certificate kept in a
        Secret and rotated; False when stopped before a certificate was available."""
        if cert_dir:
            cert, key = Path(cert_dir) / "tls.crt", Path(cert_dir) / "tls.key"
            self.tls.load_files(cert, key)
            self.tasks.append(
                asyncio.create_task(watch_cert_files(self.tls, cert, key, stop, self.log))
            )
            return True
        names = service_names(SERVICE_NAME, namespace, list(extra_hosts or []))
        manager = CertManager(
            rest,
            namespace,
            SECRET_NAME,
            names,
            CERT_LIFETIME,
            self.tls,
            CONFIGURATION_NAME,
            (),
            self.log,
        )
        if not await manager.first_sync(stop):
            return False
        self.tasks.append(asyncio.create_task(manager.run(stop)))
        return True

    async def serve(self, host: str, port: int) -> None:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host or None, port, ssl_context=self.tls.context)
        await site.start()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.runner is not None:
            await self.runner.cleanup()
        self.tls.close()
