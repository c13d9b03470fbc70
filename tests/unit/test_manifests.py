"""The deployment manifests are what a user applies: every file is in the kustomization, every
container's command line is one our CLI accepts, and the ports match the documented defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py import cli

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def workloads() -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] in ("Deployment", "DaemonSet")]


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    # manifests/operator/ and manifests/monitoring/ are kustomizations of their own.
    present = {
        str(p.relative_to(MANIFESTS))
        for p in MANIFESTS.rglob("*.yaml")
        if p.name != "kustomization.yaml" and p.parent.name not in ("operator", "monitoring")
    }
    assert listed == present


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_container_args_are_accepted_by_the_cli(
    workload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = workload["spec"]["template"]["spec"]
    for container in spec["containers"]:
        for env in container.get("env", []):
            monkeypatch.setenv(env["name"], env.get("value", "from-downward-api"))
        args = cli.build_parser().parse_args(container["args"])
        component = cli.COMPONENTS[args.command]
        assert component.long_running
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if "monitoring" in ports:
            assert ports["monitoring"] == args.metrics_port
        assert workload["metadata"]["namespace"] == "metallb-system"


def test_speaker_runs_on_the_host_network_with_only_the_capabilities_it_needs() -> None:
    (speaker,) = [w for w in workloads() if w["kind"] == "DaemonSet"]
    spec = speaker["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["terminationGracePeriodSeconds"] <= 2
    caps = spec["containers"][0]["securityContext"]["capabilities"]
    # Root, because Kubernetes gives a non-root process no ambient capabilities: as uid 65534 the
    # speaker would hold no NET_RAW and answer no ARP.
    assert spec["containers"][0]["securityContext"]["runAsUser"] == 0
    assert caps["drop"] == ["ALL"]
    assert set(caps["add"]) == {"NET_RAW", "NET_ADMIN", "NET_BIND_SERVICE"}


def test_every_service_account_used_exists_and_is_bound() -> None:
    docs = documents()
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    bound = {
        s["name"]
        for d in docs
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
        for s in d["subjects"]
    }
    for w in workloads():
        sa = w["spec"]["template"]["spec"]["serviceAccountName"]
        assert sa in accounts and sa in bound
