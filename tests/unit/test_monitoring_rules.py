"""The shipped alerts and dashboard: every alert has a case that fires and one that stays silent
(run by the real promtool in tests/e2e/test_monitoring_promtool.py), the PrometheusRule carries
exactly the same groups, every metric they name is one the components export, and the dashboard
and monitors have the expected shape."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

import metallb_py.kube.metrics  # noqa: F401 (registers metallb_k8s_client_* on REGISTRY)
from metallb_py.allocator import Allocator
from metallb_py.controller.metrics import AllocatorCollector
from metallb_py.membership.metrics import MembershipCollector
from metallb_py.monitoring import dashboard, files, rules
from metallb_py.speaker.metrics import SpeakerCollector

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests" / "monitoring"


# -- the cases: for each alert, series that make it fire and near misses that must not ----------
CTL = {"job": "controller", "instance": "10.0.0.1:7472"}
SPK = {"job": "speaker", "instance": "10.0.0.11:7473", "node": "node1"}
PEER = {**SPK, "peer": "192.0.2.1:179"}


def s(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def pool(in_use: int, total: int) -> list[dict[str, str]]:
    labels = {**CTL, "pool": "a"}
    return [
        s("metallb_allocator_addresses_in_use_total", labels, f"{in_use}x20"),
        s("metallb_allocator_addresses_total", labels, f"{total}x20"),
    ]


def l2(announced_ip: str, protocol: str = "layer2") -> list[dict[str, str]]:
    svc = {"service": "default/web", "ip": "192.0.2.10"}
    return [
        s("metallb_allocator_layer2_address", {**CTL, **svc, "pool": "l2"}, "1x20"),
        s(
            "metallb_speaker_announced",
            {**SPK, **svc, "ip": announced_ip, "protocol": protocol},
            "1x20",
        ),
    ]


def membership(failovers: str) -> list[dict[str, str]]:
    return [
        s("metallb_membership_members", {**SPK, "state": "alive"}, "3x20"),
        s("metallb_membership_failovers_total", SPK, failovers),
    ]


POOL_A = {**CTL, "pool": "a"}
# alert -> (firing series, silent series, labels of the firing alert, evaluation time)
CASES: dict[str, tuple[list[Any], list[Any], dict[str, str], str]] = {
    "MetalLBStaleConfig": (
        [s("metallb_k8s_client_config_stale_bool", CTL, "1x10")],
        [s("metallb_k8s_client_config_stale_bool", CTL, "0x10")],
        CTL,
        "5m",
    ),
    "MetalLBConfigNotLoaded": (
        [s("metallb_k8s_client_config_loaded_bool", CTL, "0x10")],
        [s("metallb_k8s_client_config_loaded_bool", CTL, "1x10")],
        CTL,
        "5m",
    ),
    "MetalLBAddressPoolExhausted": (pool(10, 10), pool(9, 10), POOL_A, "5m"),
    "MetalLBAddressPoolUsage75Percent": (pool(8, 10), pool(7, 10), POOL_A, "5m"),
    "MetalLBAddressPoolUsage85Percent": (pool(9, 10), pool(8, 10), POOL_A, "5m"),
    "MetalLBAddressPoolUsage95Percent": (pool(10, 10), pool(9, 10), POOL_A, "5m"),
    "MetalLBBGPSessionDown": (
        [s("metallb_bgp_session_up", PEER, "1 1 0x10")],
        [s("metallb_bgp_session_up", PEER, "1x10")],
        PEER,
        "6m",
    ),
    "MetalLBOrphanedAddresses": (
        [s("metallb_allocator_orphaned_addresses", CTL, "2x10")],
        [s("metallb_allocator_orphaned_addresses", CTL, "0x10")],
        CTL,
        "8m",
    ),
    "MetalLBBFDSessionDown": (
        [s("metallb_bfd_session_up", {**SPK, "peer": "192.0.2.1"}, "0x10")],
        [s("metallb_bfd_session_up", {**SPK, "peer": "192.0.2.1"}, "1x10")],
        {**SPK, "peer": "192.0.2.1"},
        "5m",
    ),
    # Another address is announced on layer 2, and this one only over BGP: still nobody answers.
    "MetalLBLayer2AddressNotAnnounced": (
        l2("192.0.2.11") + l2("192.0.2.10", "bgp"),
        l2("192.0.2.10"),
        {"service": "default/web", "ip": "192.0.2.10", "pool": "l2"},
        "5m",
    ),
    # A member lost every minute vs a rolling update (two members left once each).
    "MetalLBMembershipFlapping": (
        membership("0+1x20"),
        membership("0 1 2x19"),
        {"job": "speaker"},
        "16m",
    ),
}


# -- tests -----------------------------------------------------------------------------------------
def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    assert sorted(CASES) == sorted(rules.alert_names())
    chart = {r["alert"] for r in rules.chart_rules()}
    assert chart == {
        "MetalLBStaleConfig",
        "MetalLBConfigNotLoaded",
        "MetalLBAddressPoolExhausted",
        "MetalLBAddressPoolUsage75Percent",
        "MetalLBAddressPoolUsage85Percent",
        "MetalLBAddressPoolUsage95Percent",
        "MetalLBBGPSessionDown",
    }


def test_prometheusrule_and_plain_file_agree() -> None:
    plain = yaml.safe_load((MONITORING / files.RULES_FILE).read_text())
    (operator,) = list(yaml.safe_load_all((MONITORING / "prometheusrule.yaml").read_text()))
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"]["groups"] == plain["groups"] == rules.groups()


def test_checked_in_files_are_generated() -> None:
    for name, text in files.files().items():
        assert (MONITORING / name).read_text() == text, f"regenerate manifests/monitoring/{name}"


def exported_names() -> set[str]:
    """Every sample name the components export, from their collectors with one of everything."""
    reg = CollectorRegistry()
    one = {"session_up": 1.0}
    reg.register(
        SpeakerCollector(
            lambda: {
                "announced": [("default/web", "layer2", "node1", "192.0.2.1")],
                "bgp": {"192.0.2.1:179": {k: 1.0 for k in _bgp_keys()}},
                "bfd": {"192.0.2.1": {**one, **{k: 1.0 for k in _bfd_keys()}}},
                "layer2": {k: {"192.0.2.1": 1} for k in _l2_keys()},
            }
        )
    )
    rtt = SimpleNamespace(buckets=[0.01], counts=[1, 0], total=0.005)
    reg.register(
        MembershipCollector(
            lambda: {"states": {"alive": 3}, "dropped": {"malformed": 1}, "rtt": rtt}
        )
    )
    reg.register(AllocatorCollector(lambda: Allocator(), lambda: [("d/w", "192.0.2.1", "p")]))
    text = generate_latest(reg).decode() + generate_latest(REGISTRY).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    # Pool gauges appear only with a pool; their names are in the HELP lines.
    names |= set(re.findall(r"^# HELP (\S+)", text, re.M))
    return names


def _bgp_keys() -> list[str]:
    from metallb_py.speaker.metrics import BGP_HELP

    return list(BGP_HELP)


def _bfd_keys() -> list[str]:
    from metallb_py.speaker.metrics import BFD_HELP

    return list(BFD_HELP)


def _l2_keys() -> list[str]:
    from metallb_py.speaker.metrics import L2_HELP

    return list(L2_HELP)


def referenced(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in re.findall(r"\bmetallb_[a-z0-9_]+", e)}


def test_rules_and_dashboard_name_only_exported_metrics() -> None:
    exprs = [r["expr"] for g in rules.groups() for r in g["rules"]]
    exprs += dashboard.expressions()
    missing = referenced(exprs) - exported_names()
    assert not missing, f"not exported by any component: {sorted(missing)}"


def test_dashboard_layout() -> None:
    board = json.loads((MONITORING / files.DASHBOARD_FILE).read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in board["panels"] if p["type"] == "row"}
    assert titles >= {"Address pools", "Announcements", "BGP", "BFD", "Layer 2", "Membership"}
    for p in board["panels"]:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}"


def test_monitors_cover_every_component() -> None:
    docs = list(yaml.safe_load_all((MONITORING / "servicemonitors.yaml").read_text()))
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    ports = {name: svc["spec"]["ports"][0]["port"] for name, svc in services.items()}
    assert ports == {
        "controller-monitor-service": 7472,
        "speaker-monitor-service": 7473,
        "webhook-server-monitor-service": 7475,
        "metallb-operator-monitor-service": 7474,
    }
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == 4
    pods = list(yaml.safe_load_all((MONITORING / "podmonitors.yaml").read_text()))
    assert [d["kind"] for d in pods] == ["PodMonitor"] * 4
    # The operator renders the same controller and speaker objects when asked to.
    from metallb_py.operator.env import OperatorEnv
    from metallb_py.operator.render import monitors as rendered

    env = OperatorEnv("metallb-system", deploy_service_monitors=True)
    assert rendered(env) == docs[:4]
