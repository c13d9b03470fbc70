"""Writing what the operator renders: server-side apply with our field manager, ownership
(ownerReference for namespaced objects, a label for every object so the operator can watch and
clean up cluster-scoped ones), the create-only memberlist Secret, and deletion of the
cluster-scoped objects an ownerReference cannot cover.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from metallb_py.controller.memberlist_secret import secret_object
from metallb_py.kube.rest import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    CONFIGMAPS,
    DAEMONSETS,
    DEPLOYMENTS,
    METALLBS,
    NETWORKPOLICIES,
    ROLEBINDINGS,
    ROLES,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    VALIDATINGWEBHOOKCONFIGURATIONS,
    ApiError,
    Resource,
    Rest,
)
from metallb_py.objects import JSON

FIELD_MANAGER = "metallb-operator"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
FINALIZER = "metallb.io/operator-cleanup"
# On every object we apply, so informers and the cleanup can select exactly ours.
OWNER_LABEL = "metallb.io/operator-instance"
MEMBERLIST_SECRET = "memberlist"

SERVICEMONITORS = Resource("monitoring.coreos.com", "v1", "servicemonitors", kind="ServiceMonitor")
PODMONITORS = Resource("monitoring.coreos.com", "v1", "podmonitors", kind="PodMonitor")

KNOWN: tuple[Resource, ...] = (
    DEPLOYMENTS,
    DAEMONSETS,
    SERVICEACCOUNTS,
    SERVICES,
    CONFIGMAPS,
    SECRETS,
    ROLES,
    ROLEBINDINGS,
    CLUSTERROLES,
    CLUSTERROLEBINDINGS,
    VALIDATINGWEBHOOKCONFIGURATIONS,
    NETWORKPOLICIES,
    SERVICEMONITORS,
    PODMONITORS,
)
_BY_KIND = {(r.api_version, r.kind): r for r in KNOWN}
# What we watch so that an edit or deletion is undone (namespaced kinds by owner label).
WATCHED_NAMESPACED = (DEPLOYMENTS, DAEMONSETS, SERVICEACCOUNTS, SERVICES, ROLES, ROLEBINDINGS)
CLUSTER_SCOPED = (CLUSTERROLES, CLUSTERROLEBINDINGS, VALIDATINGWEBHOOKCONFIGURATIONS)


class UnknownKind(Exception):
    """The renderer produced a kind this module does not know how to address."""


def resource_for(obj: Mapping[str, Any]) -> Resource:
    key = (str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
    res = _BY_KIND.get(key)
    if res is None:
        raise UnknownKind(f"cannot apply {key[0]} {key[1]}: unknown resource")
    return res


def object_path(obj: Mapping[str, Any]) -> str:
    res = resource_for(obj)
    meta = obj.get("metadata") or {}
    return res.path(meta.get("namespace") if res.namespaced else None, meta.get("name"))


def describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


def owner_reference(instance: Mapping[str, Any]) -> JSON:
    meta = instance.get("metadata") or {}
    return {
        "apiVersion": METALLBS.api_version,
        "kind": METALLBS.kind,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def decorate(obj: Mapping[str, Any], instance: Mapping[str, Any], namespace: str) -> JSON:
    """A copy of a rendered object carrying our label and, when namespaced, the instance as its
    controlling owner (garbage collection removes it with the instance)."""
    out = copy.deepcopy(dict(obj))
    res = resource_for(out)
    meta = out.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    labels[OWNER_LABEL] = str((instance.get("metadata") or {}).get("name") or "")
    if res.namespaced:
        meta.setdefault("namespace", namespace)
        meta["ownerReferences"] = [owner_reference(instance)]
    else:
        meta.pop("namespace", None)
    return out


async def apply(rest: Rest, obj: JSON) -> JSON:
    """Server-side apply (forced, our field manager): the server writes nothing when our fields
    already hold these values. A server without SSA (415) gets create-or-merge-patch, which is
    also a no-op on an unchanged object but cannot remove a field we stopped rendering."""
    path = object_path(obj)
    query = {"fieldManager": FIELD_MANAGER, "force": True}
    try:
        return await rest.request("PATCH", path, query, body=obj, content_type=APPLY_PATCH)
    except ApiError as exc:
        if exc.status != 415:
            raise
    try:
        return await rest.request("PATCH", path, {"fieldManager": FIELD_MANAGER}, obj, MERGE_PATCH)
    except ApiError as exc:
        if not exc.not_found:
            raise
    res = resource_for(obj)
    ns = (obj.get("metadata") or {}).get("namespace") if res.namespaced else None
    return await rest.request("POST", res.path(ns), {"fieldManager": FIELD_MANAGER}, obj)


def memberlist_secret(instance: Mapping[str, Any], namespace: str) -> JSON:
    """The speakers' membership key, shaped like MetalLB's controller makes it."""
    meta = instance.get("metadata") or {}
    return secret_object(
        MEMBERLIST_SECRET,
        namespace,
        [owner_reference(instance)],
        labels={OWNER_LABEL: str(meta.get("name") or "")},
    )


async def create_memberlist_secret(rest: Rest, instance: Mapping[str, Any], namespace: str) -> bool:
    """Create the Secret (never re-applied: a key in use must not change); True if created."""
    try:
        await rest.create(SECRETS.path(namespace), memberlist_secret(instance, namespace))
    except ApiError as exc:
        if exc.conflict:  # it exists (our cache was behind): theirs stands
            return False
        raise
    return True


async def delete_objects(rest: Rest, objs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Delete each object (already gone is fine); returns what was deleted."""
    deleted: list[str] = []
    for obj in objs:
        try:
            await rest.delete(object_path(obj))
        except ApiError as exc:
            if exc.not_found:
                continue
            raise
        deleted.append(describe(obj))
    return deleted
