"""Structural schemas of the built-in types, used to report and drop unknown fields (what the
real server's strict decoding does) and to describe the types in OpenAPI.

Top-level fields are listed for every kind; the Service spec, whose fields our product reads, is
described in full. Other nested objects preserve whatever they are given.
"""

from __future__ import annotations

import functools
from typing import Any

from metallb_py.apiserver.resources import CORE_TO_EVENTS

Schema = dict[str, Any]

ANY: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
STRMAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}


def _list(items: Schema) -> Schema:
    return {"type": "array", "items": items}


SERVICE_PORT: Schema = {
    "type": "object",
    "properties": {
        "name": STR,
        "protocol": STR,
        "appProtocol": STR,
        "port": INT,
        "targetPort": {"x-kubernetes-int-or-string": True},
        "nodePort": INT,
    },
}
SERVICE_SPEC: Schema = {
    "type": "object",
    "properties": {
        "ports": _list(SERVICE_PORT),
        "selector": STRMAP,
        "clusterIP": STR,
        "clusterIPs": _list(STR),
        "type": STR,
        "externalIPs": _list(STR),
        "sessionAffinity": STR,
        "loadBalancerIP": STR,
        "loadBalancerSourceRanges": _list(STR),
        "externalName": STR,
        "externalTrafficPolicy": STR,
        "healthCheckNodePort": INT,
        "publishNotReadyAddresses": BOOL,
        "sessionAffinityConfig": ANY,
        "ipFamilies": _list(STR),
        "ipFamilyPolicy": STR,
        "allocateLoadBalancerNodePorts": BOOL,
        "loadBalancerClass": STR,
        "internalTrafficPolicy": STR,
        "trafficDistribution": STR,
    },
}
INGRESS: Schema = {
    "type": "object",
    "properties": {"ip": STR, "hostname": STR, "ipMode": STR, "ports": _list(ANY)},
}
SERVICE_STATUS: Schema = {
    "type": "object",
    "properties": {
        "loadBalancer": {"type": "object", "properties": {"ingress": _list(INGRESS)}},
        "conditions": _list(ANY),
    },
}

_TOP: dict[str, dict[str, Schema]] = {
    "Service": {"spec": SERVICE_SPEC, "status": SERVICE_STATUS},
    "Endpoints": {"subsets": _list(ANY)},
    "EndpointSlice": {"addressType": STR, "endpoints": _list(ANY), "ports": _list(ANY)},
    "Secret": {"data": STRMAP, "stringData": STRMAP, "type": STR, "immutable": BOOL},
    "ConfigMap": {"data": STRMAP, "binaryData": STRMAP, "immutable": BOOL},
    "ServiceAccount": {
        "secrets": _list(ANY),
        "imagePullSecrets": _list(ANY),
        "automountServiceAccountToken": BOOL,
    },
    "Role": {"rules": _list(ANY)},
    "ClusterRole": {"rules": _list(ANY), "aggregationRule": ANY},
    "RoleBinding": {"subjects": _list(ANY), "roleRef": ANY},
    "ClusterRoleBinding": {"subjects": _list(ANY), "roleRef": ANY},
    "ValidatingWebhookConfiguration": {"webhooks": _list(ANY)},
}
_CORE_EVENT = {
    k: ANY
    if k in ("involvedObject", "source", "series", "related")
    else (INT if k == "count" else STR)
    for k in (
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "series",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    )
}
# The same fields under their events.k8s.io/v1 names.
_NEW_EVENT = {CORE_TO_EVENTS.get(k, k): schema for k, schema in _CORE_EVENT.items()}


@functools.cache
def top_level(kind: str, group: str) -> Schema:
    """The structural schema of a built-in kind (apiVersion/kind/metadata handled by the walker).
    One shared dict per kind, never to be mutated: the write path compiles it once (`limits`)."""
    if kind == "Event":
        props = _NEW_EVENT if group == "events.k8s.io" else _CORE_EVENT
    else:
        props = _TOP.get(kind, {"spec": ANY, "status": ANY})
    return {"type": "object", "properties": {"apiVersion": STR, "kind": STR, **props}}
