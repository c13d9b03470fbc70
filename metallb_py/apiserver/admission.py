"""Validating admission webhooks (AdmissionReview v1) and CRD conversion webhooks
(ConversionReview v1), called over HTTPS exactly as the real server calls them.

A `service:` client config is resolved to a ready endpoint of that Service (EndpointSlices, then
Endpoints) — there is no DNS or kube-proxy here — and the certificate is verified against the
caBundle for the name `<service>.<namespace>.svc`, as the real server does. `--webhook-url-override
NAMESPACE/SERVICE=URL` sends a Service's calls to a fixed URL instead.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from metallb_py.apiserver.errors import ApiError
from metallb_py.apiserver.resources import Resource
from metallb_py.apiserver.selectors import match_label_selector
from metallb_py.objects import JSON

if TYPE_CHECKING:
    from metallb_py.apiserver.crd import CrdInfo
    from metallb_py.apiserver.server import ApiServer, Call

VWC_KEY = "validatingwebhookconfigurations.admissionregistration.k8s.io"
SKIPPED = {"validatingwebhookconfigurations", "mutatingwebhookconfigurations"}


class WebhookError(Exception):
    pass


class WebhookClient:
    """HTTPS POSTs to webhooks, trusting exactly the configured caBundle."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[str, ssl.SSLContext] = {}

    def _ssl(self, ca_bundle: str) -> ssl.SSLContext:
        digest = hashlib.sha256(ca_bundle.encode()).hexdigest()
        ctx = self._contexts.get(digest)
        if ctx is None:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            if ca_bundle:
                ctx.load_verify_locations(cadata=base64.b64decode(ca_bundle).decode())
            self._contexts[digest] = ctx
        return ctx

    def resolve(self, client_config: JSON) -> tuple[str, str | None]:
        """(url, TLS server name) for a webhook client config."""
        if client_config.get("url"):
            return str(client_config["url"]), None
        svc = client_config.get("service") or {}
        ns, name = svc.get("namespace", ""), svc.get("name", "")
        path = svc.get("path") or ""
        port = int(svc.get("port") or 443)
        host_name = f"{name}.{ns}.svc"
        override = self.server.cfg.webhook_url_override.get(f"{ns}/{name}")
        if override:
            return override.rstrip("/") + path, host_name
        store = self.server.store
        service = store.table("services").get(ns, name)
        if service is None:
            raise WebhookError(f'service "{name}" not found')
        target: Any = port
        port_name = ""
        for p in (service.obj.get("spec") or {}).get("ports") or []:
            if p.get("port") == port:
                target = p.get("targetPort", port)
                port_name = p.get("name", "")
                break
        for e in store.table("endpointslices.discovery.k8s.io").entries(ns):
            labels = e.obj["metadata"].get("labels") or {}
            if labels.get("kubernetes.io/service-name") != name:
                continue
            number = target if isinstance(target, int) else None
            for sp in e.obj.get("ports") or []:
                if sp.get("name", "") == port_name or (
                    isinstance(target, str) and sp.get("name") == target
                ):
                    number = sp.get("port")
            for ep in e.obj.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready", True) and ep.get("addresses"):
                    return _url(ep["addresses"][0], number or port, path), host_name
        ep_obj = store.table("endpoints").get(ns, name)
        if ep_obj is not None:
            for subset in ep_obj.obj.get("subsets") or []:
                number = target if isinstance(target, int) else None
                for sp in subset.get("ports") or []:
                    if sp.get("name", "") == port_name or (
                        isinstance(target, str) and sp.get("name") == target
                    ):
                        number = sp.get("port")
                for addr in subset.get("addresses") or []:
                    return _url(addr["ip"], number or port, path), host_name
        raise WebhookError(f'no endpoints available for service "{name}"')

    async def post(self, client_config: JSON, body: JSON, seconds: float) -> JSON:
        url, server_name = self.resolve(client_config)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                url,
                json=body,
                ssl=self._ssl(client_config.get("caBundle", "")),
                server_hostname=server_name,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as resp:
                if resp.status != 200:
                    raise WebhookError(f"the server responded with status {resp.status}")
                data: JSON = await resp.json(content_type=None)
                return data
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, ValueError) as exc:
            reason = "context deadline exceeded" if isinstance(exc, TimeoutError) else str(exc)
            raise WebhookError(f'failed to call webhook: Post "{url}": {reason}') from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _url(host: str, port: int, path: str) -> str:
    h = f"[{host}]" if ":" in host else host
    return f"https://{h}:{port}{path}"


def _rule_matches(rule: JSON, op: str, res: Resource, sub: str) -> bool:
    ops = rule.get("operations") or []
    if "*" not in ops and op not in ops:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and res.group not in groups:
        return False
    versions = rule.get("apiVersions") or []
    if "*" not in versions and res.version not in versions:
        return False
    want = f"{res.plural}/{sub}" if sub else res.plural
    resources = rule.get("resources") or []
    ok = any(
        r == want
        or (r == "*" and not sub)
        or r == "*/*"
        or (sub and r == f"*/{sub}")
        or (r == f"{res.plural}/*" and sub)
        for r in resources
    )
    if not ok:
        return False
    scope = rule.get("scope", "*")
    return scope == "*" or (scope == "Namespaced") == res.namespaced


@dataclass(frozen=True)
class _Write:
    """The write under review, as each matching webhook is called about it; webhook warnings
    collect in `warnings` for the response."""

    call: Call
    op: str
    obj: JSON | None
    old: JSON | None
    warnings: list[str]


class Admission:
    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.client = WebhookClient(server)

    def _match(self, hook: JSON, op: str, res: Resource, sub: str) -> Resource | None:
        """The resource version the webhook wants to see, or None if it does not match."""
        rules = hook.get("rules") or []
        if any(_rule_matches(r, op, res, sub) for r in rules):
            return res
        if hook.get("matchPolicy", "Equivalent") != "Equivalent":
            return None
        for other in self.server.registry.versions_of(res):
            if other is not res and any(_rule_matches(r, op, other, sub) for r in rules):
                return other
        return None

    def _namespace_matches(
        self, hook: JSON, res: Resource, ns: str, obj: JSON | None, old: JSON | None
    ) -> bool:
        selector = hook.get("namespaceSelector")
        if not selector:
            return True
        if res.plural == "namespaces" and res.group == "":
            labels = ((obj or old or {}).get("metadata") or {}).get("labels") or {}
            return match_label_selector(selector, labels)
        if not res.namespaced:
            return True
        nse = self.server.store.table("namespaces").get("", ns)
        labels = (nse.obj["metadata"].get("labels") or {}) if nse else {}
        return match_label_selector(selector, labels)

    @staticmethod
    def _object_matches(hook: JSON, obj: JSON | None, old: JSON | None) -> bool:
        selector = hook.get("objectSelector")
        if not selector:
            return True
        for o in (obj, old):
            if o is not None and match_label_selector(
                selector, (o.get("metadata") or {}).get("labels") or {}
            ):
                return True
        return False

    async def review(
        self,
        server: ApiServer,
        c: Call,
        op: str,
        obj: JSON | None,
        old: JSON | None,
        warnings: list[str],
    ) -> None:
        if c.res.plural in SKIPPED and c.res.group == "admissionregistration.k8s.io":
            return
        configs = list(server.store.table(VWC_KEY).entries())
        if not configs:
            return
        write = _Write(c, op, obj, old, warnings)
        calls = []
        for cfg in configs:
            for hook in cfg.obj.get("webhooks") or []:
                target = self._match(hook, op, c.res, c.sub)
                if target is None:
                    continue
                if not self._namespace_matches(hook, c.res, c.ns, obj, old):
                    continue
                if not self._object_matches(hook, obj, old):
                    continue
                calls.append(self._call(hook, target, write))
        if calls:
            # The real server calls validating webhooks in parallel; the first denial wins.
            results = await asyncio.gather(*calls, return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r

    async def _call(self, hook: JSON, target: Resource, write: _Write) -> None:
        server = self.server
        c, op, obj, old = write.call, write.op, write.obj, write.old
        name = hook.get("name", "")
        if target is not c.res:
            conv = [x for x in (obj, old) if x is not None]
            stored = [await server.to_storage(c.res, x) for x in conv]
            converted = await server.from_storage(target, stored)
            it = iter(converted)
            obj = next(it) if obj is not None else None
            old = next(it) if old is not None else None
        meta = (obj or old or {}).get("metadata") or {}
        request: JSON = {
            "uid": str(uuid.uuid4()),
            "kind": {"group": target.group, "version": target.version, "kind": target.kind},
            "resource": {
                "group": target.group,
                "version": target.version,
                "resource": target.plural,
            },
            "requestKind": {"group": c.res.group, "version": c.res.version, "kind": c.res.kind},
            "requestResource": {
                "group": c.res.group,
                "version": c.res.version,
                "resource": c.res.plural,
            },
            "name": meta.get("name", c.name),
            "operation": op,
            "userInfo": c.user.info(),
            "object": obj,
            "oldObject": old,
            "dryRun": c.params.get("dryRun") == "All",
            "options": {
                "kind": {
                    "CREATE": "CreateOptions",
                    "UPDATE": "UpdateOptions",
                    "DELETE": "DeleteOptions",
                }.get(op, "CreateOptions"),
                "apiVersion": "meta.k8s.io/v1",
            },
        }
        if c.sub:
            request["subResource"] = c.sub
            request["requestSubResource"] = c.sub
        if target.namespaced:
            request["namespace"] = c.ns
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        }
        timeout = float(hook.get("timeoutSeconds") or 10)
        policy = hook.get("failurePolicy", "Fail")
        try:
            answer = await self.client.post(hook.get("clientConfig") or {}, review, timeout)
            response = answer.get("response")
            if not isinstance(response, dict) or response.get("uid") != request["uid"]:
                raise WebhookError("expected response.uid to match the request uid")
        except WebhookError as exc:
            if policy == "Ignore":
                return
            raise ApiError(
                500,
                "InternalError",
                f'Internal error occurred: failed calling webhook "{name}": {exc}',
            ) from None
        for w in response.get("warnings") or []:
            write.warnings.append(str(w))
        if response.get("allowed"):
            return
        result = response.get("status") or {}
        code = int(result.get("code") or 403)
        message = result.get("message") or ""
        text = f'admission webhook "{name}" denied the request'
        if message:
            text += f": {message}"
        raise ApiError(
            code,
            result.get("reason") or ("Forbidden" if code == 403 else "Invalid"),
            text,
            details=result.get("details"),
        )

    async def close(self) -> None:
        await self.client.close()


class Conversion:
    """CRD version conversion through the CRD's conversion webhook."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.client = WebhookClient(server)

    async def convert(self, info: CrdInfo, objs: list[JSON], target: str) -> list[JSON]:
        todo = [o for o in objs if o.get("apiVersion") != target]
        if not todo:
            return objs
        webhook = info.conversion.get("webhook") or {}
        review = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": str(uuid.uuid4()), "desiredAPIVersion": target, "objects": todo},
        }
        what = f"conversion webhook for {todo[0].get('apiVersion')}, Kind={info.kind}"
        try:
            answer = await self.client.post(webhook.get("clientConfig") or {}, review, 30)
        except WebhookError as exc:
            raise ApiError(500, "InternalError", f"{what} failed: {exc}") from None
        response = answer.get("response") or {}
        result = response.get("result") or {}
        converted = response.get("convertedObjects")
        if (
            result.get("status") != "Success"
            or not isinstance(converted, list)
            or len(converted) != len(todo)
        ):
            raise ApiError(
                500,
                "InternalError",
                f"{what} failed: {result.get('message') or 'invalid response'}",
            )
        it = iter(converted)
        out = []
        for o in objs:
            if o.get("apiVersion") == target:
                out.append(o)
                continue
            new = next(it)
            # The webhook may not change identity or metadata other than labels/annotations.
            meta = dict(o.get("metadata") or {})
            nm = new.get("metadata") or {}
            for k in ("labels", "annotations"):
                if k in nm:
                    meta[k] = nm[k]
            new["metadata"] = meta
            out.append(new)
        return out

    async def close(self) -> None:
        await self.client.close()
