"""ConversionReview v1 for BGPPeer v1beta1 <-> v1beta2 (the CRD's Webhook conversion)."""

from __future__ import annotations

from typing import Any

from metallb_py.config.bgppeer_conversion import ConversionError, convert
from metallb_py.objects import JSON


def convert_review(review: Any) -> JSON:
    request = review.get("request") if isinstance(review, dict) else None
    if not isinstance(request, dict):
        return _result("", "Failure", "expected an apiextensions.k8s.io/v1 ConversionReview", [])
    uid = str(request.get("uid") or "")
    desired = str(request.get("desiredAPIVersion") or "")
    converted = []
    try:
        for obj in request.get("objects") or []:
            if not isinstance(obj, dict) or obj.get("kind") != "BGPPeer":
                raise ConversionError(
                    f"cannot convert {obj.get('kind') if isinstance(obj, dict) else obj!r}"
                )
            converted.append(convert(obj, desired))
    except ConversionError as exc:
        return _result(uid, "Failure", str(exc), [])
    return _result(uid, "Success", "", converted)


def _result(uid: str, status: str, message: str, objects: list[JSON]) -> JSON:
    result: JSON = {"status": status}
    if message:
        result["message"] = message
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "response": {"uid": uid, "result": result, "convertedObjects": objects},
    }
