"""The operator's own metrics (`metallb_operator_*`; MetalLB's operator exports only the
controller-runtime defaults)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from metallb_py.metrics import registry

reconciles_total = Counter(
    "metallb_operator_reconciles",
    "MetalLB resources reconciled, by result (available, progressing, degraded, error, deleted).",
    ["result"],
    registry=registry,
)
applied_objects_total = Counter(
    "metallb_operator_applied_objects",
    "Objects sent to the API server with server-side apply, by kind.",
    ["kind"],
    registry=registry,
)
last_reconcile_seconds = Gauge(
    "metallb_operator_last_reconcile_duration_seconds",
    "Wall time of the last reconcile.",
    registry=registry,
)
status_writes_total = Counter(
    "metallb_operator_status_writes",
    "Status updates written to MetalLB resources (unchanged status is never written).",
    registry=registry,
)
