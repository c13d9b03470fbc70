"""The resource types the server serves: built-in ones and those CRDs add at run time.

One `StoreKey` (group + plural) is one table of objects; a type served in several versions (a CRD,
or Event through core/v1 and events.k8s.io/v1) is several `Resource`s over the same table, each
with converters to and from the stored form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from metallb_py.objects import JSON

Converter = Callable[[JSON], JSON]

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class Resource:
    """One served group/version/resource."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    subresources: frozenset[str] = frozenset()
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    # The table this resource is stored in and how objects travel to/from the stored version.
    store_group: str = ""
    store_plural: str = ""
    storage_version: str = ""
    to_storage: Converter | None = None
    from_storage: Converter | None = None
    crd_name: str = ""  # set for custom resources
    list_kind: str = ""

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()
        if not self.store_plural:
            self.store_group, self.store_plural = self.group, self.plural
        if not self.storage_version:
            self.storage_version = self.version
        if not self.list_kind:
            self.list_kind = self.kind + "List"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def store_key(self) -> str:
        return f"{self.store_plural}.{self.store_group}" if self.store_group else self.store_plural

    @property
    def is_custom(self) -> bool:
        return bool(self.crd_name)


def builtin(
    api_version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    *,
    short: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
) -> Resource:
    """A built-in type in one line of the table below."""
    group, _, version = api_version.rpartition("/")
    return Resource(
        group,
        version,
        plural,
        kind,
        namespaced,
        short_names=list(short),
        subresources=frozenset(sub),
        categories=list(cats),
    )


def _in_all(api_version: str, plural: str, kind: str, short: str) -> Resource:
    """A member of the `all` category (`kubectl get all`): namespaced, with a status."""
    return builtin(api_version, plural, kind, True, short=(short,), sub=("status",), cats=("all",))


# events.k8s.io/v1 Event field -> the core/v1 name it is stored under (one store, two APIs).
_EVENTS_TO_CORE = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
CORE_TO_EVENTS = {core: new for new, core in _EVENTS_TO_CORE.items()}


def _renamed_event(obj: JSON, api_version: str, rename: dict[str, str]) -> JSON:
    out: JSON = {"apiVersion": api_version, "kind": "Event", "metadata": obj.get("metadata", {})}
    for key, value in obj.items():
        if key not in ("apiVersion", "kind", "metadata"):
            out[rename.get(key, key)] = value
    return out


def _events_to_core(obj: JSON) -> JSON:
    return _renamed_event(obj, "v1", _EVENTS_TO_CORE)


def _core_to_events(obj: JSON) -> JSON:
    return _renamed_event(obj, "events.k8s.io/v1", CORE_TO_EVENTS)


def builtin_resources() -> list[Resource]:
    """Every built-in type, in the order discovery lists them."""
    rbac = "rbac.authorization.k8s.io/v1"
    r = [
        builtin("v1", "namespaces", "Namespace", False, short=("ns",), sub=("status", "finalize")),
        builtin("v1", "nodes", "Node", False, short=("no",), sub=("status",)),
        _in_all("v1", "pods", "Pod", "po"),
        _in_all("v1", "services", "Service", "svc"),
        builtin("v1", "endpoints", "Endpoints", True, short=("ep",)),
        builtin("v1", "secrets", "Secret", True),
        builtin("v1", "configmaps", "ConfigMap", True, short=("cm",)),
        builtin("v1", "events", "Event", True, short=("ev",)),
        builtin("v1", "serviceaccounts", "ServiceAccount", True, short=("sa",), sub=("token",)),
        builtin("discovery.k8s.io/v1", "endpointslices", "EndpointSlice", True),
        Resource(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            True,
            short_names=["ev"],
            store_group="",
            store_plural="events",
            storage_version="v1",
            to_storage=_events_to_core,
            from_storage=_core_to_events,
        ),
        builtin("coordination.k8s.io/v1", "leases", "Lease", True),
        _in_all("apps/v1", "deployments", "Deployment", "deploy"),
        _in_all("apps/v1", "daemonsets", "DaemonSet", "ds"),
        # Stored and served, not enforced: this server has no pod network. Manifests that carry
        # policies for a real cluster apply here unchanged.
        builtin(
            "networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True, short=("netpol",)
        ),
        builtin(rbac, "roles", "Role", True),
        builtin(rbac, "rolebindings", "RoleBinding", True),
        builtin(rbac, "clusterroles", "ClusterRole", False),
        builtin(rbac, "clusterrolebindings", "ClusterRoleBinding", False),
        builtin(
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            False,
        ),
        builtin(
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short=("crd", "crds"),
            sub=("status",),
        ),
    ]
    return r


# Preferred versions per group for discovery: the first registered version wins.
GROUP_ORDER = [
    "",
    "apps",
    "events.k8s.io",
    "discovery.k8s.io",
    "coordination.k8s.io",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
]
