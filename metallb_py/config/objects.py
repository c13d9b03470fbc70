"""The envelope of a resource: kind, version, name, age, and its ref for problems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metallb_py.config.problems import ObjectRef
from metallb_py.config.schemas import GROUP

DEFAULT_NAMESPACE = "metallb-system"


@dataclass(frozen=True)
class Resource:
    raw: dict[str, Any]
    kind: str
    group: str
    version: str
    name: str
    namespace: str
    created: str
    index: int

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.kind, self.namespace, self.name)

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.raw.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def labels(self) -> dict[str, str]:
        meta = self.raw.get("metadata") or {}
        labels = meta.get("labels") if isinstance(meta, dict) else None
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    @property
    def annotations(self) -> dict[str, str]:
        meta = self.raw.get("metadata") or {}
        ann = meta.get("annotations") if isinstance(meta, dict) else None
        return {str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {}

    @property
    def age(self) -> tuple[str, str, int]:
        """Conflict order: the older object (creationTimestamp, then name) wins."""
        return (self.created or "", self.name, self.index)

    @property
    def is_metallb(self) -> bool:
        return self.group == GROUP


def split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, _, version = api_version.partition("/")
        return group, version
    return "", api_version


def envelope(raw: Any, index: int, default_namespace: str) -> tuple[Resource | None, str]:
    """Wrap a raw object, or say what is wrong with its envelope."""
    if not isinstance(raw, dict):
        return None, f"expected a Kubernetes object (a mapping), got {type(raw).__name__}"
    kind = raw.get("kind")
    api_version = raw.get("apiVersion")
    meta = raw.get("metadata")
    if not isinstance(kind, str) or not kind:
        return None, "missing kind"
    if not isinstance(api_version, str) or not api_version:
        return None, f"{kind}: missing apiVersion"
    if not isinstance(meta, dict):
        return None, f"{kind}: missing metadata"
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return None, f"{kind}: missing metadata.name"
    namespace = meta.get("namespace") or default_namespace
    created = meta.get("creationTimestamp") or ""
    group, version = split_api_version(api_version)
    return (
        Resource(raw, kind, group, version, name, str(namespace), str(created), index),
        "",
    )
