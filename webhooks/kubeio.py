"""What the webhook reads and writes on the API server: the current objects, its certificate
Secret, and the caBundle of the ValidatingWebhookConfiguration and of the converted CRDs."""

from __future__ import annotations

import base64

from metallb_py.config.schemas import GROUP, KINDS
from metallb_py.kube.rest import ApiError, Rest
from metallb_py.objects import JSON

CONFIG_KINDS = (
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "BFDProfile",
    "Community",
    "AddressPool",
)


async def _items(rest: Rest, path: str, api_version: str, kind: str) -> list[JSON]:
    try:
        body = await rest.get(path)
    except ApiError as exc:
        if exc.status in (403, 404):  # a CRD that is not installed (legacy), or no RBAC for it
            return []
        raise
    items = body.get("items") or []
    for item in items:
        item.setdefault("apiVersion", api_version)
        item.setdefault("kind", kind)
    return list(items)


async def list_current(rest: Rest, namespace: str, services: bool = False) -> list[JSON]:
    """Every configuration object of the namespace (storage versions), its Secrets and, for pool
    deletes, every Service of the cluster."""
    out: list[JSON] = []
    for name in CONFIG_KINDS:
        kind = KINDS[name]
        version = kind.storage.name
        path = f"/apis/{GROUP}/{version}/namespaces/{namespace}/{kind.plural}"
        out.extend(await _items(rest, path, f"{GROUP}/{version}", name))
    out.extend(await _items(rest, f"/api/v1/namespaces/{namespace}/secrets", "v1", "Secret"))
    if services:
        out.extend(await _items(rest, "/api/v1/services", "v1", "Service"))
    return out


def _decode_data(secret: JSON) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


async def read_secret(
    rest: Rest, namespace: str, name: str
) -> tuple[JSON | None, dict[str, bytes]]:
    try:
        secret = await rest.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    except ApiError as exc:
        if exc.not_found:
            return None, {}
        raise
    return secret, _decode_data(secret)


async def write_secret(
    rest: Rest, namespace: str, name: str, existing: JSON | None, data: dict[str, bytes]
) -> JSON:
    """Create or replace (optimistically: a 409 means another replica won; the caller re-reads)."""
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    if existing is None:
        body: JSON = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "data": encoded,
        }
        return await rest.create(f"/api/v1/namespaces/{namespace}/secrets", body)
    body = dict(existing)
    body["data"] = encoded
    return await rest.replace(f"/api/v1/namespaces/{namespace}/secrets/{name}", body)


async def inject_ca_bundle(
    rest: Rest, configuration: str, crds: tuple[str, ...], bundle: bytes
) -> list[str]:
    """Set caBundle everywhere it is stale; returns what was updated (missing objects skipped)."""
    ca = base64.b64encode(bundle).decode()
    updated: list[str] = []
    path = f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{configuration}"
    try:
        vwc = await rest.get(path)
    except ApiError as exc:
        if not exc.not_found:
            raise
        vwc = None
    if vwc is not None:
        changed = False
        for hook in vwc.get("webhooks") or []:
            client = hook.setdefault("clientConfig", {})
            if client.get("caBundle") != ca:
                client["caBundle"] = ca
                changed = True
        if changed:
            await rest.replace(path, vwc)
            updated.append(f"ValidatingWebhookConfiguration/{configuration}")
    for name in crds:
        cpath = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        try:
            crd = await rest.get(cpath)
        except ApiError as exc:
            if exc.not_found:
                continue
            raise
        conversion = (crd.get("spec") or {}).get("conversion") or {}
        webhook = conversion.get("webhook")
        if conversion.get("strategy") != "Webhook" or not isinstance(webhook, dict):
            continue
        client = webhook.setdefault("clientConfig", {})
        if client.get("caBundle") != ca:
            client["caBundle"] = ca
            await rest.replace(cpath, crd)
            updated.append(f"CustomResourceDefinition/{name}")
    return updated
