"""The Kubernetes-client metrics MetalLB's controller and speaker both export."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from metallb_py.metrics import registry

updates_total = Counter(
    "metallb_k8s_client_updates",
    "Number of k8s object updates that have been processed.",
    registry=registry,
)
update_errors_total = Counter(
    "metallb_k8s_client_update_errors",
    "Number of k8s object updates that failed for some reason.",
    registry=registry,
)
config_loaded = Gauge(
    "metallb_k8s_client_config_loaded_bool",
    "1 if the MetalLB configuration was successfully loaded at least once.",
    registry=registry,
)
config_stale = Gauge(
    "metallb_k8s_client_config_stale_bool",
    "1 if running on a stale configuration, because the latest config failed to load.",
    registry=registry,
)
# Ours: writes that reached the API server (a fenced replica must never add to it).
status_writes_total = Counter(
    "metallb_k8s_client_status_writes",
    "Number of status writes accepted by the API server.",
    registry=registry,
)
