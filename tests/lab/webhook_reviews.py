"""AdmissionReview / ConversionReview requests as the API server sends them."""

from __future__ import annotations

import uuid
from typing import Any

PLURALS = {
    "IPAddressPool": "ipaddresspools",
    "L2Advertisement": "l2advertisements",
    "BGPAdvertisement": "bgpadvertisements",
    "BGPPeer": "bgppeers",
    "BFDProfile": "bfdprofiles",
    "Community": "communities",
    "AddressPool": "addresspools",
}


def admission_review(
    operation: str,
    obj: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    request_version: str | None = None,
) -> dict[str, Any]:
    subject = obj if obj is not None else old
    assert subject is not None
    kind = subject["kind"]
    group, _, version = subject["apiVersion"].partition("/")
    meta = subject["metadata"]
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": PLURALS[kind]}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": {**gvk, "version": request_version or version},
            "requestResource": {**gvr, "version": request_version or version},
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
        },
    }


def conversion_review(desired: str, *objects: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "desiredAPIVersion": desired,
            "objects": list(objects),
        },
    }
