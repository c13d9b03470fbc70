"""OpenAPI v3 schemas of every metallb.io resource: the one source for manifests/crds/ and for the
parser's structural check (missing fields, wrong types, unknown fields, ranges), so the API server
and `metallb-py config validate` reject the same shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GROUP = "metallb.io"
Schema = dict[str, Any]

U32_MAX = 4294967295


def _x(extensions: dict[str, Any]) -> dict[str, Any]:
    """Vendor extensions (x-kubernetes-*) as keyword arguments."""
    return extensions


def _node(base: Schema, desc: str, kw: dict[str, Any]) -> Schema:
    """One schema node, its keys in CRD order: type keys, description, the rest."""
    out = dict(base)
    if desc:
        out["description"] = desc
    out.update(kw)
    return out


def _s(desc: str = "", **kw: Any) -> Schema:
    return _node({"type": "string"}, desc, kw)


def _i(desc: str = "", fmt: str = "int32", **kw: Any) -> Schema:
    return _node({"type": "integer", "format": fmt}, desc, kw)


def _b(desc: str = "", **kw: Any) -> Schema:
    return _node({"type": "boolean"}, desc, kw)


def _arr(items: Schema, desc: str = "", **kw: Any) -> Schema:
    return _node({"type": "array", "items": items}, desc, kw)


def _obj(
    props: dict[str, Schema], desc: str = "", required: list[str] | None = None, **kw: Any
) -> Schema:
    if required:
        kw = {"required": required, **kw}
    return _node({"type": "object", "properties": props}, desc, kw)


def _map(desc: str = "") -> Schema:
    return _node({"type": "object", "additionalProperties": {"type": "string"}}, desc, {})


def label_selector(desc: str = "", legacy: bool = False) -> Schema:
    values = _arr(_s(), "values for In and NotIn; empty for Exists and DoesNotExist")
    if legacy:
        values["minItems"] = 1
    expr = _obj(
        {
            "key": _s("label key"),
            "operator": _s("In, NotIn, Exists or DoesNotExist"),
            "values": values,
        },
        required=["key", "operator"],
    )
    out = _obj(
        {
            "matchLabels": _map("labels that must all be present with these values"),
            "matchExpressions": _arr(expr, "requirements that must all hold"),
        },
        desc or "a Kubernetes label selector",
    )
    if not legacy:
        out["x-kubernetes-map-type"] = "atomic"
    return out


def _selectors(desc: str) -> Schema:
    return _arr(label_selector(), desc)


# ---- kinds -----------------------------------------------------------------------------------

POOL_SPEC = _obj(
    {
        "addresses": _arr(
            _s(),
            "CIDRs (192.0.2.0/24), ranges (192.0.2.10-192.0.2.20) or single addresses",
            minItems=1,
        ),
        "autoAssign": _b(
            "allocate from this pool automatically (false: only on request)", default=True
        ),
        "avoidBuggyIPs": _b("never hand out IPv4 addresses ending in .0 or .255", default=False),
        "serviceAllocation": _obj(
            {
                "priority": _i("lower numbers are tried first; 0 means no priority"),
                "namespaces": _arr(_s(), "only services in these namespaces"),
                "namespaceSelectors": _selectors(
                    "only services in namespaces matching one of these"
                ),
                "serviceSelectors": _selectors("only services matching one of these"),
            },
            "which services may use this pool, and in which order pools are tried",
        ),
    },
    "IP addresses that MetalLB may assign to services",
    required=["addresses"],
)
POOL_STATUS = _obj(
    {
        "assignedIPv4": _i(fmt="int64"),
        "assignedIPv6": _i(fmt="int64"),
        "availableIPv4": _i(fmt="int64"),
        "availableIPv6": _i(fmt="int64"),
    }
)

L2ADV_SPEC = _obj(
    {
        "ipAddressPools": _arr(_s(), "pools by name (none and no selectors: every pool)"),
        "ipAddressPoolSelectors": _selectors("pools by label"),
        "nodeSelectors": _selectors("nodes that may announce (empty: every node)"),
        "interfaces": _arr(_s(), "interfaces to answer ARP/NDP on (empty: all)"),
        "serviceSelectors": _selectors("only services matching one of these"),
        "preferredNodeSelectors": _arr(
            _obj(
                {
                    "weight": _i(
                        "added to a node's score when the preference matches",
                        minimum=1,
                        maximum=100,
                    ),
                    "preference": label_selector("nodes this weight applies to"),
                },
                required=["weight", "preference"],
            ),
            "soft preference for the announcing node",
        ),
    },
    "announce the IPs of the selected pools with ARP/NDP",
)

BGPADV_SPEC = _obj(
    {
        "aggregationLength": _i("IPv4 prefix length advertised", default=32, minimum=1, maximum=32),
        "aggregationLengthV6": _i(
            "IPv6 prefix length advertised", default=128, minimum=1, maximum=128
        ),
        "localPref": _i(
            "BGP LOCAL_PREF (iBGP only); 0 unset", fmt="int64", minimum=0, maximum=U32_MAX
        ),
        "communities": _arr(_s(), "A:B, large:A:B:C or the name of a Community alias"),
        "ipAddressPools": _arr(_s(), "pools by name (none and no selectors: every pool)"),
        "ipAddressPoolSelectors": _selectors("pools by label"),
        "nodeSelectors": _selectors("nodes that advertise (empty: every node)"),
        "peers": _arr(_s(), "BGPPeer names to advertise to (empty: every peer)"),
        "serviceSelectors": _selectors("only services matching one of these"),
    },
    "advertise the IPs of the selected pools over BGP",
    **_x(
        {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || "
                    "((!has(self.aggregationLength) || self.aggregationLength == 32) && "
                    "(!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))",
                    "message": (
                        "serviceSelectors can only be used with the default aggregation "
                        "lengths (32 and 128)"
                    ),
                }
            ]
        }
    ),
)

_PEER_COMMON: dict[str, Schema] = {
    "sourceAddress": _s("local address of the session"),
    "holdTime": _s("hold time (Go duration: 90s, 3m); 0 or at least 3s"),
    "keepaliveTime": _s("keepalive interval (Go duration); at most the hold time"),
    "routerID": _s("BGP identifier to use (an IPv4 address)"),
    "password": _s("TCP MD5 password"),
    "bfdProfile": _s("BFDProfile name; enables BFD for this session"),
    "ebgpMultiHop": _b("the peer is more than one hop away (eBGP only)"),
}

PEER_SPEC_V1BETA2 = _obj(
    {
        "myASN": _i("local AS number", fmt="int64", minimum=0, maximum=U32_MAX),
        "peerASN": _i("peer AS number (or dynamicASN)", fmt="int64", minimum=0, maximum=U32_MAX),
        "dynamicASN": _s("accept any internal or external ASN", enum=["internal", "external"]),
        "localASN": _i(
            "AS to present to the peer instead of myASN", fmt="int64", minimum=1, maximum=U32_MAX
        ),
        "peerAddress": _s("peer IP address"),
        "interface": _s("unnumbered BGP over this interface (instead of peerAddress)"),
        "peerPort": _i("peer TCP port", minimum=1, maximum=16384, default=179),
        "connectTime": _s(
            "connect retry time (Go duration, whole seconds, 1s..65535s)",
            **_x(
                {
                    "x-kubernetes-validations": [
                        {
                            "rule": (
                                "duration(self).getSeconds() >= 1 && "
                                "duration(self).getSeconds() <= 65535"
                            ),
                            "message": "connectTime must be between 1 and 65535",
                        },
                        {
                            "rule": "duration(self).getMilliseconds() % 1000 == 0",
                            "message": "connectTime cannot contain fractions of seconds",
                        },
                    ]
                }
            ),
        ),
        "nodeSelectors": _selectors("nodes that open this session (empty: every node)"),
        "passwordSecret": _obj(
            {"name": _s("Secret name"), "namespace": _s("Secret namespace")},
            "a kubernetes.io/basic-auth Secret holding the TCP MD5 password under `password`",
            **_x({"x-kubernetes-map-type": "atomic"}),
        ),
        "enableGracefulRestart": _b(
            "enable BGP graceful restart (immutable)",
            **_x(
                {
                    "x-kubernetes-validations": [
                        {
                            "rule": "self == oldSelf",
                            "message": "EnableGracefulRestart cannot be changed after creation",
                        }
                    ]
                }
            ),
        ),
        "vrf": _s("host VRF to open the session in"),
        "disableMP": _b("deprecated, no effect", default=False),
        "dualStackAddressFamily": _b("carry IPv4 and IPv6 over one session", default=False),
        **_PEER_COMMON,
    },
    "a BGP session to open from the selected nodes",
    required=["myASN"],
)

PEER_SPEC_V1BETA1 = _obj(
    {
        "myASN": _i("local AS number", fmt="int64", minimum=0, maximum=U32_MAX),
        "peerASN": _i("peer AS number", fmt="int64", minimum=0, maximum=U32_MAX),
        "peerAddress": _s("peer IP address"),
        "peerPort": _i("peer TCP port", minimum=0, maximum=16384),
        "nodeSelectors": _arr(label_selector(legacy=True), "nodes that open this session"),
        **_PEER_COMMON,
    },
    "deprecated: use metallb.io/v1beta2",
    required=["myASN", "peerASN", "peerAddress"],
)

BFD_SPEC = _obj(
    {
        "receiveInterval": _i(
            "minimum receive interval in ms (default 300)", minimum=10, maximum=60000
        ),
        "transmitInterval": _i(
            "minimum transmit interval in ms (default 300)", minimum=10, maximum=60000
        ),
        "detectMultiplier": _i(
            "missed packets before the session is down (default 3)", minimum=2, maximum=255
        ),
        "echoInterval": _i("echo interval in ms (default 50)", minimum=10, maximum=60000),
        "echoMode": _b("enable echo mode"),
        "passiveMode": _b("wait for the peer to start the session"),
        "minimumTtl": _i(
            "minimum incoming TTL for multi-hop sessions (default 254)", minimum=1, maximum=254
        ),
    },
    "BFD settings that BGPPeers refer to by name",
)

COMMUNITY_SPEC = _obj(
    {
        "communities": _arr(
            _obj(
                {"name": _s("alias"), "value": _s("A:B or large:A:B:C")}, required=["name", "value"]
            ),
            "aliases usable in BGPAdvertisement.communities",
        )
    }
)

LEGACY_POOL_SPEC = _obj(
    {
        "protocol": _s("layer2 or bgp", enum=["layer2", "bgp"]),
        "addresses": _arr(_s(), "CIDRs, ranges or single addresses", minItems=1),
        "autoAssign": _b("allocate automatically", default=True),
        "bgpAdvertisements": _arr(
            _obj(
                {
                    "aggregationLength": _i(default=32, minimum=1, maximum=32),
                    "aggregationLengthV6": _i(default=128, minimum=1, maximum=128),
                    "localPref": _i(fmt="int64", minimum=0, maximum=U32_MAX),
                    "communities": _arr(_s()),
                }
            ),
            "only with protocol bgp",
        ),
    },
    "deprecated: use IPAddressPool with L2Advertisement or BGPAdvertisement",
    required=["protocol", "addresses"],
)

_IMMUTABLE: dict[str, Any] = {
    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "Value is immutable"}]
}
_SERVICE_STATUS_COMMON: dict[str, Schema] = {
    "node": _s("announcing node", **_IMMUTABLE),
    "serviceName": _s(**_IMMUTABLE),
    "serviceNamespace": _s(**_IMMUTABLE),
}
L2STATUS_STATUS = _obj(
    {**_SERVICE_STATUS_COMMON, "interfaces": _arr(_obj({"name": _s()}, required=["name"]))}
)
BGPSTATUS_STATUS = _obj(
    {**_SERVICE_STATUS_COMMON, "peers": _arr(_s(), "BGPPeers the service is advertised to")}
)

CONDITION = _obj(
    {
        "type": _s(maxLength=316),
        "status": _s(enum=["True", "False", "Unknown"]),
        "observedGeneration": _i(fmt="int64", minimum=0),
        "lastTransitionTime": _s(format="date-time"),
        "reason": _s(
            maxLength=1024, minLength=1, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
        ),
        "message": _s(maxLength=32768),
    },
    required=["type", "status", "lastTransitionTime", "reason", "message"],
)
CONFIG_STATE_STATUS = _obj(
    {
        "result": _s("Valid, Invalid or Unknown", enum=["Valid", "Invalid", "Unknown"]),
        "errorSummary": _s("the errors, one per line"),
        "conditions": _arr(
            CONDITION,
            **_x({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
        ),
    }
)

SESSION_STATES = ["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"]
BFD_STATES = ["AdminDown", "Down", "Init", "Up", "Disabled"]
SESSION_STATE_STATUS = _obj(
    {
        "node": _s("node the session runs on"),
        "peer": _s("BGPPeer name"),
        "peerAddress": _s("peer address (unnumbered: the router's link-local address)"),
        "interface": _s("unnumbered session: the interface the router was found on"),
        "vrf": _s(),
        "state": _s("BGP finite state machine state", enum=SESSION_STATES),
        "establishedSince": _s("when the session last became Established", format="date-time"),
        "lastError": _s("last NOTIFICATION or transport error"),
        "lastErrorTime": _s(format="date-time"),
        "prefixesSent": _i("prefixes currently advertised to the peer", fmt="int64", minimum=0),
        "prefixesReceived": _i(fmt="int64", minimum=0),
        "bfdState": _s("BFD session state (Disabled without a bfdProfile)", enum=BFD_STATES),
    }
)

_CONFIG = _obj(
    {
        "priorityClassName": _s(),
        "runtimeClassName": _s(),
        "affinity": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "annotations": _map(),
        "resources": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    }
)
_TOLERATIONS = _arr({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
METALLB_SPEC = _obj(
    {
        "image": _s("deprecated, no effect"),
        "nodeSelector": _map("speaker node selector"),
        "speakerTolerations": _TOLERATIONS,
        "logLevel": _s(enum=["all", "debug", "info", "warn", "error", "none"]),
        "loadBalancerClass": _s(
            pattern=r"^([a-z0-9A-Z]([\w.\-]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([\w.\-]*[a-z0-9A-Z])?$"
        ),
        "controllerNodeSelector": _map(),
        "controllerTolerations": _TOLERATIONS,
        "controllerConfig": _CONFIG,
        "speakerConfig": _CONFIG,
        "bgpBackend": _s("native, frr, frr-k8s or frr-k8s-external"),
        "frrk8sConfig": _obj(
            {"alwaysBlock": _arr(_s()), "namespace": _s(), "secretPassthrough": _b()}
        ),
    },
    "deploys the controller and speakers",
)
METALLB_STATUS = _obj(
    {
        "conditions": _arr(
            CONDITION,
            **_x({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
        )
    }
)


Column = tuple[str, str, str]  # (name, type, jsonPath)


@dataclass(frozen=True)
class Version:
    name: str
    spec: Schema | None
    status: Schema | None = None
    storage: bool = False
    deprecated: str = ""
    columns: tuple[Column, ...] = ()
    column_priority: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    versions: tuple[Version, ...]
    status_only: bool = False
    conversion_webhook: bool = False

    def version(self, name: str) -> Version | None:
        return next((v for v in self.versions if v.name == name), None)

    @property
    def storage(self) -> Version:
        return next(v for v in self.versions if v.storage)


_POOL_COLS: tuple[Column, ...] = (
    ("Auto Assign", "boolean", ".spec.autoAssign"),
    ("Avoid Buggy IPs", "boolean", ".spec.avoidBuggyIPs"),
    ("Addresses", "string", ".spec.addresses"),
)
_LEGACY_POOL_COLS: tuple[Column, ...] = (
    ("Protocol", "string", ".spec.protocol"),
    ("Auto Assign", "boolean", ".spec.autoAssign"),
    ("Addresses", "string", ".spec.addresses"),
)
_PEER_COLS: tuple[Column, ...] = (
    ("Address", "string", ".spec.peerAddress"),
    ("ASN", "string", ".spec.peerASN"),
    ("BFD Profile", "string", ".spec.bfdProfile"),
    ("Multi Hops", "string", ".spec.ebgpMultiHop"),
)
_SVC_COLS: tuple[Column, ...] = (
    ("Allocated Node", "string", ".status.node"),
    ("Service Name", "string", ".status.serviceName"),
    ("Service Namespace", "string", ".status.serviceNamespace"),
)


def _condition_col(kind: str) -> Column:
    return (kind, "string", f'.status.conditions[?(@.type=="{kind}")].status')


def _v1beta1(
    kind: str,
    plural: str,
    spec: Schema,
    status: Schema | None = None,
    columns: tuple[Column, ...] = (),
    *,
    column_priority: dict[str, int] | None = None,
    status_only: bool = False,
) -> Kind:
    """A kind served at v1beta1 alone (then also its storage version), as most of MetalLB's are."""
    version = Version(
        "v1beta1", spec, status, True, columns=columns, column_priority=column_priority or {}
    )
    return Kind(kind, plural, (version,), status_only=status_only)


def _advertisement(kind: str, plural: str, spec: Schema, target: Column) -> Kind:
    """L2Advertisement and BGPAdvertisement: the same pool and node columns around their target."""
    columns = (
        ("IPAddressPools", "string", ".spec.ipAddressPools"),
        ("IPAddressPool Selectors", "string", ".spec.ipAddressPoolSelectors"),
        target,
        ("Node Selectors", "string", ".spec.nodeSelectors"),
    )
    return _v1beta1(kind, plural, spec, columns=columns, column_priority={"Node Selectors": 10})


def _status_kind(
    kind: str,
    plural: str,
    status: Schema,
    columns: tuple[Column, ...],
    column_priority: dict[str, int] | None = None,
) -> Kind:
    """A kind that only reports (written by MetalLB, never configured): an empty spec."""
    return _v1beta1(
        kind,
        plural,
        {"type": "object"},
        status,
        columns,
        column_priority=column_priority,
        status_only=True,
    )


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in (
        _v1beta1("IPAddressPool", "ipaddresspools", POOL_SPEC, POOL_STATUS, _POOL_COLS),
        _advertisement(
            "L2Advertisement",
            "l2advertisements",
            L2ADV_SPEC,
            ("Interfaces", "string", ".spec.interfaces"),
        ),
        _advertisement(
            "BGPAdvertisement", "bgpadvertisements", BGPADV_SPEC, ("Peers", "string", ".spec.peers")
        ),
        Kind(
            "BGPPeer",
            "bgppeers",
            (
                Version(
                    "v1beta1",
                    PEER_SPEC_V1BETA1,
                    deprecated="metallb.io v1beta1 BGPPeer is deprecated, consider using v1beta2",
                    columns=_PEER_COLS,
                ),
                Version("v1beta2", PEER_SPEC_V1BETA2, storage=True, columns=_PEER_COLS),
            ),
            conversion_webhook=True,
        ),
        _v1beta1(
            "BFDProfile",
            "bfdprofiles",
            BFD_SPEC,
            columns=(
                ("Passive Mode", "boolean", ".spec.passiveMode"),
                ("Transmit Interval", "integer", ".spec.transmitInterval"),
                ("Receive Interval", "integer", ".spec.receiveInterval"),
                ("Multiplier", "integer", ".spec.detectMultiplier"),
            ),
        ),
        _v1beta1("Community", "communities", COMMUNITY_SPEC),
        Kind(
            "AddressPool",
            "addresspools",
            (
                Version(
                    "v1alpha1",
                    LEGACY_POOL_SPEC,
                    deprecated="metallb.io v1alpha1 AddressPool is deprecated",
                    columns=_LEGACY_POOL_COLS,
                ),
                Version(
                    "v1beta1",
                    LEGACY_POOL_SPEC,
                    storage=True,
                    deprecated=(
                        "metallb.io v1beta1 AddressPool is deprecated, consider using IPAddressPool"
                    ),
                    columns=_LEGACY_POOL_COLS,
                ),
            ),
        ),
        _status_kind("ServiceL2Status", "servicel2statuses", L2STATUS_STATUS, _SVC_COLS),
        _status_kind("ServiceBGPStatus", "servicebgpstatuses", BGPSTATUS_STATUS, _SVC_COLS),
        _status_kind(
            "ConfigurationState",
            "configurationstates",
            CONFIG_STATE_STATUS,
            (
                ("Result", "string", ".status.result"),
                ("LastError", "string", ".status.errorSummary"),
            ),
        ),
        _status_kind(
            "BGPSessionState",
            "bgpsessionstates",
            SESSION_STATE_STATUS,
            (
                ("Node", "string", ".status.node"),
                ("Peer", "string", ".status.peer"),
                ("State", "string", ".status.state"),
                ("Uptime", "date", ".status.establishedSince"),
                ("Sent", "integer", ".status.prefixesSent"),
                ("BFD", "string", ".status.bfdState"),
                ("Last Error", "string", ".status.lastError"),
            ),
            column_priority={"Last Error": 10},
        ),
        _v1beta1(
            "MetalLB",
            "metallbs",
            METALLB_SPEC,
            METALLB_STATUS,
            tuple(_condition_col(c) for c in ("Available", "Degraded", "Progressing")),
        ),
    )
}


def object_schema(kind: Kind, version: Version) -> Schema:
    """The whole-object schema of one version (as it goes into the CRD)."""
    props: dict[str, Schema] = {
        "apiVersion": _s("versioned schema of this object"),
        "kind": _s("REST resource this object represents"),
        "metadata": {"type": "object"},
    }
    if version.spec is not None:
        props["spec"] = version.spec
    if version.status is not None:
        props["status"] = version.status
    required = ["spec"] if version.spec is not None and version.spec.get("required") else []
    out = _obj(props, f"{kind.kind} ({GROUP}/{version.name})")
    if required:
        out["required"] = required
    return out
