"""BGPPeer v1beta1 <-> v1beta2 conversion (the CRD conversion webhook and offline parsing).

Differences from MetalLB, on purpose: a v1beta1 peer without timers becomes hold 90 s / keepalive
30 s (MetalLB stores 0 s, which silently disables keepalives), and fields that only v1beta2 has are
kept in an annotation when an object is read as v1beta1, so a v1beta1 round trip loses nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
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


# What a direction adds to the shared fields: (source spec, new spec, annotations), edited in place.
_Fill = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], None]


def _convert(obj: dict[str, Any], source: str, target: str, fill: _Fill) -> dict[str, Any]:
    """A copy of `obj` at `target`: the fields both versions share, then what `fill` adds, with
    its annotations (none left: no annotations key). An object already at `target` comes back
    as a copy; anything but `source` or `target` is refused."""
    out = copy.deepcopy(obj)
    if obj.get("apiVersion") == target:
        return out
    if obj.get("apiVersion") != source:
        raise ConversionError(f"cannot convert BGPPeer from {obj.get('apiVersion')!r}")
    spec = obj.get("spec") or {}
    new = {k: copy.deepcopy(spec[k]) for k in _COMMON if k in spec}
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    fill(spec, new, annotations)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["apiVersion"] = target
    out["spec"] = new
    return out


def _fill_v1beta2(spec: dict[str, Any], new: dict[str, Any], annotations: dict[str, Any]) -> None:
    if new.get("peerPort") == 0:
        del new["peerPort"]
    if "nodeSelectors" in spec:
        new["nodeSelectors"] = _legacy_selectors_to_v1beta2(spec.get("nodeSelectors") or [])
    if "holdTime" not in new and "keepaliveTime" not in new:
        new["holdTime"] = DEFAULT_HOLD
        new["keepaliveTime"] = DEFAULT_KEEPALIVE
    stashed = annotations.pop(STASH_ANNOTATION, None)
    if stashed:
        try:
            extra = json.loads(stashed)
        except ValueError:
            extra = {}
        if isinstance(extra, dict):
            for key, value in extra.items():
                new.setdefault(key, value)


def _fill_v1beta1(spec: dict[str, Any], new: dict[str, Any], annotations: dict[str, Any]) -> None:
    if "nodeSelectors" in spec:
        new["nodeSelectors"] = copy.deepcopy(spec["nodeSelectors"])
    extra = {k: v for k, v in spec.items() if k not in _COMMON and k != "nodeSelectors"}
    annotations.pop(STASH_ANNOTATION, None)
    if extra:
        annotations[STASH_ANNOTATION] = json.dumps(extra, sort_keys=True, separators=(",", ":"))


def to_v1beta2(obj: dict[str, Any]) -> dict[str, Any]:
    """A v1beta1 BGPPeer as v1beta2 (an object already at v1beta2 is returned as a copy)."""
    return _convert(obj, V1BETA1, V1BETA2, _fill_v1beta2)


def to_v1beta1(obj: dict[str, Any]) -> dict[str, Any]:
    """A v1beta2 BGPPeer as v1beta1; v1beta2-only fields go to an annotation."""
    return _convert(obj, V1BETA2, V1BETA1, _fill_v1beta1)


def convert(obj: dict[str, Any], desired_api_version: str) -> dict[str, Any]:
    if desired_api_version == V1BETA2:
        return to_v1beta2(obj)
    if desired_api_version == V1BETA1:
        return to_v1beta1(obj)
    raise ConversionError(f"unsupported BGPPeer version {desired_api_version!r}")
