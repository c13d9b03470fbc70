"""Raw-JSON access to the Kubernetes REST API through kubernetes_asyncio's ApiClient.

The ApiClient supplies authentication (bearer tokens, client certificates, token refresh), TLS
and the connection pool; we skip its generated models, which cost far more to build than the JSON
they wrap, and handle plain dicts. Works the same against a real cluster and the embedded server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio.client import ApiClient

from metallb_py.objects import JSON

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer; `status` is the HTTP code (409 conflict, 404 not found, 410 gone...)."""

    def __init__(self, status: int, reason: str, body: Any = None) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"{status} {reason}: {message or body or ''}".strip())

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def gone(self) -> bool:
        return self.status == 410


@dataclass(frozen=True)
class Resource:
    """A REST resource: `Resource("", "v1", "services")`, `Resource("metallb.io", "v1beta1",
    "ipaddresspools")`."""

    group: str
    version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


SERVICES = Resource("", "v1", "services", kind="Service")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False, kind="Namespace")
EVENTS = Resource("", "v1", "events", kind="Event")
PODS = Resource("", "v1", "pods", kind="Pod")
LEASES = Resource("coordination.k8s.io", "v1", "leases", kind="Lease")
IPADDRESSPOOLS = Resource("metallb.io", "v1beta1", "ipaddresspools", kind="IPAddressPool")
ADDRESSPOOLS = Resource("metallb.io", "v1beta1", "addresspools", kind="AddressPool")
COMMUNITIES = Resource("metallb.io", "v1beta1", "communities", kind="Community")
CONFIGURATIONSTATES = Resource(
    "metallb.io", "v1beta1", "configurationstates", kind="ConfigurationState"
)
NODES = Resource("", "v1", "nodes", namespaced=False, kind="Node")
SECRETS = Resource("", "v1", "secrets", kind="Secret")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", kind="EndpointSlice")
L2ADVERTISEMENTS = Resource("metallb.io", "v1beta1", "l2advertisements", kind="L2Advertisement")
BGPADVERTISEMENTS = Resource("metallb.io", "v1beta1", "bgpadvertisements", kind="BGPAdvertisement")
BGPPEERS = Resource("metallb.io", "v1beta2", "bgppeers", kind="BGPPeer")
BFDPROFILES = Resource("metallb.io", "v1beta1", "bfdprofiles", kind="BFDProfile")
SERVICEL2STATUSES = Resource("metallb.io", "v1beta1", "servicel2statuses", kind="ServiceL2Status")
SERVICEBGPSTATUSES = Resource(
    "metallb.io", "v1beta1", "servicebgpstatuses", kind="ServiceBGPStatus"
)
BGPSESSIONSTATES = Resource("metallb.io", "v1beta1", "bgpsessionstates", kind="BGPSessionState")

METALLBS = Resource("metallb.io", "v1beta1", "metallbs", kind="MetalLB")
DEPLOYMENTS = Resource("apps", "v1", "deployments", kind="Deployment")
DAEMONSETS = Resource("apps", "v1", "daemonsets", kind="DaemonSet")
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", kind="ServiceAccount")
CONFIGMAPS = Resource("", "v1", "configmaps", kind="ConfigMap")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", kind="Role")
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", kind="RoleBinding")
CLUSTERROLES = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False, kind="ClusterRole"
)
CLUSTERROLEBINDINGS = Resource(
    "rbac.authorization.k8s.io",
    "v1",
    "clusterrolebindings",
    namespaced=False,
    kind="ClusterRoleBinding",
)
VALIDATINGWEBHOOKCONFIGURATIONS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    namespaced=False,
    kind="ValidatingWebhookConfiguration",
)
NETWORKPOLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", kind="NetworkPolicy")


class Rest:
    """Thin async JSON client. One per process; it owns nothing but borrows the ApiClient."""

    def __init__(self, api: ApiClient, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout

    async def close(self) -> None:
        await self.api.close()

    async def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        response: aiohttp.ClientResponse = await self.api.call_api(
            path,
            method,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=request_timeout if request_timeout is not None else self.timeout,
        )
        return response

    async def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> JSON:
        response = await self._send(method, path, query, body, content_type)
        async with response:
            raw = await response.read()
            data = _decode(raw)
            if not 200 <= response.status <= 299:
                raise ApiError(response.status, response.reason or "", data)
        return data if isinstance(data, dict) else {}

    async def get(self, path: str, query: Mapping[str, Any] | None = None) -> JSON:
        return await self.request("GET", path, query)

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> JSON:
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def delete(self, path: str) -> JSON:
        return await self.request("DELETE", path)

    async def watch(
        self, path: str, query: Mapping[str, Any], timeout_seconds: int
    ) -> AsyncIterator[JSON]:
        """Stream watch events (`{"type": ..., "object": ...}`) until the server ends it."""
        query = {**query, "watch": "true", "timeoutSeconds": timeout_seconds}
        # No total timeout: a quiet watch is fine; a dead connection is caught by sock_read.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=timeout_seconds + 30)
        response = await self._send("GET", path, query, request_timeout=timeout)
        async with response:
            if not 200 <= response.status <= 299:
                raise ApiError(
                    response.status, response.reason or "", _decode(await response.read())
                )
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decode(raw: bytes) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
