"""Raw-JSON access to the Kubernetes REST API through kubernetes_asyncio's ApiClient.

The ApiClient supplies authentication (bearer tokens, client certificates, token refresh), TLS
and the connection pool; we skip its generated models, which cost far more to build than the JSON
they wrap, and handle plain dicts. Works the same against a real cluster and the embedded server.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from metallb_py.kube.k8s import ApiClient
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

    @classmethod
    def of(cls, api_version: str, kind: str, *, namespaced: bool = True) -> Resource:
        """The resource as a manifest names it: `Resource.of("apps/v1", "Deployment")`, so the
        plural is written nowhere. It follows the regular rule (lowercase, then -s, -es after s,
        -ies for a final y); build a kind with an irregular plural (Endpoints) directly."""
        group, _, version = api_version.rpartition("/")
        return cls(group, version, _plural(kind), namespaced, kind)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


_METALLB = "metallb.io/v1beta1"
_RBAC = "rbac.authorization.k8s.io/v1"

SERVICES = Resource.of("v1", "Service")
NAMESPACES = Resource.of("v1", "Namespace", namespaced=False)
EVENTS = Resource.of("v1", "Event")
PODS = Resource.of("v1", "Pod")
LEASES = Resource.of("coordination.k8s.io/v1", "Lease")
IPADDRESSPOOLS = Resource.of(_METALLB, "IPAddressPool")
ADDRESSPOOLS = Resource.of(_METALLB, "AddressPool")
COMMUNITIES = Resource.of(_METALLB, "Community")
CONFIGURATIONSTATES = Resource.of(_METALLB, "ConfigurationState")
NODES = Resource.of("v1", "Node", namespaced=False)
SECRETS = Resource.of("v1", "Secret")
ENDPOINTSLICES = Resource.of("discovery.k8s.io/v1", "EndpointSlice")
L2ADVERTISEMENTS = Resource.of(_METALLB, "L2Advertisement")
BGPADVERTISEMENTS = Resource.of(_METALLB, "BGPAdvertisement")
BGPPEERS = Resource.of("metallb.io/v1beta2", "BGPPeer")
BFDPROFILES = Resource.of(_METALLB, "BFDProfile")
SERVICEL2STATUSES = Resource.of(_METALLB, "ServiceL2Status")
SERVICEBGPSTATUSES = Resource.of(_METALLB, "ServiceBGPStatus")
BGPSESSIONSTATES = Resource.of(_METALLB, "BGPSessionState")

METALLBS = Resource.of(_METALLB, "MetalLB")
DEPLOYMENTS = Resource.of("apps/v1", "Deployment")
DAEMONSETS = Resource.of("apps/v1", "DaemonSet")
SERVICEACCOUNTS = Resource.of("v1", "ServiceAccount")
CONFIGMAPS = Resource.of("v1", "ConfigMap")
ROLES = Resource.of(_RBAC, "Role")
ROLEBINDINGS = Resource.of(_RBAC, "RoleBinding")
CLUSTERROLES = Resource.of(_RBAC, "ClusterRole", namespaced=False)
CLUSTERROLEBINDINGS = Resource.of(_RBAC, "ClusterRoleBinding", namespaced=False)
VALIDATINGWEBHOOKCONFIGURATIONS = Resource.of(
    "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", namespaced=False
)
NETWORKPOLICIES = Resource.of("networking.k8s.io/v1", "NetworkPolicy")


class Rest:
    """Thin async JSON client. One per process; it owns nothing but borrows the ApiClient."""

    def __init__(self, api: ApiClient, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout

    async def close(self) -> None:
        await self.api.close()

    @contextlib.asynccontextmanager
    async def _open(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response with its body unread; a non-2xx answer raises ApiError instead."""
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
        async with response:
            if not 200 <= response.status <= 299:
                raise ApiError(
                    response.status, response.reason or "", _decode(await response.read())
                )
            yield response

    async def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> JSON:
        async with self._open(method, path, query, body, content_type) as response:
            data = _decode(await response.read())
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
        async with self._open("GET", path, query, request_timeout=timeout) as response:
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
