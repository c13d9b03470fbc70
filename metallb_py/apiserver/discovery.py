"""Discovery documents (/api, /apis, /api/v1, /apis/G/V) and OpenAPI v2/v3.

kubectl reads OpenAPI v3 to learn that the server validates fields itself (the `fieldValidation`
query parameter on each kind's PATCH operation), so its default client-side validation defers to
ours; `kubectl explain` reads the schemas. Built-in kinds do not advertise strategic-merge patch in
OpenAPI v3, which makes `kubectl apply` compute its patch from its own compiled-in types, whose
merge keys match what patch.py applies.
"""

from __future__ import annotations

import hashlib
import json

from metallb_py.apiserver import builtin_schemas
from metallb_py.apiserver.registry import Registry
from metallb_py.apiserver.resources import Resource
from metallb_py.objects import JSON

VERSION_INFO = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-metallb-py",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
}


def api_versions(server_address: str) -> JSON:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(reg: Registry, group: str) -> JSON:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in reg.group_versions[group]]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list(reg: Registry) -> JSON:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(reg, g) for g in reg.groups() if g],
    }


def api_group(reg: Registry, group: str) -> JSON | None:
    if group not in reg.group_versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(reg, group)}


def _storage_hash(r: Resource) -> str:
    return hashlib.sha256(f"{r.store_key}/{r.storage_version}".encode()).hexdigest()[:16]


def resource_entries(r: Resource) -> list[JSON]:
    main: JSON = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs,
        "storageVersionHash": _storage_hash(r),
    }
    if r.short_names:
        main["shortNames"] = r.short_names
    if r.categories:
        main["categories"] = r.categories
    out = [main]
    for sub in sorted(r.subresources):
        entry: JSON = {
            "name": f"{r.plural}/{sub}",
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "patch", "update"],
        }
        if sub == "token":
            entry.update(
                kind="TokenRequest", group="authentication.k8s.io", version="v1", verbs=["create"]
            )
        elif sub == "finalize":
            entry["verbs"] = ["update"]
        out.append(entry)
    return out


def api_resource_list(reg: Registry, group: str, version: str) -> JSON | None:
    resources = reg.resources(group, version)
    if not resources:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [e for r in resources for e in resource_entries(r)],
    }


# -- OpenAPI --------------------------------------------------------------------------------------

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"


def _meta_schemas() -> dict[str, JSON]:
    s: JSON = {"type": "string"}
    return {
        OBJECT_META: {
            "description": "Standard object metadata.",
            "type": "object",
            "properties": {
                "name": {**s, "description": "Name must be unique within a namespace."},
                "generateName": {**s, "description": "Prefix for a server-generated name."},
                "namespace": {**s, "description": "The namespace of a namespaced object."},
                "uid": s,
                "resourceVersion": {
                    **s,
                    "description": "Opaque version for concurrency and watches.",
                },
                "generation": {"type": "integer", "format": "int64"},
                "creationTimestamp": {**s, "format": "date-time"},
                "deletionTimestamp": {**s, "format": "date-time"},
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
                "labels": {"type": "object", "additionalProperties": s},
                "annotations": {"type": "object", "additionalProperties": s},
                "finalizers": {"type": "array", "items": s},
                "ownerReferences": {"type": "array", "items": {"type": "object"}},
                "managedFields": {"type": "array", "items": {"type": "object"}},
            },
        },
        LIST_META: {
            "type": "object",
            "properties": {
                "resourceVersion": s,
                "continue": s,
                "remainingItemCount": {"type": "integer"},
            },
        },
    }


def schema_name(r: Resource) -> str:
    if r.is_custom:
        rev = ".".join(reversed(r.group.split(".")))
        return f"{rev}.{r.version}.{r.kind}"
    pkg = {
        "": "core",
        "apps": "apps",
        "events.k8s.io": "events",
        "discovery.k8s.io": "discovery",
        "coordination.k8s.io": "coordination",
        "rbac.authorization.k8s.io": "rbac",
        "admissionregistration.k8s.io": "admissionregistration",
    }.get(r.group)
    if r.group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{r.version}.{r.kind}"
    return f"io.k8s.api.{pkg}.{r.version}.{r.kind}"


def _gvk(r: Resource) -> JSON:
    return {"group": r.group, "version": r.version, "kind": r.kind}


def kind_schema(r: Resource, crd_schema: JSON | None) -> JSON:
    if crd_schema is not None:
        body = json.loads(json.dumps(crd_schema))
    else:
        body = json.loads(json.dumps(builtin_schemas.top_level(r.kind, r.group)))
        body["description"] = f"{r.kind} ({r.api_version}), served by metallb-py apiserver."
    body.setdefault("type", "object")
    props = body.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "Versioned schema of this object."}
    props["kind"] = {"type": "string", "description": "REST resource this object represents."}
    props["metadata"] = {
        "allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}],
        "description": "Standard object's metadata.",
    }
    body["x-kubernetes-group-version-kind"] = [_gvk(r)]
    return body


def _op(r: Resource, action: str, ref: str, *, patch: bool = False) -> JSON:
    op: JSON = {
        "operationId": f"{action}{r.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(r),
        "parameters": [],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}
        },
    }
    if action in ("post", "put", "patch"):
        op["parameters"] = [
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        ]
        if patch:
            op["parameters"].append({"name": "force", "in": "query", "schema": {"type": "boolean"}})
    if patch:
        content = {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
        }
        op["requestBody"] = {"content": content, "required": True}
    elif action in ("post", "put"):
        op["requestBody"] = {
            "content": {"application/json": {"schema": {"$ref": ref}}},
            "required": True,
        }
    return op


def openapi_v3_doc(
    reg: Registry, group: str, version: str, crd_schemas: dict[tuple[str, str, str], JSON]
) -> JSON | None:
    resources = reg.resources(group, version)
    if not resources:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    schemas: dict[str, JSON] = _meta_schemas()
    paths: dict[str, JSON] = {}
    for r in resources:
        name = schema_name(r)
        schemas[name] = kind_schema(r, crd_schemas.get((r.group, r.version, r.kind)))
        ref = f"#/components/schemas/{name}"
        base = (
            f"{prefix}/namespaces/{{namespace}}/{r.plural}"
            if r.namespaced
            else (f"{prefix}/{r.plural}")
        )
        params = (
            [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}]
            if r.namespaced
            else []
        )
        paths[base] = {
            "parameters": params,
            "get": _op(r, "list", ref),
            "post": _op(r, "post", ref),
        }
        item = {
            "parameters": [
                *params,
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "get": _op(r, "get", ref),
            "put": _op(r, "put", ref),
            "patch": _op(r, "patch", ref, patch=True),
            "delete": _op(r, "delete", ref),
        }
        paths[f"{base}/{{name}}"] = item
        for sub in r.subresources & {"status"}:
            paths[f"{base}/{{name}}/{sub}"] = {
                "parameters": item["parameters"],
                "get": _op(r, "get", ref),
                "put": _op(r, "put", ref),
                "patch": _op(r, "patch", ref, patch=True),
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (metallb-py apiserver)", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _hash(doc: JSON) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()


def openapi_v3_root(reg: Registry, docs: dict[str, JSON]) -> JSON:
    return {
        "paths": {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(doc)}"}
            for key, doc in docs.items()
        }
    }


def openapi_v2(reg: Registry, crd_schemas: dict[tuple[str, str, str], JSON]) -> JSON:
    definitions: dict[str, JSON] = {}
    for r in reg.by_gvr.values():
        s = kind_schema(r, crd_schemas.get((r.group, r.version, r.kind)))
        s["properties"]["metadata"] = {"$ref": f"#/definitions/{OBJECT_META}"}
        definitions[schema_name(r)] = s
    definitions.update(_meta_schemas())
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes (metallb-py apiserver)", "version": "v1.37.0"},
        "paths": {},
        "definitions": definitions,
    }


# -- aggregated discovery (apidiscovery.k8s.io/v2), what kubectl asks for first -------------------

AGGREGATED_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    return "as=APIGroupDiscoveryList" in accept and "v=v2" in accept


def _discovery_resource(r: Resource) -> JSON:
    kind = {"group": r.group, "version": r.version, "kind": r.kind}
    entry: JSON = {
        "resource": r.plural,
        "responseKind": kind,
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": r.verbs,
    }
    if r.short_names:
        entry["shortNames"] = r.short_names
    if r.categories:
        entry["categories"] = r.categories
    subs = []
    for sub in sorted(r.subresources):
        s: JSON = {"subresource": sub, "responseKind": kind, "verbs": ["get", "patch", "update"]}
        if sub == "token":
            s["responseKind"] = {
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
            }
            s["verbs"] = ["create"]
        elif sub == "finalize":
            s["verbs"] = ["update"]
        subs.append(s)
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(reg: Registry, legacy: bool) -> JSON:
    """/api (legacy=True, the core group) or /apis as one APIGroupDiscoveryList."""
    items = []
    for group in reg.groups():
        if (group == "") != legacy:
            continue
        versions = [
            {
                "version": v,
                "freshness": "Current",
                "resources": [_discovery_resource(r) for r in reg.resources(group, v)],
            }
            for v in reg.group_versions[group]
        ]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
