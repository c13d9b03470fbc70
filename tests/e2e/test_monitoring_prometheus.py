"""A real Prometheus (Debian's package) scrapes the controller and a speaker in the lab and
evaluates the shipped rules file: the BGP session taken down at the router (BIRD) makes
MetalLBBGPSessionDown fire, and a layer-2 address whose only eligible node has no speaker makes
MetalLBLayer2AddressNotAnnounced fire while an announced one stays silent.

Only `for:` is shortened (to 2 s, with 1 s scrapes and evaluations) so it completes in seconds;
the expressions are the shipped ones.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py.monitoring import files
from tests.lab.daemons import Bird
from tests.lab.netns import wait_for
from tests.lab.speaker_lab import (
    ROUTER_AS,
    SPEAKER_AS,
    Cluster,
    cluster,
    endpoint_slice,
    metallb,
    service,
)
from tests.lab.topology import Lan

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PROM = "127.0.0.1:9090"  # inside the router namespace: nothing else of the lab listens there
CONTROLLER_METRICS = 7472
SHORT_FOR = "2s"


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if IN_CI:
            pytest.fail("prometheus missing (Debian package prometheus; scripts/setup.sh)")
        pytest.skip("prometheus missing (apt-get install prometheus)")
    return path


def shortened_rules(path: Path) -> Path:
    """The shipped rules file with every `for:` shortened."""
    doc = yaml.safe_load((ROOT / "manifests" / "monitoring" / files.RULES_FILE).read_text())
    for group in doc["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = SHORT_FOR
    path.write_text(yaml.safe_dump(doc))
    return path


def start_prometheus(c: Cluster, node_ip: str) -> Any:
    workdir = c.lab.workdir / "prometheus"
    (workdir / "data").mkdir(parents=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(shortened_rules(workdir / "rules.yml"))],
        "scrape_configs": [
            {
                "job_name": "controller",
                "static_configs": [{"targets": [f"127.0.0.1:{CONTROLLER_METRICS}"]}],
            },
            {
                "job_name": "speaker",
                "static_configs": [{"targets": [f"{node_ip}:7473"], "labels": {"node": "node1"}}],
            },
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    return c.lab.spawn(
        "router",
        [
            prometheus_binary(),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={PROM}",
            "--storage.tsdb.retention.time=1h",
        ],
        name="prometheus",
    )


def api(c: Cluster, path: str, **params: str) -> Any:
    url = f"http://{PROM}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    code = (
        "import urllib.request,sys;"
        f"sys.stdout.write(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    )
    out = c.lab.run("router", [sys.executable, "-c", code], timeout=15)
    if out.returncode != 0:
        return None
    body = json.loads(out.stdout)
    assert body["status"] == "success", body
    return body["data"]


def query(c: Cluster, expr: str) -> list[Any]:
    data = api(c, "/api/v1/query", query=expr)
    return list(data["result"]) if data else []


def firing(c: Cluster, name: str) -> list[dict[str, str]]:
    data = api(c, "/api/v1/alerts") or {"alerts": []}
    return [
        a["labels"]
        for a in data["alerts"]
        if a["labels"]["alertname"] == name and a["state"] == "firing"
    ]


def start_controller(c: Cluster) -> None:
    c.controller = c.lab.spawn(
        "router",
        [
            sys.executable,
            "-m",
            "metallb_py",
            "controller",
            "--kubeconfig",
            str(c.api.kubeconfig),
            "--metrics-port",
            str(CONTROLLER_METRICS),
            "--metrics-bind-address",
            "127.0.0.1",
            "--no-leader-election",
        ],
        name="controller",
    )


def test_real_prometheus_fires_on_a_bgp_session_down(lan: Lan) -> None:
    lab = lan.lab
    node1 = lan.nodes[0]
    bird = Bird(
        lab,
        "router",
        lan.router.ipv4,
        f"""
        protocol bgp node1 {{
          local {lan.router.ipv4} as {ROUTER_AS};
          neighbor {node1.ipv4} as {SPEAKER_AS};
          connect retry time 1;
          ipv4 {{ import all; export none; }};
        }}
        """,
    ).start()
    with cluster(lan, nodes={"node1": {"rack": "a"}, "node2": {"rack": "b"}}) as c:
        start_controller(c)
        c.apply(
            metallb("IPAddressPool", "bgp", {"addresses": ["203.0.113.0/26"]}),
            metallb("IPAddressPool", "lan-a", {"addresses": ["198.51.100.200-198.51.100.209"]}),
            metallb("IPAddressPool", "lan-b", {"addresses": ["198.51.100.210-198.51.100.219"]}),
            metallb(
                "BGPPeer",
                "bird",
                {"myASN": SPEAKER_AS, "peerASN": ROUTER_AS, "peerAddress": lan.router.ipv4},
                "v1beta2",
            ),
            metallb("BGPAdvertisement", "routed", {"ipAddressPools": ["bgp"]}),
            metallb(
                "L2Advertisement",
                "rack-a",
                {"ipAddressPools": ["lan-a"], "nodeSelectors": [{"matchLabels": {"rack": "a"}}]},
            ),
            # Only node2 may answer for lan-b, and node2 runs no speaker.
            metallb(
                "L2Advertisement",
                "rack-b",
                {"ipAddressPools": ["lan-b"], "nodeSelectors": [{"matchLabels": {"rack": "b"}}]},
            ),
        )
        for name, pool in (("web", "bgp"), ("lan", "lan-a"), ("lost", "lan-b")):
            c.apply(
                service(name, annotations={"metallb.io/address-pool": pool}),
                endpoint_slice(name, ["node1"]),
            )
        c.start_speaker("node1")
        c.wait_ready("node1", timeout=60)
        bird.wait_established("node1", 30)
        (lan_ip,) = c.wait_ips("lan")
        (lost_ip,) = c.wait_ips("lost")

        prom = start_prometheus(c, node1.ipv4)

        def scraping() -> bool:
            if not prom.alive():
                raise AssertionError(f"prometheus exited:\n{prom.output()[-3000:]}")
            up = query(c, "up == 1")
            return {r["metric"]["job"] for r in up} == {"controller", "speaker"}

        wait_for(scraping, 30, what="Prometheus scraping the controller and the speaker")
        wait_for(
            lambda: query(c, 'metallb_bgp_session_up{job="speaker"} == 1'),
            15,
            what="the BGP session up in Prometheus",
        )
        # Layer 2: the address only node2 may answer for fires, the one node1 answers does not.
        lost = wait_for(
            lambda: firing(c, "MetalLBLayer2AddressNotAnnounced"),
            30,
            what="MetalLBLayer2AddressNotAnnounced firing",
        )
        assert [(a["service"], a["ip"], a["pool"]) for a in lost] == [
            ("default/lost", lost_ip, "lan-b")
        ]
        announced = query(c, 'metallb_speaker_announced{protocol="layer2"}')
        assert [r["metric"]["ip"] for r in announced] == [lan_ip]
        assert firing(c, "MetalLBBGPSessionDown") == []

        # The router drops the session: the alert fires within seconds.
        started = time.monotonic()
        bird.cmd("disable node1")
        down = wait_for(
            lambda: firing(c, "MetalLBBGPSessionDown"), 45, what="MetalLBBGPSessionDown firing"
        )
        took = time.monotonic() - started
        assert [(a["job"], a["node"], a["peer"], a["severity"]) for a in down] == [
            ("speaker", "node1", f"{lan.router.ipv4}:179", "critical")
        ]
        assert took < 30, f"took {took:.1f}s"
        # And resolves once the session is back.
        bird.cmd("enable node1")
        bird.wait_established("node1", 30)
        wait_for(
            lambda: not firing(c, "MetalLBBGPSessionDown"),
            30,
            what="MetalLBBGPSessionDown resolved",
        )
        prom.stop(5)
