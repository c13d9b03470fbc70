"""Webhook metrics (ours; MetalLB exports none for its webhooks)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from metallb_py.metrics import registry

requests_total = Counter(
    "metallb_webhook_requests",
    "Admission and conversion requests answered, by path and outcome.",
    ["path", "outcome"],
    registry=registry,
)
certificate_not_after = Gauge(
    "metallb_webhook_certificate_not_after_seconds",
    "Expiry of the serving certificate in use (Unix time).",
    registry=registry,
)
certificate_rotations_total = Counter(
    "metallb_webhook_certificate_rotations",
    "Serving certificates issued (the first one included).",
    registry=registry,
)
