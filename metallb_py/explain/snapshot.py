"""Read what `kubectl metallb` explains from the API, once, into plain values.

Only reads (get and list), so a user with a read-only role can run it. Optional resources (a
status CRD not installed, Secrets the user may not read) come back empty instead of failing:
the explanation then says less, but never lies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from metallb_py.kube.client import ClientConfigError, load_configuration
from metallb_py.kube.k8s import ApiClient
from metallb_py.kube.rest import (
    ADDRESSPOOLS,
    BFDPROFILES,
    BGPADVERTISEMENTS,
    BGPPEERS,
    BGPSESSIONSTATES,
    COMMUNITIES,
    CONFIGURATIONSTATES,
    ENDPOINTSLICES,
    EVENTS,
    IPADDRESSPOOLS,
    L2ADVERTISEMENTS,
    NAMESPACES,
    NODES,
    PODS,
    SECRETS,
    SERVICEBGPSTATUSES,
    SERVICEL2STATUSES,
    SERVICES,
    ApiError,
    Resource,
    Rest,
)
from metallb_py.objects import JSON
from metallb_py.speaker.resources import LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE

CONFIG_RESOURCES = (
    IPADDRESSPOOLS,
    ADDRESSPOOLS,
    L2ADVERTISEMENTS,
    BGPADVERTISEMENTS,
    BGPPEERS,
    BFDPROFILES,
    COMMUNITIES,
)
SPEAKER_SELECTOR = "component=speaker"  # the speaker DaemonSet's Pods (manifests and operator)
PAGE = 500  # items per list request


# The one way a client finds its API server (kube/client.py); its error names the source tried.
ConnectError = ClientConfigError


@dataclass
class Target:
    """How to reach the cluster: the kubeconfig (file or `KUBECONFIG` list) and context, else
    the in-cluster service account."""

    kubeconfig: str | None = None
    context: str | None = None


async def connect(target: Target) -> tuple[Rest, str]:
    """A read client and the context's default namespace ("default" if it names none), found
    as kubectl finds them: `--kubeconfig`, else `$KUBECONFIG`, else ~/.kube/config, else the
    in-cluster configuration."""
    configuration, namespace = await load_configuration(
        target.kubeconfig, context=target.context, kubectl_order=True
    )
    return Rest(ApiClient(configuration)), namespace


async def list_all(
    rest: Rest, resource: Resource, namespace: str | None = None, **query: str
) -> list[JSON]:
    """Every object (paged), each with its kind and apiVersion set; [] if the resource or the
    namespace does not exist or may not be read."""
    out: list[JSON] = []
    cont: str | None = None
    while True:
        params: dict[str, Any] = {"limit": PAGE, **query}
        if cont:
            params["continue"] = cont
        try:
            page = await rest.get(resource.path(namespace), params)
        except ApiError as exc:
            if exc.status in (403, 404):
                return out
            raise
        for item in page.get("items") or []:
            item.setdefault("kind", resource.kind)
            item.setdefault("apiVersion", resource.api_version)
            out.append(item)
        cont = (page.get("metadata") or {}).get("continue")
        if not cont:
            return out


def key_of(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def name_of(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


@dataclass
class Snapshot:
    """The cluster state one explanation is computed from."""

    namespace: str  # where MetalLB runs
    services: dict[str, JSON] = field(default_factory=dict)  # "ns/name" -> Service
    namespaces: dict[str, JSON] = field(default_factory=dict)
    config_objects: list[JSON] = field(default_factory=list)
    secrets_readable: bool = True
    nodes: dict[str, JSON] = field(default_factory=dict)
    slices: dict[str, list[JSON]] = field(default_factory=dict)  # service key -> its slices
    speaker_pods: list[JSON] = field(default_factory=list)
    l2_statuses: list[JSON] = field(default_factory=list)
    bgp_statuses: list[JSON] = field(default_factory=list)
    sessions: list[JSON] = field(default_factory=list)
    config_states: list[JSON] = field(default_factory=list)
    events: dict[str, list[JSON]] = field(default_factory=dict)  # service key -> its events

    def service_objects(self, kind: str, key: str) -> list[JSON]:
        """The ServiceL2Status or ServiceBGPStatus objects of one service."""
        ns, _, name = key.partition("/")
        objs = self.l2_statuses if kind == "l2" else self.bgp_statuses
        out = []
        for obj in objs:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            status = obj.get("status") or {}
            obj_ns = labels.get(LABEL_SERVICE_NAMESPACE) or status.get("serviceNamespace")
            obj_name = labels.get(LABEL_SERVICE_NAME) or status.get("serviceName")
            if obj_ns == ns and obj_name == name:
                out.append(obj)
        return out


async def read(rest: Rest, namespace: str, explain: Sequence[str] = ()) -> Snapshot:
    """Everything for the overview; plus EndpointSlices and Events of the services in
    `explain` (keys "ns/name") and of those sharing their IPs."""
    snap = Snapshot(namespace)
    lists = await asyncio.gather(
        list_all(rest, SERVICES),
        list_all(rest, NAMESPACES),
        list_all(rest, NODES),
        list_all(rest, PODS, namespace, labelSelector=SPEAKER_SELECTOR),
        list_all(rest, SERVICEL2STATUSES, namespace),
        list_all(rest, SERVICEBGPSTATUSES, namespace),
        list_all(rest, BGPSESSIONSTATES, namespace),
        list_all(rest, CONFIGURATIONSTATES, namespace),
        *(list_all(rest, r, namespace) for r in CONFIG_RESOURCES),
    )
    services, namespaces, nodes, pods, l2s, bgps, sessions, states, *config = lists
    snap.services = {key_of(s): s for s in services}
    snap.namespaces = {name_of(n): n for n in namespaces}
    snap.nodes = {name_of(n): n for n in nodes}
    snap.speaker_pods = pods
    snap.l2_statuses, snap.bgp_statuses, snap.sessions = l2s, bgps, sessions
    snap.config_states = states
    snap.config_objects = [obj for objs in config for obj in objs]
    # Secrets only resolve BGP passwords; a read-only user may not see them.
    try:
        page = await rest.get(
            SECRETS.path(namespace), {"fieldSelector": "type=kubernetes.io/basic-auth"}
        )
        for item in page.get("items") or []:
            item.setdefault("kind", "Secret")
            item.setdefault("apiVersion", "v1")
            snap.config_objects.append(item)
    except ApiError:
        snap.secrets_readable = False
    wanted = set(explain)
    for key in explain:
        wanted |= sharing_group(snap, key)
    for key in sorted(wanted):
        ns, _, name = key.partition("/")
        slices, events = await asyncio.gather(
            list_all(rest, ENDPOINTSLICES, ns, labelSelector=f"kubernetes.io/service-name={name}"),
            list_all(rest, EVENTS, ns, fieldSelector=f"involvedObject.name={name}"),
        )
        snap.slices[key] = slices
        snap.events[key] = [
            e
            for e in events
            if (e.get("involvedObject") or {}).get("kind") in (None, "", "Service")
        ]
    return snap


def sharing_group(snap: Snapshot, key: str) -> set[str]:
    """The services holding any of `key`'s ingress IPs (itself included)."""
    svc = snap.services.get(key)
    if svc is None:
        return set()
    mine = set(ingress(svc))
    return {k for k, s in snap.services.items() if mine & set(ingress(s))} | {key}


def ingress(svc: JSON) -> list[str]:
    items = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(e["ip"]) for e in items if isinstance(e, dict) and e.get("ip")]
