"""BGPPeer v1beta1 <-> v1beta2 conversion (the CRD conversion webhook and offline parsing).

Differences from MetalLB, on purpose: a v1beta1 peer without timers becomes hold 90 s / keepalive
30 s (MetalLB stores 0 s, which silently disables keepalives), and fields that only v1beta2 has are
kept in an annotation when an object is read as v1beta1, so a v1beta1 round trip loses nothing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

V1BETA1 = "metallb.io/v1beta1"
V1BETA2 = "metallb.io/v1beta2"
STASH_ANNOTATION = "metallb.io/v1beta2-only-fields"
DEFAULT_HOLD = "1m30s"
DEFAULT_KEEPALIVE = "30s"

_COMMON = (
    "myASN",
    "peerASN",
    "peerAddress",
    "sourceAddress",
    "peerPort",
    "holdTime",
    "keepaliveTime",
    "routerID",
    "password",
    "bfdProfile",
    "ebgpMultiHop",
)


class ConversionError(ValueError):
    pass


def _legacy_selectors_to_v1beta2(selectors: list[Any]) -> list[Any]:
    out = []
    for sel in selectors:
        sel = sel if isinstance(sel, dict) else {}
        new: dict[str, Any] = {}
        if sel.get("matchLabels"):
            new["matchLabels"] = dict(sel["matchLabels"])
        if sel.get("matchExpressions"):
            new["matchExpressions"] = copy.deepcopy(sel["matchExpressions"])
        out.append(new)
    return out


def _begin(obj: dict[str, Any], source: str, target: str) -> tuple[Any, dict[str, Any]] | None:
    """(the object's spec, a copy of the fields both versions share), or None when `obj` is
    already at `target`; anything but `source` or `target` is refused."""
    if obj.get("apiVersion") == target:
        return None
    if obj.get("apiVersion") != source:
        raise ConversionError(f"cannot convert BGPPeer from {obj.get('apiVersion')!r}")
    spec = obj.get("spec") or {}
    return spec, {k: copy.deepcopy(spec[k]) for k in _COMMON if k in spec}


def _annotations(out: dict[str, Any]) -> dict[str, Any]:
    return dict(out.setdefault("metadata", {}).get("annotations") or {})


def _finish(
    out: dict[str, Any], annotations: dict[str, Any], version: str, spec: dict[str, Any]
) -> dict[str, Any]:
    """Store the annotations (none: no annotations key), the version and the new spec."""
    meta = out["metadata"]
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["apiVersion"] = version
    out["spec"] = spec
    return out


def to_v1beta2(obj: dict[str, Any]) -> dict[str, Any]:
    """A v1beta1 BGPPeer as v1beta2 (an object already at v1beta2 is returned as a copy)."""
    out = copy.deepcopy(obj)
    begun = _begin(obj, V1BETA1, V1BETA2)
    if begun is None:
        return out
    spec, new = begun
    if new.get("peerPort") == 0:
        del new["peerPort"]
    if "nodeSelectors" in spec:
        new["nodeSelectors"] = _legacy_selectors_to_v1beta2(spec.get("nodeSelectors") or [])
    if "holdTime" not in new and "keepaliveTime" not in new:
        new["holdTime"] = DEFAULT_HOLD
        new["keepaliveTime"] = DEFAULT_KEEPALIVE
    annotations = _annotations(out)
    stashed = annotations.pop(STASH_ANNOTATION, None)
    if stashed:
        try:
            extra = json.loads(stashed)
        except ValueError:
            extra = {}
        if isinstance(extra, dict):
            for key, value in extra.items():
                new.setdefault(key, value)
    return _finish(out, annotations, V1BETA2, new)


def to_v1beta1(obj: dict[str, Any]) -> dict[str, Any]:
    """A v1beta2 BGPPeer as v1beta1; v1beta2-only fields go to an annotation."""
    out = copy.deepcopy(obj)
    begun = _begin(obj, V1BETA2, V1BETA1)
    if begun is None:
        return out
    spec, new = begun
    if "nodeSelectors" in spec:
        new["nodeSelectors"] = copy.deepcopy(spec["nodeSelectors"])
    extra = {k: v for k, v in spec.items() if k not in _COMMON and k != "nodeSelectors"}
    annotations = _annotations(out)
    annotations.pop(STASH_ANNOTATION, None)
    if extra:
        annotations[STASH_ANNOTATION] = json.dumps(extra, sort_keys=True, separators=(",", ":"))
    return _finish(out, annotations, V1BETA1, new)


def convert(obj: dict[str, Any], desired_api_version: str) -> dict[str, Any]:
    if desired_api_version == V1BETA2:
        return to_v1beta2(obj)
    if desired_api_version == V1BETA1:
        return to_v1beta1(obj)
    raise ConversionError(f"unsupported BGPPeer version {desired_api_version!r}")
