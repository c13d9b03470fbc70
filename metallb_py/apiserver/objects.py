"""Object-level rules shared by every write: names, metadata the server owns, and the
per-kind strategies (what create resets, what the status subresource may change)."""

from __future__ import annotations

import base64
import os
import random
import re
import time
from datetime import UTC, datetime
from typing import Any

from metallb_py.apiserver.errors import FieldError
from metallb_py.apiserver.resources import Resource
from metallb_py.objects import JSON

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Metadata the server owns: a client can never set or change it through an update.
SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
)


_stamp: tuple[int, str] = (-1, "")


def now() -> str:
    """The current second in Kubernetes' timestamp format, formatted once per second (a
    write stamps it two or three times, and a busy second holds thousands of writes)."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp[1]


def generate_suffix() -> str:
    return "".join(random.choice(_GEN_ALPHABET) for _ in range(5))


def new_uid() -> str:
    """A random (version 4) UUID, formatted directly: uuid.UUID costs twice as much."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def check_name(res: Resource, name: str) -> list[FieldError]:
    if res.plural in ("namespaces",):
        ok, what = bool(_LABEL.match(name)) and len(name) <= 63, "RFC 1123 label"
    elif res.plural == "services":
        ok, what = bool(_DNS1035.match(name)) and len(name) <= 63, "RFC 1035 label"
    elif res.plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):
        ok, what = bool(name) and "/" not in name and name not in (".", ".."), "path segment name"
    else:
        ok, what = bool(_SUBDOMAIN.match(name)) and len(name) <= 253, "RFC 1123 subdomain"
    if ok:
        return []
    detail = {
        "RFC 1123 label": "a lowercase RFC 1123 label must consist of lower case alphanumeric "
        "characters or '-', and must start and end with an alphanumeric character",
        "RFC 1035 label": "a DNS-1035 label must consist of lower case alphanumeric characters or "
        "'-', start with an alphabetic character, and end with an alphanumeric character",
        "RFC 1123 subdomain": "a lowercase RFC 1123 subdomain must consist of lower case "
        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character",
        "path segment name": "may not contain '/' and may not be '.' or '..'",
    }[what]
    return [FieldError("metadata.name", "Invalid value", detail, name)]


def check_meta(meta: JSON) -> list[FieldError]:
    errs: list[FieldError] = []
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and not isinstance(value, dict):
            errs.append(FieldError(f"metadata.{field}", "Invalid value", "must be a map", value))
    for k, v in (meta.get("labels") or {}).items():
        prefix, slash, key = k.rpartition("/")
        if slash and (len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
            errs.append(
                FieldError(
                    "metadata.labels",
                    "Invalid value",
                    "prefix part must be no more than 253 characters"
                    if len(prefix) > 253
                    else "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                    "alphanumeric characters, '-' or '.', and must start and end with an "
                    "alphanumeric character",
                    k,
                )
            )
        if not _QUALIFIED.match(key) or len(key) > 63:
            errs.append(
                FieldError(
                    "metadata.labels",
                    "Invalid value",
                    "name part must consist of alphanumeric characters, '-', '_' "
                    "or '.', and must start and end with an alphanumeric character",
                    k,
                )
            )
        if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
            errs.append(
                FieldError(
                    "metadata.labels",
                    "Invalid value",
                    "a valid label must be an empty string or consist of "
                    "alphanumeric characters, '-', '_' or '.', and must start and "
                    "end with an alphanumeric character",
                    v,
                )
            )
    for k, v in (meta.get("annotations") or {}).items():
        if not isinstance(v, str):
            errs.append(
                FieldError(f"metadata.annotations[{k}]", "Invalid value", "must be a string", v)
            )
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for need in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(need):
                errs.append(FieldError(f"metadata.ownerReferences[{i}].{need}", "Required value"))
    if sum(1 for r in meta.get("ownerReferences") or [] if r.get("controller")) > 1:
        errs.append(
            FieldError(
                "metadata.ownerReferences",
                "Invalid value",
                "Only one reference can have Controller set to true",
                "",
            )
        )
    return errs


def qos_class(pod: JSON) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    if any(
        (c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits")
        for c in containers
    ):
        return "Burstable"
    return "BestEffort"


def strip_status_on_create(res: Resource, obj: JSON) -> None:
    """What the real strategies reset when an object is created."""
    if res.plural == "services":
        obj["status"] = {"loadBalancer": {}}
    elif res.plural == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj)}
    elif res.plural == "namespaces":
        obj["status"] = {"phase": "Active"}
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
    elif res.plural == "deployments":
        obj["status"] = {}
    elif res.plural == "daemonsets":
        # The counters the real type always serializes; clients require them.
        obj["status"] = {
            "currentNumberScheduled": 0,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": 0,
            "numberReady": 0,
        }
    elif res.is_custom and "status" in res.subresources:
        obj.pop("status", None)


def apply_kind_defaults(res: Resource, obj: JSON) -> None:
    if res.plural == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if string_data:
            data = dict(obj.get("data") or {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj["data"] = data
    elif res.plural == "deployments":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
        )
    elif res.plural == "daemonsets":
        spec = obj.setdefault("spec", {})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault(
            "updateStrategy",
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
        )
    elif res.plural == "pods":
        spec = obj.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("serviceAccountName", "default")
    elif res.plural == "serviceaccounts":
        pass


def check_kind(res: Resource, obj: JSON, old: JSON | None) -> list[FieldError]:
    """Per-kind validation beyond schemas (the subset our product and tests rely on)."""
    errs: list[FieldError] = []
    if res.plural in ("deployments", "daemonsets"):
        spec = obj.get("spec") or {}
        sel = spec.get("selector")
        if not sel:
            errs.append(FieldError("spec.selector", "Required value"))
        tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        for k, v in ((sel or {}).get("matchLabels") or {}).items():
            if tmpl_labels.get(k) != v:
                errs.append(
                    FieldError(
                        "spec.template.metadata.labels",
                        "Invalid value",
                        "`selector` does not match template `labels`",
                        tmpl_labels,
                    )
                )
                break
        if old is not None and sel != (old.get("spec") or {}).get("selector"):
            errs.append(FieldError("spec.selector", "Invalid value", "field is immutable", sel))
    elif res.plural == "pods":
        containers = (obj.get("spec") or {}).get("containers")
        if not containers:
            errs.append(FieldError("spec.containers", "Required value"))
        if (
            old is not None
            and (obj.get("spec") or {}).get("nodeName") != (old.get("spec") or {}).get("nodeName")
            and (old.get("spec") or {}).get("nodeName")
        ):
            errs.append(
                FieldError(
                    "spec",
                    "Forbidden",
                    "pod updates may not change fields other than `spec.containers[*].image`, ...",
                )
            )
    elif res.plural in ("secrets", "configmaps"):
        if (
            old is not None
            and old.get("immutable")
            and (
                obj.get("data") != old.get("data") or obj.get("binaryData") != old.get("binaryData")
            )
        ):
            errs.append(
                FieldError("data", "Forbidden", "field is immutable when `immutable` is set")
            )
    elif res.plural == "endpointslices":
        if obj.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
            errs.append(
                FieldError(
                    "addressType",
                    "Unsupported value",
                    'supported values: "FQDN", "IPv4", "IPv6"',
                    obj.get("addressType"),
                )
            )
    elif res.plural in ("rolebindings", "clusterrolebindings"):
        ref = obj.get("roleRef") or {}
        if not ref.get("kind") or not ref.get("name"):
            errs.append(FieldError("roleRef", "Required value"))
        if old is not None and ref != old.get("roleRef"):
            errs.append(FieldError("roleRef", "Invalid value", "cannot change roleRef", ref))
    elif res.plural == "leases":
        pass
    return errs


def spec_changed(a: JSON, b: JSON) -> bool:
    """Whether anything but metadata and status differs (what bumps metadata.generation)."""
    keys = (set(a) | set(b)) - {"metadata", "status", "apiVersion", "kind"}
    return any(not same_json(a.get(k), b.get(k)) for k in keys)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON documents: Python's `==` takes 1 for 1.0 and for True, a client decoding
    the JSON does not (so such a change is a change: it is stored and bumps the generation).
    Key order does not matter, as for any JSON object."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
