"""Builders for metallb.io objects in tests (plain dicts, as the API server or YAML gives them)."""

from __future__ import annotations

from typing import Any

NS = "metallb-system"


def obj(
    kind: str, name: str, spec: dict[str, Any] | None = None, version: str = "v1beta1", **meta: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NS}
    metadata.update(meta)
    out: dict[str, Any] = {
        "apiVersion": f"metallb.io/{version}",
        "kind": kind,
        "metadata": metadata,
    }
    if spec is not None:
        out["spec"] = spec
    return out


def pool(name: str, *addresses: str, **spec: Any) -> dict[str, Any]:
    meta = {k: spec.pop(k) for k in ("labels", "creationTimestamp") if k in spec}
    return obj("IPAddressPool", name, {"addresses": list(addresses), **spec}, **meta)


def legacy_pool(
    name: str, protocol: str | None, *addresses: str, version: str = "v1beta1", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"addresses": list(addresses), **spec}
    if protocol is not None:
        body["protocol"] = protocol
    return obj("AddressPool", name, body, version=version)


def peer(name: str, version: str = "v1beta2", **spec: Any) -> dict[str, Any]:
    meta = {k: spec.pop(k) for k in ("creationTimestamp",) if k in spec}
    body = {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"}
    body.update(spec)
    return obj(
        "BGPPeer", name, {k: v for k, v in body.items() if v is not None}, version=version, **meta
    )


def l2adv(name: str, **spec: Any) -> dict[str, Any]:
    return obj("L2Advertisement", name, spec)


def bgpadv(name: str, **spec: Any) -> dict[str, Any]:
    meta = {k: spec.pop(k) for k in ("creationTimestamp",) if k in spec}
    return obj("BGPAdvertisement", name, spec, **meta)


def bfd(name: str, **spec: Any) -> dict[str, Any]:
    return obj("BFDProfile", name, spec)


def community(name: str, **aliases: str) -> dict[str, Any]:
    return obj(
        "Community", name, {"communities": [{"name": k, "value": v} for k, v in aliases.items()]}
    )


def secret(
    name: str, password: str | None = "s3cret", stype: str = "kubernetes.io/basic-auth"
) -> dict[str, Any]:
    import base64

    data = (
        {"password": base64.b64encode(password.encode()).decode()}
        if password is not None
        else {"username": "eA=="}
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "type": stype,
        "data": data,
    }
