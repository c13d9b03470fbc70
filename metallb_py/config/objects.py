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
        return _string_map(self.raw, "labels")

    @property
    def annotations(self) -> dict[str, str]:
        return _string_map(self.raw, "annotations")

    @property
    def age(self) -> tuple[str, str, int]:
        """Conflict order: the older object (creationTimestamp, then name) wins."""
        return (self.created or "", self.name, self.index)

    @property
    def is_metallb(self) -> bool:
        return self.group == GROUP


def _string_map(raw: dict[str, Any], key: str) -> dict[str, str]:
    """metadata.labels or .annotations; keys and values that are not scalars are left out (the
    parser reports them), so a hostile nested value is never turned into text."""
    meta = raw.get("metadata") or {}
    items = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(items, dict):
        return {}
    return {
        str(k): str(v)
        for k, v in items.items()
        if isinstance(k, str) and isinstance(v, SCALARS) and not _huge(v)
    }


SCALARS = (str, int, float, bool)


def _huge(v: object) -> bool:
    return isinstance(v, int) and v.bit_length() > 256


def too_deep(value: Any, limit: int) -> str | None:
    """The field path (bounded) at which `value` nests deeper than `limit` levels, or None.
    Iterative, so it is safe on anything json or YAML could build (shared sub-objects included)."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if depth > limit:
            return path if len(path) <= 120 else path[:117] + "..."
        if isinstance(item, dict):
            for k, v in item.items():
                if isinstance(v, dict | list):
                    name = str(k)[:40] if isinstance(k, str) else "<key>"
                    stack.append((v, depth + 1, f"{path}.{name}" if path else name))
        elif isinstance(item, list):
            for i, v in enumerate(item):
                if isinstance(v, dict | list):
                    stack.append((v, depth + 1, f"{path}[{i}]"))
    return None


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
