"""manifests/webhook/: generated, failurePolicy Fail everywhere, one webhook per path served."""

from __future__ import annotations

from pathlib import Path

import yaml

from webhooks.manifests import dump, files
from webhooks.paths import BY_PATH

DIR = Path(__file__).resolve().parents[2] / "manifests" / "webhook"


def test_files_are_generated() -> None:
    for name, docs in files().items():
        assert list(yaml.safe_load_all((DIR / name).read_text())) == list(
            yaml.safe_load_all(dump(docs))
        ), name


def test_every_webhook_fails_closed_and_points_at_a_served_path() -> None:
    (vwc,) = yaml.safe_load_all((DIR / "validatingwebhookconfiguration.yaml").read_text())
    assert vwc["metadata"]["name"] == "metallb-webhook-configuration"
    paths = set()
    for hook in vwc["webhooks"]:
        assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        svc = hook["clientConfig"]["service"]
        assert (svc["name"], svc["namespace"], svc["port"]) == (
            "metallb-webhook-service",
            "metallb-system",
            443,
        )
        paths.add(svc["path"])
    assert paths == set(BY_PATH)
    (svc,) = yaml.safe_load_all((DIR / "service.yaml").read_text())
    assert svc["spec"]["ports"][0]["targetPort"] == 9443
