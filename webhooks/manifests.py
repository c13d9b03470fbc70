"""Render manifests/webhook/: the ValidatingWebhookConfiguration (failurePolicy Fail), the
Service in front of the webhook, and the RBAC it needs to keep its certificate and caBundles.

`python -m webhooks.manifests DIR` writes them; a unit test keeps the files in sync.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from metallb_py.config.schemas import GROUP
from webhooks.paths import CONVERTED_CRDS, HOOKS, SECRET_NAME, SERVICE_NAME, WEBHOOK_CONFIGURATION

NAMESPACE = "metallb-system"
PORT = 9443
LABELS = {"app": "metallb", "component": "webhook-server"}


def validating_webhook_configuration(namespace: str = NAMESPACE) -> dict[str, Any]:
    hooks = []
    for h in HOOKS:
        hooks.append(
            {
                "name": h.name,
                "admissionReviewVersions": ["v1"],
                "clientConfig": {
                    "service": {
                        "name": SERVICE_NAME,
                        "namespace": namespace,
                        "path": h.path,
                        "port": 443,
                    }
                },
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "matchPolicy": "Equivalent",
                "timeoutSeconds": 10,
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [h.version],
                        "operations": list(h.operations),
                        "resources": [h.plural],
                        "scope": "Namespaced",
                    }
                ],
            }
        )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION, "labels": {"app": "metallb"}},
        "webhooks": hooks,
    }


def service(namespace: str = NAMESPACE) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "namespace": namespace, "labels": {"app": "metallb"}},
        "spec": {
            "selector": dict(LABELS),
            "ports": [{"name": "webhook", "port": 443, "targetPort": PORT, "protocol": "TCP"}],
        },
    }


def rbac(namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    sa = "metallb-webhook"
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": sa, "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "metallb-webhook", "namespace": namespace},
            "rules": [
                {"apiGroups": [GROUP], "resources": ["*"], "verbs": ["get", "list", "watch"]},
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "verbs": ["get", "list", "watch", "create"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "resourceNames": [SECRET_NAME],
                    "verbs": ["update", "patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "metallb-webhook", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "metallb-webhook",
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "metallb-system:webhook"},
            "rules": [
                {"apiGroups": [""], "resources": ["services"], "verbs": ["list"]},
                {
                    "apiGroups": ["admissionregistration.k8s.io"],
                    "resources": ["validatingwebhookconfigurations"],
                    "resourceNames": [WEBHOOK_CONFIGURATION],
                    "verbs": ["get", "update", "patch"],
                },
                {
                    "apiGroups": ["apiextensions.k8s.io"],
                    "resources": ["customresourcedefinitions"],
                    "resourceNames": list(CONVERTED_CRDS),
                    "verbs": ["get", "update", "patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "metallb-system:webhook"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "metallb-system:webhook",
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
    ]


def files(namespace: str = NAMESPACE) -> dict[str, list[dict[str, Any]]]:
    return {
        "validatingwebhookconfiguration.yaml": [validating_webhook_configuration(namespace)],
        "service.yaml": [service(namespace)],
        "rbac.yaml": rbac(namespace),
    }


def dump(docs: list[dict[str, Any]]) -> str:
    header = "# Generated by `python -m webhooks.manifests`; do not edit.\n"
    return header + yaml.safe_dump_all(docs, sort_keys=False, width=100)


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, docs in files().items():
        path = directory / name
        path.write_text(dump(docs))
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "manifests/webhook")):
        print(p)
