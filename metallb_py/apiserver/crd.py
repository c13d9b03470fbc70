"""CustomResourceDefinitions: checking a CRD, serving its versions, and the per-version schema,
printer columns and status subresource of its custom resources."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from metallb_py.apiserver.errors import FieldError
from metallb_py.apiserver.resources import Resource
from metallb_py.objects import JSON

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class CrdVersion:
    name: str
    served: bool
    storage: bool
    schema: JSON | None
    status: bool
    printer_columns: list[JSON] | None
    selectable_fields: list[str] = field(default_factory=list)


@dataclass
class CrdInfo:
    name: str
    uid: str
    group: str
    plural: str
    singular: str
    kind: str
    list_kind: str
    namespaced: bool
    short_names: list[str]
    categories: list[str]
    versions: list[CrdVersion]
    conversion: JSON

    @property
    def storage_version(self) -> str:
        return next(v.name for v in self.versions if v.storage)

    def version(self, name: str) -> CrdVersion | None:
        return next((v for v in self.versions if v.name == name), None)


def check_crd(crd: JSON) -> list[FieldError]:
    """The rules a CRD must meet before it is stored (a subset of the real server's)."""
    errs: list[FieldError] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    plural = names.get("plural", "")
    name = (crd.get("metadata") or {}).get("name", "")
    if not group or not _DNS_SUBDOMAIN.match(group) or "." not in group:
        errs.append(
            FieldError(
                "spec.group", "Invalid value", "should be a domain with at least one dot", group
            )
        )
    if not plural or not _DNS_LABEL.match(plural):
        errs.append(
            FieldError(
                "spec.names.plural",
                "Invalid value",
                "a lowercase RFC 1123 label is required",
                plural,
            )
        )
    if not names.get("kind"):
        errs.append(FieldError("spec.names.kind", "Required value"))
    if not names.get("listKind") and names.get("kind"):
        names["listKind"] = names["kind"] + "List"
    if name != f"{plural}.{group}":
        errs.append(
            FieldError(
                "metadata.name", "Invalid value", 'must be spec.names.plural+"."+spec.group', name
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append(
            FieldError(
                "spec.scope",
                "Unsupported value",
                'supported values: "Cluster", "Namespaced"',
                spec.get("scope"),
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        errs.append(
            FieldError(
                "spec.versions",
                "Invalid value",
                "must have exactly one version marked as storage version",
                versions,
            )
        )
    storage = [v for v in versions if v.get("storage")]
    if versions and len(storage) != 1:
        errs.append(
            FieldError(
                "spec.versions",
                "Invalid value",
                "must have exactly one version marked as storage version",
                [v.get("name") for v in storage],
            )
        )
    seen: set[str] = set()
    for i, v in enumerate(versions):
        if v.get("name") in seen:
            errs.append(FieldError(f"spec.versions[{i}].name", "Duplicate value", "", v["name"]))
        seen.add(v.get("name", ""))
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            errs.append(
                FieldError(
                    f"spec.versions[{i}].schema.openAPIV3Schema",
                    "Required value",
                    "schemas are required",
                )
            )
        elif schema.get("type") != "object":
            errs.append(
                FieldError(
                    f"spec.versions[{i}].schema.openAPIV3Schema.type",
                    "Unsupported value",
                    'supported values: "object"',
                    schema.get("type"),
                )
            )
    conv = spec.get("conversion") or {"strategy": "None"}
    if conv.get("strategy", "None") not in ("None", "Webhook"):
        errs.append(
            FieldError(
                "spec.conversion.strategy",
                "Unsupported value",
                'supported values: "None", "Webhook"',
                conv.get("strategy"),
            )
        )
    return errs


def default_crd(crd: JSON) -> None:
    spec = crd.setdefault("spec", {})
    spec.setdefault("conversion", {"strategy": "None"})
    for v in spec.get("versions") or []:
        v.setdefault("served", True)
        v.setdefault("storage", False)
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")


def info_of(crd: JSON) -> CrdInfo:
    spec = crd["spec"]
    names = spec["names"]
    versions = []
    for v in spec["versions"]:
        sub = v.get("subresources") or {}
        versions.append(
            CrdVersion(
                name=v["name"],
                served=bool(v.get("served", True)),
                storage=bool(v.get("storage")),
                schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                status="status" in sub,
                printer_columns=v.get("additionalPrinterColumns"),
                selectable_fields=[
                    f.get("jsonPath", "").lstrip(".") for f in v.get("selectableFields") or []
                ],
            )
        )
    return CrdInfo(
        name=crd["metadata"]["name"],
        uid=crd["metadata"].get("uid", ""),
        group=spec["group"],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        list_kind=names.get("listKind") or names["kind"] + "List",
        namespaced=spec.get("scope") == "Namespaced",
        short_names=names.get("shortNames") or [],
        categories=names.get("categories") or [],
        versions=versions,
        conversion=spec.get("conversion") or {"strategy": "None"},
    )


def resources_of(info: CrdInfo) -> list[Resource]:
    out = []
    for v in info.versions:
        if not v.served:
            continue
        out.append(
            Resource(
                info.group,
                v.name,
                info.plural,
                info.kind,
                info.namespaced,
                singular=info.singular,
                short_names=list(info.short_names),
                categories=list(info.categories),
                subresources=frozenset({"status"}) if v.status else frozenset(),
                store_group=info.group,
                store_plural=info.plural,
                storage_version=info.storage_version,
                crd_name=info.name,
                list_kind=info.list_kind,
            )
        )
    return out


def established_status(crd: JSON, now: str) -> JSON:
    spec = crd["spec"]
    old = crd.get("status") or {}
    stored = list(old.get("storedVersions") or [])
    storage = next((v["name"] for v in spec["versions"] if v.get("storage")), None)
    if storage and storage not in stored:
        stored.append(storage)
    names = dict(spec["names"])
    cond = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "reason": "NoConflicts",
            "message": "no conflicts found",
            "lastTransitionTime": now,
        },
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": now,
        },
    ]
    return {"acceptedNames": names, "conditions": cond, "storedVersions": stored}
