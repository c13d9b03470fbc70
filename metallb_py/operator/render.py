"""Render what MetalLB deploys from a `MetalLB` spec: the one source of the controller, speaker
and webhook objects.

The operator reconciles `render(spec, env)`; `manifests/deploy/` and `manifests/webhook/` are
`render(None, OperatorEnv("metallb-system"))` written to files (by
`metallb_py.operator.manifests`), so the plain manifests and the operator cannot drift apart.

Objects come back complete (apiVersion, kind, metadata with namespace and labels) in a fixed order
and without ownerReferences: the reconciler adds those, and it also creates the memberlist Secret,
whose random content must not be rendered.

    python -m metallb_py.operator.render --write manifests/   # regenerate every generated file
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from metallb_py.objects import JSON
from metallb_py.operator.env import OperatorEnv
from webhooks import manifests as webhook_manifests

APP = "metallb"
CONTROLLER = "controller"
SPEAKER = "speaker"
MEMBERLIST_SECRET = "memberlist"
MEMBERLIST_LABELS = "app=metallb,component=speaker"
MEMBERLIST_KEY_DIR = "/etc/ml_secret_key"
WEBHOOK_DEPLOYMENT = "webhook-server"
WEBHOOK_METRICS_PORT = 7475
LINUX = {"kubernetes.io/os": "linux"}
DEFAULT_SPEAKER_TOLERATIONS: tuple[JSON, ...] = (
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
)
LOG_LEVELS = ("all", "debug", "info", "warn", "error", "none")
RBAC_V1 = "rbac.authorization.k8s.io/v1"
CLUSTER_PREFIX = "metallb-system"

# The metallb.io resources both components read (their configuration).
CONFIG_RESOURCES = [
    "ipaddresspools",
    "addresspools",
    "communities",
    "bgpadvertisements",
    "l2advertisements",
    "bgppeers",
    "bfdprofiles",
]


def _labels(component: str | None = None) -> dict[str, str]:
    return {"app": APP, "component": component} if component else {"app": APP}


def object_meta(name: str, namespace: str | None, labels: Mapping[str, str]) -> JSON:
    """metadata: name, namespace unless cluster-scoped (None), and a copy of `labels`."""
    meta: JSON = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    return meta


def rule(
    groups: list[str], resources: list[str], verbs: list[str], names: Sequence[str] = ()
) -> JSON:
    """An RBAC PolicyRule; resourceNames only when given."""
    out: JSON = {"apiGroups": list(groups), "resources": list(resources)}
    if names:
        out["resourceNames"] = list(names)
    out["verbs"] = list(verbs)
    return out


def _field_env(name: str, path: str) -> JSON:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _component_defaults(container: JSON) -> None:
    """What the controller and speaker containers share: /healthz and /readyz on the metrics
    port, which every component serves, and their resource requests and limits."""
    container["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "monitoring"},
        "initialDelaySeconds": 10,
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    container["readinessProbe"] = {
        "httpGet": {"path": "/readyz", "port": "monitoring"},
        "periodSeconds": 5,
    }
    container["resources"] = {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "512Mi"},
    }


def _template_meta(labels: Mapping[str, str], metrics_port: int) -> JSON:
    """Pod template metadata, with the annotations that let Prometheus scrape without monitors."""
    return {
        "labels": dict(labels),
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port)},
    }


def role_with_binding(
    name: str,
    namespace: str | None,
    rules: list[JSON],
    account: JSON,
    labels: Mapping[str, str],
    binding: str | None = None,
) -> list[JSON]:
    """A Role in `namespace` (a ClusterRole when None) and the binding that grants it to the
    ServiceAccount `account`; the binding takes the role's name unless `binding` names it."""
    kind = "ClusterRole" if namespace is None else "Role"
    meta = account["metadata"]
    subject = {"kind": "ServiceAccount", "name": meta["name"], "namespace": meta["namespace"]}
    return [
        {
            "apiVersion": RBAC_V1,
            "kind": kind,
            "metadata": object_meta(name, namespace, labels),
            "rules": rules,
        },
        {
            "apiVersion": RBAC_V1,
            "kind": f"{kind}Binding",
            "metadata": object_meta(binding or name, namespace, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [subject],
        },
    ]


def service_account(name: str, namespace: str, labels: Mapping[str, str]) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(name, namespace, labels),
    }


def _identity(
    component: str, env: OperatorEnv, cluster_rules: list[JSON], rules: list[JSON]
) -> list[JSON]:
    """ServiceAccount plus its ClusterRole/Binding (cluster-wide reads) and Role/Binding (its own
    namespace only: configuration, leases, secrets), so nothing outside the namespace is writable
    except what must be (Service status, events)."""
    # Fixed, like the webhook's: one MetalLB serves a cluster, and the operator's RBAC may then
    # name them whatever namespace it is installed in.
    cluster_name = f"{CLUSTER_PREFIX}:{component}"
    account = service_account(component, env.namespace, _labels(component))
    return [
        account,
        *role_with_binding(cluster_name, None, cluster_rules, account, _labels()),
        *role_with_binding(component, env.namespace, rules, account, _labels()),
    ]


_EVENTS = [
    rule([""], ["events"], ["create", "patch"]),
    rule(["events.k8s.io"], ["events"], ["create", "patch"]),
]


def _pod_overrides(
    pod: JSON, container: JSON, template_meta: JSON, config: Mapping[str, Any]
) -> None:
    """controllerConfig / speakerConfig: each field replaces ours wholesale when given."""
    if config.get("priorityClassName"):
        pod["priorityClassName"] = config["priorityClassName"]
    if config.get("runtimeClassName"):
        pod["runtimeClassName"] = config["runtimeClassName"]
    if config.get("affinity"):
        pod["affinity"] = copy.deepcopy(dict(config["affinity"]))
    if config.get("annotations"):
        template_meta.setdefault("annotations", {}).update(config["annotations"])
    if config.get("resources"):
        container["resources"] = copy.deepcopy(dict(config["resources"]))


def _args(component: str, spec: Mapping[str, Any], metrics_port: int) -> list[str]:
    args = [component, f"--log-level={spec.get('logLevel') or 'info'}"]
    args.append(f"--metrics-port={metrics_port}")
    if component == CONTROLLER:
        args.append("--leader-election")
    if spec.get("loadBalancerClass"):
        args.append(f"--lb-class={spec['loadBalancerClass']}")
    return args


def controller(spec: Mapping[str, Any], env: OperatorEnv) -> list[JSON]:
    """The controller: allocates IPs to Services of type LoadBalancer and writes their status.

    Two replicas with Lease leader election: the standby takes over within seconds and moves no
    IP. The leader creates the memberlist Secret when absent, owned by this Deployment.
    """
    ns = env.namespace
    cluster_rules = [
        rule([""], ["services", "namespaces"], ["get", "list", "watch"]),
        rule([""], ["services/status"], ["update", "patch"]),
        *copy.deepcopy(_EVENTS),
    ]
    rules = [
        rule(["metallb.io"], list(CONFIG_RESOURCES), ["get", "list", "watch"]),
        rule(["metallb.io"], ["ipaddresspools/status"], ["get", "update", "patch"]),
        rule(
            ["metallb.io"],
            ["configurationstates", "configurationstates/status"],
            ["get", "list", "watch", "create", "update", "patch"],
        ),
        rule(
            ["coordination.k8s.io"],
            ["leases"],
            ["get", "list", "watch", "create", "update", "patch"],
        ),
        rule([""], ["pods"], ["get"]),
        # The memberlist Secret: created when absent (create cannot be limited by name).
        rule([""], ["secrets"], ["create"]),
        rule([""], ["secrets"], ["get"], [MEMBERLIST_SECRET]),
        # Its own Deployment, to own that Secret.
        rule(["apps"], ["deployments"], ["get"], [CONTROLLER]),
    ]
    labels = _labels(CONTROLLER)
    container: JSON = {
        "name": CONTROLLER,
        "image": env.controller_image,
        "args": _args(CONTROLLER, spec, env.controller_metrics_port),
        "env": [
            _field_env("METALLB_NAMESPACE", "metadata.namespace"),
            _field_env("METALLB_POD_NAME", "metadata.name"),
            {"name": "METALLB_ML_SECRET_NAME", "value": MEMBERLIST_SECRET},
            {"name": "METALLB_DEPLOYMENT", "value": CONTROLLER},
        ],
        "ports": [{"name": "monitoring", "containerPort": env.controller_metrics_port}],
    }
    _component_defaults(container)
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    template_meta = _template_meta(labels, env.controller_metrics_port)
    pod: JSON = {
        "serviceAccountName": CONTROLLER,
        "terminationGracePeriodSeconds": 5,
        "nodeSelector": {**dict(spec.get("controllerNodeSelector") or {}), **LINUX},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "fsGroup": 65534,
        },
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": dict(labels)},
                        },
                    }
                ]
            }
        },
        "containers": [container],
    }
    if spec.get("controllerTolerations"):
        pod["tolerations"] = copy.deepcopy(list(spec["controllerTolerations"]))
    _pod_overrides(pod, container, template_meta, spec.get("controllerConfig") or {})
    deployment: JSON = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(CONTROLLER, ns, labels),
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": template_meta, "spec": pod},
        },
    }
    return [*_identity(CONTROLLER, env, cluster_rules, rules), deployment]


def speaker(spec: Mapping[str, Any], env: OperatorEnv) -> list[JSON]:
    """The speaker: one per node, on the host network, announcing service IPs over BGP and
    ARP/NDP.

    It runs as uid 0 with every capability dropped but NET_RAW (ARP/NDP raw sockets, BFD echo),
    NET_ADMIN (solicited-node multicast groups, TCP MD5 keys on BGP sockets) and
    NET_BIND_SERVICE (BGP's port 179): Kubernetes gives a non-root process no ambient
    capabilities, so the image's uid 65534 would hold none of them and answer no ARP.
    """
    ns = env.namespace
    cluster_rules = [
        rule([""], ["services", "nodes"], ["get", "list", "watch"]),
        rule(["discovery.k8s.io"], ["endpointslices"], ["get", "list", "watch"]),
        *copy.deepcopy(_EVENTS),
    ]
    statuses = ["servicel2statuses", "servicebgpstatuses", "bgpsessionstates"]
    rules = [
        rule(["metallb.io"], list(CONFIG_RESOURCES), ["get", "list", "watch"]),
        rule(
            ["metallb.io"],
            [*statuses, *(f"{s}/status" for s in statuses)],
            ["get", "list", "watch", "create", "update", "patch", "delete"],
        ),
        rule(
            ["metallb.io"],
            ["configurationstates", "configurationstates/status"],
            ["get", "list", "watch", "create", "update", "patch"],
        ),
        rule([""], ["secrets"], ["get", "list", "watch"]),
        rule([""], ["pods"], ["get", "list", "watch"]),
    ]
    labels = _labels(SPEAKER)
    port = env.memberlist_port
    container: JSON = {
        "name": SPEAKER,
        "image": env.speaker_image,
        "args": _args(SPEAKER, spec, env.speaker_metrics_port),
        "env": [
            _field_env("METALLB_NODE_NAME", "spec.nodeName"),
            _field_env("METALLB_POD_NAME", "metadata.name"),
            _field_env("METALLB_NAMESPACE", "metadata.namespace"),
            _field_env("METALLB_HOST", "status.hostIP"),
            _field_env("METALLB_ML_BIND_ADDR", "status.podIP"),
            {"name": "METALLB_ML_BIND_PORT", "value": str(port)},
            {"name": "METALLB_ML_LABELS", "value": MEMBERLIST_LABELS},
            {"name": "METALLB_ML_SECRET_KEY_PATH", "value": MEMBERLIST_KEY_DIR},
        ],
        "ports": [
            {"name": "monitoring", "containerPort": env.speaker_metrics_port},
            {"name": "memberlist-tcp", "containerPort": port, "protocol": "TCP"},
            {"name": "memberlist-udp", "containerPort": port, "protocol": "UDP"},
        ],
    }
    _component_defaults(container)
    container["securityContext"] = {
        "runAsUser": 0,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN", "NET_BIND_SERVICE"]},
    }
    container["volumeMounts"] = [
        {"name": MEMBERLIST_SECRET, "mountPath": MEMBERLIST_KEY_DIR, "readOnly": True}
    ]
    template_meta = _template_meta(labels, env.speaker_metrics_port)
    pod: JSON = {
        "serviceAccountName": SPEAKER,
        "hostNetwork": True,
        # Within 2 s the speaker withdraws (or keeps routes under graceful restart) and stops
        # answering ARP/NDP.
        "terminationGracePeriodSeconds": 2,
        "nodeSelector": {**dict(spec.get("nodeSelector") or {}), **LINUX},
        "tolerations": [
            *copy.deepcopy(list(DEFAULT_SPEAKER_TOLERATIONS)),
            *copy.deepcopy(list(spec.get("speakerTolerations") or [])),
        ],
        "containers": [container],
        # Optional: the controller creates it; until then the speaker runs without encryption.
        "volumes": [
            {
                "name": MEMBERLIST_SECRET,
                "secret": {"secretName": MEMBERLIST_SECRET, "defaultMode": 0o644, "optional": True},
            }
        ],
    }
    _pod_overrides(pod, container, template_meta, spec.get("speakerConfig") or {})
    daemonset: JSON = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": object_meta(SPEAKER, ns, labels),
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": template_meta, "spec": pod},
        },
    }
    return [*_identity(SPEAKER, env, cluster_rules, rules), daemonset]


def webhook_rbac(env: OperatorEnv) -> list[JSON]:
    """The webhook's ServiceAccount and RBAC, as `webhooks.manifests` defines them."""
    return webhook_manifests.rbac(env.namespace)


def webhook_service(env: OperatorEnv) -> list[JSON]:
    return [webhook_manifests.service(env.namespace)]


def webhook_configuration(env: OperatorEnv) -> list[JSON]:
    """failurePolicy Fail; the webhook server injects its own CA into caBundle at run time."""
    return [webhook_manifests.validating_webhook_configuration(env.namespace)]


def webhook_deployment(spec: Mapping[str, Any], env: OperatorEnv) -> list[JSON]:
    """The validating admission webhook server. It generates and rotates its own certificate
    (Secret metallb-webhook-cert) unless --cert-dir is set. It runs where the controller may
    (controllerNodeSelector, controllerTolerations) and at the same log level."""
    labels = dict(webhook_manifests.LABELS)
    port = webhook_manifests.PORT
    container: JSON = {
        "name": "webhook",
        "image": env.controller_image,
        "args": ["webhook", f"--log-level={spec.get('logLevel') or 'info'}", f"--port={port}"],
        "env": [_field_env("METALLB_NAMESPACE", "metadata.namespace")],
        "ports": [
            {"name": "webhook", "containerPort": port},
            {"name": "monitoring", "containerPort": WEBHOOK_METRICS_PORT},
        ],
        "readinessProbe": {"tcpSocket": {"port": "webhook"}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod: JSON = {
        "serviceAccountName": "metallb-webhook",
        "terminationGracePeriodSeconds": 5,
        "nodeSelector": {**dict(spec.get("controllerNodeSelector") or {}), **LINUX},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
        "containers": [container],
    }
    if spec.get("controllerTolerations"):
        pod["tolerations"] = copy.deepcopy(list(spec["controllerTolerations"]))
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": object_meta(WEBHOOK_DEPLOYMENT, env.namespace, labels),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": dict(labels)},
                "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
            },
        }
    ]


def _ingress_policy(name: str, env: OperatorEnv, component: str, ports: list[int]) -> JSON:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(name, env.namespace, _labels()),
        "spec": {
            "podSelector": {"matchLabels": _labels(component)},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": p} for p in ports]}],
        },
    }


def network_policies(env: OperatorEnv) -> list[JSON]:
    """Ingress to the controller and webhook pods only on the ports they serve.

    Per component rather than a namespace-wide default deny, because the operator itself may
    share the namespace. The speaker is on the host network, where NetworkPolicy does not apply.
    Egress stays open: the API server's address is not known here.
    """
    return [
        _ingress_policy(CONTROLLER, env, CONTROLLER, [env.controller_metrics_port]),
        _ingress_policy(
            WEBHOOK_DEPLOYMENT,
            env,
            WEBHOOK_DEPLOYMENT,
            [webhook_manifests.PORT, WEBHOOK_METRICS_PORT],
        ),
    ]


def monitor(
    component: str,
    namespace: str,
    selector: Mapping[str, str],
    port: int,
    *,
    pod_monitor: bool,
    labels: Mapping[str, str] | None = None,
) -> list[JSON]:
    """One component's Prometheus Operator objects: a PodMonitor, or a ServiceMonitor with the
    headless Service it selects. Pods are found by `selector` on their port named "monitoring";
    the node name becomes a `node` label, so per-node panels and alerts need no join."""
    meta_labels = dict(labels if labels is not None else selector)
    name = f"{component}-monitor"
    endpoint: JSON = {
        "port": "monitoring",
        "path": "/metrics",
        "honorLabels": True,
        "relabelings": [
            {
                "action": "replace",
                "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                "targetLabel": "node",
            }
        ],
    }
    if pod_monitor:
        return [
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": object_meta(name, namespace, meta_labels),
                "spec": {
                    "selector": {"matchLabels": dict(selector)},
                    "namespaceSelector": {"matchNames": [namespace]},
                    "podMetricsEndpoints": [endpoint],
                },
            }
        ]
    service = f"{component}-monitor-service"
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": object_meta(service, namespace, {**meta_labels, "name": service}),
            "spec": {
                "clusterIP": "None",
                "selector": dict(selector),
                "ports": [
                    {"name": "monitoring", "port": port, "targetPort": port, "protocol": "TCP"}
                ],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": object_meta(name, namespace, meta_labels),
            "spec": {
                "selector": {"matchLabels": {"name": service}},
                "namespaceSelector": {"matchNames": [namespace]},
                "endpoints": [endpoint],
            },
        },
    ]


def monitors(env: OperatorEnv) -> list[JSON]:
    """Prometheus Operator objects for the controller and speaker metrics, when asked for:
    PodMonitors, or ServiceMonitors with a headless Service each to select from."""
    if not (env.deploy_pod_monitors or env.deploy_service_monitors):
        return []
    out: list[JSON] = []
    for component, port in (
        (CONTROLLER, env.controller_metrics_port),
        (SPEAKER, env.speaker_metrics_port),
    ):
        out.extend(
            monitor(
                component,
                env.namespace,
                _labels(component),
                port,
                pod_monitor=env.deploy_pod_monitors,
            )
        )
    return out


def validate_spec(spec: Mapping[str, Any]) -> None:
    """The few spec values render depends on; the CRD schema and webhook check the rest."""
    level = spec.get("logLevel")
    if level and level not in LOG_LEVELS:
        raise ValueError(f"logLevel {level!r} is not one of {', '.join(LOG_LEVELS)}")


def components(spec: Mapping[str, Any] | None, env: OperatorEnv) -> dict[str, list[JSON]]:
    """Rendered objects grouped by the file of manifests/ they live in, in render order."""
    s: Mapping[str, Any] = spec or {}
    validate_spec(s)
    groups = {
        "webhook/rbac.yaml": webhook_rbac(env),
        "webhook/service.yaml": webhook_service(env),
        "webhook/validatingwebhookconfiguration.yaml": webhook_configuration(env),
        "deploy/webhook.yaml": webhook_deployment(s, env),
        "deploy/controller.yaml": controller(s, env),
        "deploy/speaker.yaml": speaker(s, env),
    }
    if env.network_policies:
        groups["deploy/networkpolicies.yaml"] = network_policies(env)
    if env.deploy_pod_monitors or env.deploy_service_monitors:
        groups["deploy/monitors.yaml"] = monitors(env)
    return groups


def render(spec: Mapping[str, Any] | None, env: OperatorEnv) -> list[JSON]:
    """Every object the operator deploys for `spec` (a MetalLB `.spec`, or None for defaults).

    Order: webhook RBAC, Service, ValidatingWebhookConfiguration and Deployment, then controller
    and speaker (each ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding,
    workload), then NetworkPolicies and monitors when enabled. Service accounts and RBAC come
    before the workloads that use them. bgpBackend, image and frrk8sConfig change nothing: every
    backend runs our own BGP stack. Raises ValueError on an unknown logLevel.
    """
    return [obj for objs in components(spec, env).values() for obj in objs]


if __name__ == "__main__":
    from metallb_py.operator.manifests import main

    raise SystemExit(main())
